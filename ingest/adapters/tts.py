"""The Things Stack v3: `ApplicationUp` JSON from MQTT, webhooks and the Storage Integration.

One message carries exactly one payload key (`uplink_message`, `join_accept`,
`downlink_ack`, ...), and a webhook may post every kind to one URL, so the
adapter dispatches on that key, never on the topic. The topic only fills in the
device and application when the body lacks `end_device_ids` (a field mask).

TTS omits zero values: a missing `f_cnt` is FCnt 0, a missing `f_port` is 0
(the AS forwards no MAC-only frames, so in practice a field mask removed it),
a missing `snr` or `channel_index` on a gateway that reported an RSSI is 0.
`simulated` uplinks from the Console carry `received_at` 0001-01-01 inside
`uplink_message`; the envelope's time stands in.
"""

from __future__ import annotations

from datetime import datetime

from domain.errors import MessageRejected
from domain.uplink import Ignored, Join, JsonObject, NetworkEvent, NetworkServer, Radio, Reception, Uplink
from ingest.adapters.construct import new_radio, new_reception, new_uplink
from ingest.adapters.json_fields import (
    INT64_MAX,
    STORED_TEXT_LIMIT,
    UINT32_MAX,
    array,
    base64_bytes,
    child,
    dev_eui,
    element,
    flag,
    integer,
    load_object,
    number,
    stored_text,
    text,
)
from ingest.adapters.keys import hashed_key
from ingest.adapters.receptions import distinct_antennas, gateway_and_eui, location_in
from ingest.adapters.timestamps import optional_timestamp, parse_duration_s, parse_timestamp, utc_or_none

IGNORED_KINDS = (
    "uplink_normalized",
    "downlink_ack",
    "downlink_nack",
    "downlink_sent",
    "downlink_failed",
    "downlink_queued",
    "downlink_queue_invalidated",
    "location_solved",
    "service_data",
)
"""ApplicationUp kinds lorakom does not store; `uplink_normalized` repeats an `uplink_message`."""

PACKET_BROKER = "packetbroker"


class DeviceIds:
    """Who sent a message, as far as the message (or its topic) says.

    Each field is taken directly when it has the usual type and falls back to
    the checked read otherwise (as throughout this module's uplink path), in
    the checked reads' order, so a faulty message is rejected for the same field.
    """

    __slots__ = ("application_id", "dev_addr", "dev_eui", "device_id")

    def __init__(self, message: JsonObject, topic: str | None) -> None:
        ids = message.get("end_device_ids")
        if type(ids) is not dict:
            ids = child(message, "end_device_ids", "")
            if ids is None:
                self.application_id, self.device_id = _ids_from_topic(topic)
                self.dev_eui = None
                self.dev_addr = None
                return
        get = ids.get
        application = get("application_ids")
        if type(application) is dict:
            application_id = application.get("application_id")
            if type(application_id) is not str or not 0 < len(application_id) <= STORED_TEXT_LIMIT:
                application_id = stored_text(application, "application_id", "end_device_ids.application_ids")
            self.application_id = application_id
        else:
            application = child(ids, "application_ids", "end_device_ids")
            self.application_id = None
        device_id = get("device_id")
        if type(device_id) is not str or not 0 < len(device_id) <= STORED_TEXT_LIMIT:
            device_id = stored_text(ids, "device_id", "end_device_ids")
        self.device_id = device_id
        eui = get("dev_eui")
        if type(eui) is not str:
            eui = text(ids, "dev_eui", "end_device_ids")
        self.dev_eui = dev_eui(eui, "end_device_ids.dev_eui") if eui else None
        dev_addr = get("dev_addr")
        if type(dev_addr) is not str:
            dev_addr = text(ids, "dev_addr", "end_device_ids")
        self.dev_addr = dev_addr


def _ids_from_topic(topic: str | None) -> tuple[str | None, str | None]:
    """`v3/{application id}@{tenant}/devices/{device id}/...` → (application id, device id)."""
    if not topic:
        return None, None
    parts = topic.split("/", 5)
    if len(parts) < 5 or parts[0] != "v3" or parts[2] != "devices":
        return None, None
    application = parts[1].partition("@")[0] or None
    return application, parts[3] or None


def parse_body(body: bytes, *, topic: str | None) -> NetworkEvent:
    return parse_application_up(load_object(body, "TTS message"), topic=topic)


def parse_webhook(body: bytes, *, content_type: str | None) -> NetworkEvent:
    """A TTS webhook POST; only the webhook's JSON format is read, protobuf would need TTS's schema."""
    if content_type and "json" not in content_type.lower() and body[:1] != b"{":
        raise MessageRejected(
            f"TTS webhook body of type {content_type[:60]!r} is not read; set the webhook format to JSON"
        )
    return parse_body(body, topic=None)


def parse_application_up(message: JsonObject, *, topic: str | None) -> NetworkEvent:
    up = message.get("uplink_message")
    if type(up) is not dict:
        up = child(message, "uplink_message", "")
    if up is not None:
        return _uplink(message, up, DeviceIds(message, topic))
    join = child(message, "join_accept", "")
    if join is not None:
        return _join(message, join, DeviceIds(message, topic))
    for kind in IGNORED_KINDS:
        if kind in message:
            return Ignored(kind=f"tts {kind}")
    raise MessageRejected(
        "TTS message has none of the ApplicationUp keys (uplink_message, join_accept, downlink_*, ...)"
    )


def _received_at(message: JsonObject, inner: JsonObject, inner_path: str) -> datetime:
    """The network server's receive time, else the application server's.

    The inner time is the earlier and more exact one, but simulated uplinks set
    it to year 1, and a field mask may have dropped it.
    """
    inner_text = text(inner, "received_at", inner_path)
    if inner_text:
        inner_time = parse_timestamp(inner_text, f"{inner_path}.received_at")
        if inner_time.year > 1:
            return inner_time
    outer_text = text(message, "received_at", "")
    if not outer_text:
        raise MessageRejected(f"TTS message has no usable received_at (neither {inner_path} nor envelope)")
    return parse_timestamp(outer_text, "received_at")


_UPLINK = "uplink_message"


def _uplink(message: JsonObject, up: JsonObject, ids: DeviceIds) -> Uplink:
    get = up.get
    inner_time = get("received_at")
    received_at = None
    if type(inner_time) is str and inner_time:
        received_at = utc_or_none(inner_time)
        if received_at is not None and received_at.year <= 1:
            received_at = None
    if received_at is None:
        received_at = _received_at(message, up, _UPLINK)
    f_cnt = get("f_cnt")
    if type(f_cnt) is not int or not 0 <= f_cnt <= UINT32_MAX:
        f_cnt = integer(up, "f_cnt", _UPLINK, 0, UINT32_MAX) or 0
    payload_text = get("frm_payload")
    if type(payload_text) is not str:
        payload_text = text(up, "frm_payload", _UPLINK)
    battery = get("last_battery_percentage")
    if type(battery) is not float:
        battery = number(up, "last_battery_percentage", _UPLINK)
    airtime = get("consumed_airtime")
    if type(airtime) is not str:
        airtime = text(up, "consumed_airtime", _UPLINK)
    session_key_id = get("session_key_id")
    if type(session_key_id) is not str:
        session_key_id = text(up, "session_key_id", _UPLINK) or ""
    payload = base64_bytes(payload_text, "uplink_message.frm_payload") if payload_text else b""
    f_port = get("f_port")
    if type(f_port) is not int or not 0 <= f_port <= 255:
        f_port = integer(up, "f_port", _UPLINK, 0, 255) or 0
    decoded = get("decoded_payload")
    if type(decoded) is not dict:
        decoded = child(up, "decoded_payload", _UPLINK)
    receptions = _receptions(up, _UPLINK)
    radio = _radio(up, _UPLINK, airtime)
    confirmed = get("confirmed")
    if type(confirmed) is not bool:
        confirmed = flag(up, "confirmed", _UPLINK)
    simulated = message.get("simulated")
    if type(simulated) is not bool:
        simulated = flag(message, "simulated", "")
    return new_uplink(
        NetworkServer.TTS,
        hashed_key(ids.device_id or ids.dev_eui or "", str(f_cnt), session_key_id, received_at.isoformat()),
        received_at,
        ids.dev_eui,
        payload,
        f_port,
        f_cnt,
        ids.device_id,
        ids.application_id,
        ids.dev_addr,
        decoded,
        receptions,
        radio,
        confirmed,
        simulated,
        battery,
    )


_RX_PATHS = tuple(f"{_UPLINK}.rx_metadata[{index}]" for index in range(16))
"""Paths of the first entries, spelled once: a path is passed to every read, but shown only on failure."""


def _receptions(up: JsonObject, parent: str) -> tuple[Reception, ...]:
    entries = up.get("rx_metadata")
    if type(entries) is not list:
        entries = array(up, "rx_metadata", parent)
    if not entries:
        return ()
    list_path = f"{parent}.rx_metadata"
    usual = parent == _UPLINK
    found: list[Reception] = []
    relays: list[bool] = []
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            element(entries, index, list_path)
        path = _RX_PATHS[index] if usual and index < 16 else f"{list_path}[{index}]"
        reception, relayed = _reception(entry, path)
        found.append(reception)
        relays.append(relayed)
    return distinct_antennas(found, relays)


def _reception(entry: JsonObject, path: str) -> tuple[Reception, bool]:
    get = entry.get
    ids = get("gateway_ids")
    if type(ids) is not dict:
        ids = child(entry, "gateway_ids", path) or {}
    ids_path = path + ".gateway_ids"
    named = ids.get("gateway_id")
    if named is not None and type(named) is not str:
        named = text(ids, "gateway_id", ids_path)
    eui = ids.get("eui")
    if eui is not None and type(eui) is not str:
        eui = text(ids, "eui", ids_path)
    relayed = named == PACKET_BROKER
    if relayed and not eui:
        forwarder = child(entry, "packet_broker", path)
        if forwarder is not None:
            forwarder_path = f"{path}.packet_broker"
            eui = text(forwarder, "forwarder_gateway_eui", forwarder_path) or text(
                forwarder, "forwarder_gateway_id", forwarder_path
            )
    chosen = eui or named
    if not chosen:
        raise MessageRejected(f"{path} names no gateway (gateway_ids.gateway_id and eui are missing)")
    gateway, gateway_eui = gateway_and_eui(chosen, ids_path)
    rssi = get("rssi")
    if type(rssi) is int or type(rssi) is float:
        rssi = float(rssi)
    else:
        rssi = number(entry, "rssi", path)
        if rssi is None:
            rssi = number(entry, "channel_rssi", path)
    measured = rssi is not None
    snr = get("snr")
    snr = float(snr) if type(snr) is int or type(snr) is float else number(entry, "snr", path)
    channel = get("channel_index")
    if type(channel) is not int or not 0 <= channel <= 0xFFFF:
        channel = integer(entry, "channel_index", path, 0, 0xFFFF)
    heard_at = get("received_at")
    if type(heard_at) is not str or not heard_at:
        heard_at = text(entry, "received_at", path) or text(entry, "time", path)
    antenna = get("antenna_index", 0)
    if type(antenna) is not int or not 0 <= antenna <= 255:
        antenna = integer(entry, "antenna_index", path, 0, 255) or 0
    received_at = optional_timestamp(heard_at, path + ".received_at")
    return (
        new_reception(
            gateway,
            rssi,
            snr if snr is not None or not measured else 0.0,
            channel if channel is not None or not measured else 0,
            antenna,
            received_at,
            location_in(entry, "location", path),
            gateway_eui,
        ),
        relayed,
    )


_SETTINGS_PATH = f"{_UPLINK}.settings"


def _radio(up: JsonObject, parent: str, airtime: str | None) -> Radio:
    airtime_s = parse_duration_s(airtime, parent + ".consumed_airtime") if airtime else None
    settings = up.get("settings")
    if type(settings) is not dict:
        settings = child(up, "settings", parent)
        if settings is None:
            return Radio(airtime_s=airtime_s)
    settings_path = _SETTINGS_PATH if parent == _UPLINK else f"{parent}.settings"
    data_rate = settings.get("data_rate")
    if type(data_rate) is not dict:
        data_rate = child(settings, "data_rate", settings_path)
    lora = None
    if data_rate:
        lora = data_rate.get("lora")
        if type(lora) is not dict:
            lora = child(data_rate, "lora", f"{settings_path}.data_rate")
    spreading_factor: int | None = None
    bandwidth_hz: int | None = None
    coding_rate: str | None = None
    if lora:
        lora_path = f"{settings_path}.data_rate.lora"
        spreading_factor = lora.get("spreading_factor")
        if type(spreading_factor) is not int or not 0 <= spreading_factor <= 255:
            spreading_factor = integer(lora, "spreading_factor", lora_path, 0, 255)
        bandwidth_hz = lora.get("bandwidth")
        if type(bandwidth_hz) is not int or not 0 <= bandwidth_hz <= 2**31 - 1:
            bandwidth_hz = integer(lora, "bandwidth", lora_path, 0, 2**31 - 1)
        coding_rate = lora.get("coding_rate")
        if type(coding_rate) is not str:
            coding_rate = text(lora, "coding_rate", lora_path)
    frequency = settings.get("frequency")
    # TTS writes 64-bit integers as decimal strings; up to 18 digits always fit the bounds.
    if type(frequency) is str and 0 < len(frequency) <= 18 and frequency.isascii() and frequency.isdigit():
        frequency = int(frequency)
    elif type(frequency) is not int or not 0 <= frequency <= INT64_MAX:
        frequency = integer(settings, "frequency", settings_path, 0, INT64_MAX)
    if not coding_rate:
        coding_rate = text(settings, "coding_rate", settings_path)
    data_rate_index = settings.get("data_rate_index")
    if type(data_rate_index) is not int or not 0 <= data_rate_index <= 255:
        data_rate_index = integer(settings, "data_rate_index", settings_path, 0, 255)
    return new_radio(spreading_factor, bandwidth_hz, frequency, coding_rate, data_rate_index, airtime_s)


def _join(message: JsonObject, join: JsonObject, ids: DeviceIds) -> Join:
    envelope_time = text(message, "received_at", "")
    if envelope_time:
        received_at = parse_timestamp(envelope_time, "received_at")
    else:
        received_at = _received_at(message, join, "join_accept")
    return Join(
        network_server=NetworkServer.TTS,
        received_at=received_at,
        dev_eui=ids.dev_eui,
        network_device_id=ids.device_id,
        dev_addr=ids.dev_addr,
    )
