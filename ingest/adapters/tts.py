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
from ingest.adapters.json_fields import (
    INT64_MAX,
    UINT32_MAX,
    array,
    base64_bytes,
    child,
    dev_eui,
    element,
    flag,
    gateway_id,
    integer,
    load_object,
    number,
    stored_text,
    text,
)
from ingest.adapters.keys import hashed_key
from ingest.adapters.receptions import eui_or_none, location_in, one_per_antenna
from ingest.adapters.timestamps import parse_duration_s, parse_timestamp

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
    """Who sent a message, as far as the message (or its topic) says."""

    __slots__ = ("application_id", "dev_addr", "dev_eui", "device_id")

    def __init__(self, message: JsonObject, topic: str | None) -> None:
        ids = child(message, "end_device_ids", "")
        if ids is None:
            self.application_id, self.device_id = _ids_from_topic(topic)
            self.dev_eui = None
            self.dev_addr = None
            return
        application = child(ids, "application_ids", "end_device_ids")
        self.application_id = (
            stored_text(application, "application_id", "end_device_ids.application_ids")
            if application is not None
            else None
        )
        self.device_id = stored_text(ids, "device_id", "end_device_ids")
        eui = text(ids, "dev_eui", "end_device_ids")
        self.dev_eui = dev_eui(eui, "end_device_ids.dev_eui") if eui else None
        self.dev_addr = text(ids, "dev_addr", "end_device_ids")


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


def _uplink(message: JsonObject, up: JsonObject, ids: DeviceIds) -> Uplink:
    path = "uplink_message"
    received_at = _received_at(message, up, path)
    f_cnt = integer(up, "f_cnt", path, 0, UINT32_MAX) or 0
    payload_text = text(up, "frm_payload", path)
    battery = number(up, "last_battery_percentage", path)
    airtime = text(up, "consumed_airtime", path)
    session_key_id = text(up, "session_key_id", path) or ""
    return Uplink(
        network_server=NetworkServer.TTS,
        uplink_key=hashed_key(
            ids.device_id or ids.dev_eui or "", str(f_cnt), session_key_id, received_at.isoformat()
        ),
        received_at=received_at,
        dev_eui=ids.dev_eui,
        payload=base64_bytes(payload_text, f"{path}.frm_payload") if payload_text else b"",
        f_port=integer(up, "f_port", path, 0, 255) or 0,
        f_cnt=f_cnt,
        network_device_id=ids.device_id,
        application_id=ids.application_id,
        dev_addr=ids.dev_addr,
        decoded_by_network=child(up, "decoded_payload", path),
        receptions=_receptions(up, path),
        radio=_radio(up, path, airtime),
        confirmed=flag(up, "confirmed", path),
        simulated=flag(message, "simulated", ""),
        battery_percent=battery,
    )


def _receptions(up: JsonObject, parent: str) -> tuple[Reception, ...]:
    entries = array(up, "rx_metadata", parent)
    if not entries:
        return ()
    list_path = f"{parent}.rx_metadata"
    found: list[tuple[Reception, bool]] = []
    for index in range(len(entries)):
        entry = element(entries, index, list_path)
        path = f"{list_path}[{index}]"
        found.append(_reception(entry, path))
    return one_per_antenna(found)


def _reception(entry: JsonObject, path: str) -> tuple[Reception, bool]:
    ids = child(entry, "gateway_ids", path) or {}
    ids_path = f"{path}.gateway_ids"
    named = text(ids, "gateway_id", ids_path)
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
    gateway = gateway_id(chosen, ids_path)
    rssi = number(entry, "rssi", path)
    if rssi is None:
        rssi = number(entry, "channel_rssi", path)
    measured = rssi is not None
    snr = number(entry, "snr", path)
    channel = integer(entry, "channel_index", path, 0, 0xFFFF)
    heard_at = text(entry, "received_at", path) or text(entry, "time", path)
    return (
        Reception(
            gateway_id=gateway,
            rssi_dbm=rssi,
            snr_db=snr if snr is not None or not measured else 0.0,
            channel=channel if channel is not None or not measured else 0,
            antenna=integer(entry, "antenna_index", path, 0, 255) or 0,
            received_at=parse_timestamp(heard_at, f"{path}.received_at") if heard_at else None,
            gateway_location=location_in(entry, "location", path),
            gateway_eui=eui_or_none(gateway),
        ),
        relayed,
    )


def _radio(up: JsonObject, parent: str, airtime: str | None) -> Radio:
    airtime_s = parse_duration_s(airtime, f"{parent}.consumed_airtime") if airtime else None
    settings = child(up, "settings", parent)
    if settings is None:
        return Radio(airtime_s=airtime_s)
    settings_path = f"{parent}.settings"
    data_rate = child(settings, "data_rate", settings_path)
    lora = child(data_rate, "lora", f"{settings_path}.data_rate") if data_rate else None
    lora_path = f"{settings_path}.data_rate.lora"
    if lora:
        spreading_factor = integer(lora, "spreading_factor", lora_path, 0, 255)
        bandwidth_hz = integer(lora, "bandwidth", lora_path, 0, 2**31 - 1)
        coding_rate = text(lora, "coding_rate", lora_path)
    else:
        spreading_factor = bandwidth_hz = None
        coding_rate = None
    return Radio(
        spreading_factor=spreading_factor,
        bandwidth_hz=bandwidth_hz,
        frequency_hz=integer(settings, "frequency", settings_path, 0, INT64_MAX),
        coding_rate=coding_rate or text(settings, "coding_rate", settings_path),
        data_rate=integer(settings, "data_rate_index", settings_path, 0, 255),
        airtime_s=airtime_s,
    )


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
