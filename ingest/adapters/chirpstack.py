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
    required_text,
    stored_text,
    text,
)
from ingest.adapters.keys import bounded_key
from ingest.adapters.receptions import eui_or_none, location_in, one_per_antenna
from ingest.adapters.timestamps import parse_timestamp

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
    __slots__ = ("application_id", "dev_eui", "name")

    def __init__(self, message: JsonObject) -> None:
        info = child(message, "deviceInfo", "")
        if info is None:
            raise MessageRejected("ChirpStack event has no deviceInfo")
        self.dev_eui = dev_eui(required_text(info, "devEui", "deviceInfo"), "deviceInfo.devEui")
        self.name = stored_text(info, "deviceName", "deviceInfo")
        self.application_id = stored_text(info, "applicationId", "deviceInfo")


def _uplink(message: JsonObject) -> Uplink:
    device = _Device(message)
    data = text(message, "data", "")
    return Uplink(
        network_server=NetworkServer.CHIRPSTACK_V4,
        uplink_key=bounded_key(required_text(message, "deduplicationId", "")),
        received_at=parse_timestamp(required_text(message, "time", ""), "time"),
        dev_eui=device.dev_eui,
        payload=base64_bytes(data, "data") if data else b"",
        f_port=integer(message, "fPort", "", 0, 255) or 0,
        f_cnt=integer(message, "fCnt", "", 0, UINT32_MAX) or 0,
        network_device_id=device.name,
        application_id=device.application_id,
        dev_addr=text(message, "devAddr", ""),
        decoded_by_network=child(message, "object", ""),
        receptions=_receptions(message),
        radio=_radio(message),
        confirmed=flag(message, "confirmed", ""),
    )


def _receptions(message: JsonObject) -> tuple[Reception, ...]:
    entries = array(message, "rxInfo", "")
    found: list[tuple[Reception, bool]] = []
    for index in range(len(entries)):
        entry = element(entries, index, "rxInfo")
        path = f"rxInfo[{index}]"
        heard_at = text(entry, "gwTime", path) or text(entry, "time", path) or text(entry, "nsTime", path)
        gateway = gateway_id(required_text(entry, "gatewayId", path), f"{path}.gatewayId")
        reception = Reception(
            gateway_id=gateway,
            gateway_eui=eui_or_none(gateway),
            rssi_dbm=number(entry, "rssi", path) or 0.0,
            snr_db=number(entry, "snr", path) or 0.0,
            channel=integer(entry, "channel", path, 0, 0xFFFF) or 0,
            antenna=integer(entry, "antenna", path, 0, 255) or 0,
            received_at=parse_timestamp(heard_at, f"{path}.gwTime") if heard_at else None,
            gateway_location=location_in(entry, "location", path),
        )
        found.append((reception, False))
    return one_per_antenna(found) if found else ()


def _radio(message: JsonObject) -> Radio:
    data_rate = integer(message, "dr", "", 0, 255) or 0
    tx = child(message, "txInfo", "")
    if tx is None:
        return Radio(data_rate=data_rate)
    modulation = child(tx, "modulation", "txInfo")
    lora = child(modulation, "lora", "txInfo.modulation") if modulation else None
    if lora is None:
        return Radio(frequency_hz=integer(tx, "frequency", "txInfo", 0, INT64_MAX) or 0, data_rate=data_rate)
    path = "txInfo.modulation.lora"
    return Radio(
        spreading_factor=integer(lora, "spreadingFactor", path, 0, 255) or 0,
        bandwidth_hz=integer(lora, "bandwidth", path, 0, UINT32_MAX) or 0,
        frequency_hz=integer(tx, "frequency", "txInfo", 0, INT64_MAX) or 0,
        coding_rate=coding_rate(text(lora, "codeRate", path) or text(lora, "codeRateLegacy", path)),
        data_rate=data_rate,
    )


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
