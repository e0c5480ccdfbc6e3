"""ChirpStack v4 device events (`integration.*Event`) from MQTT or the HTTP integration.

The encoding is a per-server (MQTT `json=true|false`) or per-application (HTTP)
setting that nothing in a topic reveals, so the body is sniffed: JSON starts
with `{`, a protobuf event with a field tag. Which event it is comes from the
topic's last segment (`.../event/up`) or the webhook's `?event=`; a JSON body on
a topic of a custom template is recognised by its keys instead.

ChirpStack emits the top-level fields of an event even when zero, but omits
zero scalars inside `rxInfo`/`txInfo` (`channel` 0, `rfChain` 0 vanish). Both
the JSON and the protobuf path read a missing scalar as protobuf's zero, so the
two encodings of one event give equal results. `rxInfo[].time` was split into
`gwTime`/`nsTime` during 4.x; both spellings are read.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.errors import MessageRejected
from domain.uplink import (
    DeviceStatus,
    Ignored,
    Join,
    JsonObject,
    NetworkEvent,
    NetworkServer,
    Radio,
    Reception,
    Uplink,
)
from ingest.adapters import chirpstack_gateway, chirpstack_protobuf
from ingest.adapters.chirpstack_protobuf import coding_rate
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
    required_text,
    stored_text,
    text,
)
from ingest.adapters.keys import bounded_key
from ingest.adapters.receptions import distinct_antennas, gateway_and_eui, location_in
from ingest.adapters.timestamps import optional_timestamp, parse_timestamp, utc_or_none

IGNORED_EVENTS = frozenset({"ack", "txack", "log", "location", "integration"})
STORED_EVENTS = frozenset({"up", "join", "status"})

_PROTOBUF_MEDIA = frozenset({"application/octet-stream", "application/protobuf", "application/x-protobuf"})


def topic_event(topic: str) -> str | None:
    """`application/{app}/device/{dev_eui}/event/{event}` → event; None for other layouts."""
    head, _, event = topic.rpartition("/")
    return event if head.endswith("/event") or head == "event" else None


def body_is_json(body: bytes, content_type: str | None) -> bool:
    if content_type:
        media = content_type.partition(";")[0].strip().lower()
        if media.endswith("json"):
            return True
        if media in _PROTOBUF_MEDIA:
            return False
    return body[:1] == b"{"


def parse_mqtt(topic: str, body: bytes) -> NetworkEvent:
    # Most messages are JSON uplinks on `application/{id}/device/{eui}/event/up`; a topic with
    # five or more slashes is never a gateway topic, so those skip the topic parsing.
    if topic.endswith("/event/up") and topic.count("/") >= 5 and body[:1] == b"{":
        return _uplink(load_object(body, "ChirpStack event"))
    gateway_topic = chirpstack_gateway.gateway_topic(topic)
    if gateway_topic is not None:
        return chirpstack_gateway.parse_gateway_message(gateway_topic, body)
    return parse_device_event(topic_event(topic), body, is_json=body[:1] == b"{", where=f"topic {topic!r}")


def parse_http(body: bytes, *, event: str | None, content_type: str | None) -> NetworkEvent:
    return parse_device_event(
        event or None, body, is_json=body_is_json(body, content_type), where="the webhook's event parameter"
    )


def parse_device_event(event: str | None, body: bytes, *, is_json: bool, where: str) -> NetworkEvent:
    if not is_json:
        if event is None:
            raise MessageRejected(f"a protobuf ChirpStack event needs its type, and {where} names none")
        return chirpstack_protobuf.parse_event(event, body)
    message = load_object(body, "ChirpStack event")
    if event is None:
        event = _event_from_keys(message)
    handler = _HANDLERS.get(event)
    if handler is not None:
        return handler(message)
    if event in IGNORED_EVENTS:
        return Ignored(kind=f"chirpstack {event}")
    raise MessageRejected(f"unknown ChirpStack event type {event!r}")


def _event_from_keys(message: JsonObject) -> str:
    """Which event a JSON body is, for topics whose template hides it."""
    if "rxInfo" in message or "fCnt" in message or "data" in message:
        return "up"
    if "margin" in message or "batteryLevel" in message or "batteryLevelUnavailable" in message:
        return "status"
    if "level" in message and "code" in message:
        return "log"
    if "queueItemId" in message:
        return "ack"
    if "integrationName" in message:
        return "integration"
    if "location" in message:
        return "location"
    if "devAddr" in message:
        return "join"
    raise MessageRejected("ChirpStack event of unknown shape (no up, join, status, log or ack keys)")


class _Device:
    """The device block every event carries.

    Like the rest of this module's hot path, each field is taken directly when
    it has the usual type and falls back to the checked read of `json_fields`
    otherwise, which converts or rejects exactly as before; fields are read in
    the same order as the checked reads would, so a message with several faults
    is rejected for the same one.
    """

    __slots__ = ("application_id", "dev_eui", "name")

    def __init__(self, message: JsonObject) -> None:
        info = message.get("deviceInfo")
        if type(info) is not dict:
            info = child(message, "deviceInfo", "")
            if info is None:
                raise MessageRejected("ChirpStack event has no deviceInfo")
        eui = info.get("devEui")
        if type(eui) is not str or not eui:
            eui = required_text(info, "devEui", "deviceInfo")
        self.dev_eui = dev_eui(eui, "deviceInfo.devEui")
        name = info.get("deviceName")
        if type(name) is not str or not 0 < len(name) <= STORED_TEXT_LIMIT:
            name = stored_text(info, "deviceName", "deviceInfo")
        self.name = name
        application_id = info.get("applicationId")
        if type(application_id) is not str or not 0 < len(application_id) <= STORED_TEXT_LIMIT:
            application_id = stored_text(info, "applicationId", "deviceInfo")
        self.application_id = application_id


def _uplink(message: JsonObject) -> Uplink:
    device = _Device(message)
    get = message.get
    data = get("data")
    if type(data) is not str:
        data = text(message, "data", "")
    key = get("deduplicationId")
    if type(key) is not str or not key:
        key = required_text(message, "deduplicationId", "")
    time = get("time")
    if type(time) is not str or not time:
        time = required_text(message, "time", "")
    received_at = utc_or_none(time) or parse_timestamp(time, "time")
    payload = base64_bytes(data, "data") if data else b""
    f_port = get("fPort")
    if type(f_port) is not int or not 0 <= f_port <= 255:
        f_port = integer(message, "fPort", "", 0, 255) or 0
    f_cnt = get("fCnt")
    if type(f_cnt) is not int or not 0 <= f_cnt <= UINT32_MAX:
        f_cnt = integer(message, "fCnt", "", 0, UINT32_MAX) or 0
    dev_addr = get("devAddr")
    if type(dev_addr) is not str:
        dev_addr = text(message, "devAddr", "")
    decoded = get("object")
    if type(decoded) is not dict:
        decoded = child(message, "object", "")
    receptions = _receptions(message)
    radio = _radio(message)
    confirmed = get("confirmed")
    if type(confirmed) is not bool:
        confirmed = flag(message, "confirmed", "")
    return new_uplink(
        NetworkServer.CHIRPSTACK_V4,
        bounded_key(key),
        received_at,
        device.dev_eui,
        payload,
        f_port,
        f_cnt,
        device.name,
        device.application_id,
        dev_addr,
        decoded,
        receptions,
        radio,
        confirmed,
        False,
        None,
    )


_RX_PATHS = tuple(f"rxInfo[{index}]" for index in range(16))
"""Paths of the first entries, spelled once: a path is passed to every read, but shown only on failure."""


def _receptions(message: JsonObject) -> tuple[Reception, ...]:
    entries = message.get("rxInfo")
    if type(entries) is not list:
        entries = array(message, "rxInfo", "")
    if not entries:
        return ()
    found: list[Reception] = []
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            element(entries, index, "rxInfo")
        found.append(_reception(entry, _RX_PATHS[index] if index < 16 else f"rxInfo[{index}]"))
    return distinct_antennas(found, [False] * len(found))


def _reception(entry: JsonObject, path: str) -> Reception:
    get = entry.get
    heard_at = get("gwTime")
    if type(heard_at) is not str or not heard_at:
        heard_at = text(entry, "gwTime", path) or text(entry, "time", path) or text(entry, "nsTime", path)
    raw_gateway = get("gatewayId")
    if type(raw_gateway) is not str or not raw_gateway:
        raw_gateway = required_text(entry, "gatewayId", path)
    gateway, eui = gateway_and_eui(raw_gateway, path + ".gatewayId")
    rssi = get("rssi")
    rssi = (float(rssi) if type(rssi) is int or type(rssi) is float else number(entry, "rssi", path)) or 0.0
    snr = get("snr")
    snr = (float(snr) if type(snr) is int or type(snr) is float else number(entry, "snr", path)) or 0.0
    channel = get("channel", 0)
    if type(channel) is not int or not 0 <= channel <= 0xFFFF:
        channel = integer(entry, "channel", path, 0, 0xFFFF) or 0
    antenna = get("antenna", 0)
    if type(antenna) is not int or not 0 <= antenna <= 255:
        antenna = integer(entry, "antenna", path, 0, 255) or 0
    received_at = optional_timestamp(heard_at, path + ".gwTime")
    return new_reception(
        gateway, rssi, snr, channel, antenna, received_at, location_in(entry, "location", path), eui
    )


def _radio(message: JsonObject) -> Radio:
    data_rate = message.get("dr")
    if type(data_rate) is not int or not 0 <= data_rate <= 255:
        data_rate = integer(message, "dr", "", 0, 255) or 0
    tx = message.get("txInfo")
    if type(tx) is not dict:
        tx = child(message, "txInfo", "")
        if tx is None:
            return Radio(data_rate=data_rate)
    modulation = tx.get("modulation")
    if type(modulation) is not dict:
        modulation = child(tx, "modulation", "txInfo")
    lora = None
    if modulation:
        lora = modulation.get("lora")
        if type(lora) is not dict:
            lora = child(modulation, "lora", "txInfo.modulation")
    if lora is None:
        return Radio(frequency_hz=integer(tx, "frequency", "txInfo", 0, INT64_MAX) or 0, data_rate=data_rate)
    path = "txInfo.modulation.lora"
    spreading_factor = lora.get("spreadingFactor", 0)
    if type(spreading_factor) is not int or not 0 <= spreading_factor <= 255:
        spreading_factor = integer(lora, "spreadingFactor", path, 0, 255) or 0
    bandwidth = lora.get("bandwidth", 0)
    if type(bandwidth) is not int or not 0 <= bandwidth <= UINT32_MAX:
        bandwidth = integer(lora, "bandwidth", path, 0, UINT32_MAX) or 0
    frequency = tx.get("frequency", 0)
    if type(frequency) is not int or not 0 <= frequency <= INT64_MAX:
        frequency = integer(tx, "frequency", "txInfo", 0, INT64_MAX) or 0
    rate_name = lora.get("codeRate")
    if type(rate_name) is not str or not rate_name:
        rate_name = text(lora, "codeRate", path) or text(lora, "codeRateLegacy", path)
    return new_radio(spreading_factor, bandwidth, frequency, coding_rate(rate_name), data_rate, None)


def _join(message: JsonObject) -> Join:
    device = _Device(message)
    return Join(
        network_server=NetworkServer.CHIRPSTACK_V4,
        received_at=parse_timestamp(required_text(message, "time", ""), "time"),
        dev_eui=device.dev_eui,
        network_device_id=device.name,
        dev_addr=text(message, "devAddr", ""),
    )


def _status(message: JsonObject) -> DeviceStatus:
    device = _Device(message)
    external_power = flag(message, "externalPowerSource", "")
    unavailable = flag(message, "batteryLevelUnavailable", "")
    battery = number(message, "batteryLevel", "") or 0.0
    return DeviceStatus(
        network_server=NetworkServer.CHIRPSTACK_V4,
        received_at=parse_timestamp(required_text(message, "time", ""), "time"),
        dev_eui=device.dev_eui,
        battery_percent=None if unavailable or external_power else battery,
        margin_db=integer(message, "margin", "", -128, 127) or 0,
        external_power=external_power,
    )


_HANDLERS: dict[str, Callable[[JsonObject], NetworkEvent]] = {"up": _uplink, "join": _join, "status": _status}
