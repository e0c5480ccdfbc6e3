"""ChirpStack v3 Application Server events, in both JSON marshalers.

`json_v3` (the default) writes ids as hex, the decoded object as `object` and
only `txInfo.dr` for the radio. The `json` marshaler (protobuf-JSON) writes ids
as base64 bytes, the decoded object as a JSON *string* `objectJSON`, and
`txInfo.loRaModulationInfo` with the bandwidth in kHz. One parser reads both:
each id is taken by its length (`hex_or_base64`), each field under either name.
The binary `protobuf` marshaler would need the v3 schema, which is not
wire-compatible with v4's and not installed, so it is rejected with that reason.

v3 events carry no event time except `publishedAt` on v3.12+ protobuf-JSON;
an uplink's time otherwise is the earliest gateway time, and only when no
gateway reported one does the moment of parsing stand in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from domain.errors import MessageRejected
from domain.ids import DevEui
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
from ingest.adapters import chirpstack_gateway
from ingest.adapters.chirpstack import body_is_json, topic_event
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
    hex_or_base64,
    integer,
    load_object,
    number,
    required_text,
    stored_text,
    text,
)
from ingest.adapters.keys import hashed_key
from ingest.adapters.receptions import eui_or_none, location_in, one_per_antenna
from ingest.adapters.timestamps import parse_timestamp

IGNORED_EVENTS = frozenset({"ack", "error", "location", "txack", "integration"})


def parse_mqtt(topic: str, body: bytes) -> NetworkEvent:
    gateway_topic = chirpstack_gateway.gateway_topic(topic)
    if gateway_topic is not None:
        return chirpstack_gateway.parse_gateway_message(gateway_topic, body)
    return parse_event(topic_event(topic), body, is_json=body[:1] == b"{")


def parse_http(body: bytes, *, event: str | None, content_type: str | None) -> NetworkEvent:
    return parse_event(event or None, body, is_json=body_is_json(body, content_type))


def parse_event(event: str | None, body: bytes, *, is_json: bool) -> NetworkEvent:
    if not is_json:
        raise MessageRejected(
            "ChirpStack v3 protobuf marshaler is not supported; set the marshaler to json_v3 or json"
        )
    message = load_object(body, "ChirpStack v3 event")
    if event is None:
        event = _event_from_keys(message)
    handler = _HANDLERS.get(event)
    if handler is not None:
        return handler(message)
    if event in IGNORED_EVENTS:
        return Ignored(kind=f"chirpstack-v3 {event}")
    raise MessageRejected(f"unknown ChirpStack v3 event type {event!r}")


def _event_from_keys(message: JsonObject) -> str:
    if "fCnt" in message or "data" in message or ("rxInfo" in message and "devAddr" not in message):
        return "up"
    if "margin" in message or "batteryLevel" in message:
        return "status"
    if "devAddr" in message:
        return "join"
    if "error" in message and "type" in message:
        return "error"
    if "acknowledged" in message:
        return "ack"
    raise MessageRejected("ChirpStack v3 event of unknown shape (no up, join, status, error or ack keys)")


def _device_eui(message: JsonObject) -> DevEui:
    return dev_eui(hex_or_base64(required_text(message, "devEUI", ""), 8, "devEUI"), "devEUI")


def _published_at(message: JsonObject) -> datetime | None:
    published = text(message, "publishedAt", "")
    return parse_timestamp(published, "publishedAt") if published else None


def _uplink(message: JsonObject) -> Uplink:
    eui = _device_eui(message)
    f_cnt = integer(message, "fCnt", "", 0, UINT32_MAX) or 0
    receptions, first_uplink_id, earliest = _receptions(message)
    received_at = _published_at(message) or earliest or datetime.now(UTC)
    data = text(message, "data", "")
    dev_addr = text(message, "devAddr", "")
    return Uplink(
        network_server=NetworkServer.CHIRPSTACK_V3,
        uplink_key=hashed_key(eui, str(f_cnt), first_uplink_id or (earliest.isoformat() if earliest else "")),
        received_at=received_at,
        dev_eui=eui,
        payload=base64_bytes(data, "data") if data else b"",
        f_port=integer(message, "fPort", "", 0, 255) or 0,
        f_cnt=f_cnt,
        network_device_id=stored_text(message, "deviceName", ""),
        application_id=stored_text(message, "applicationID", ""),
        dev_addr=hex_or_base64(dev_addr, 4, "devAddr") if dev_addr else None,
        decoded_by_network=_decoded(message),
        receptions=receptions,
        radio=_radio(message),
        confirmed=flag(message, "confirmedUplink", ""),
    )


def _decoded(message: JsonObject) -> JsonObject | None:
    decoded = child(message, "object", "")
    if decoded is not None:
        return decoded
    encoded = text(message, "objectJSON", "")
    if not encoded:
        return None
    return load_object(encoded.encode(), "objectJSON")


def _receptions(message: JsonObject) -> tuple[tuple[Reception, ...], str | None, datetime | None]:
    """The receptions, the first gateway's uplink id and the earliest gateway time.

    The uplink id is a UUID string in json_v3 and its 16 bytes in base64 in
    protobuf-JSON; both become the UUID's text so that either marshaler yields
    the same dedup key.
    """
    entries = array(message, "rxInfo", "")
    found: list[tuple[Reception, bool]] = []
    first_uplink_id: str | None = None
    earliest: datetime | None = None
    for index in range(len(entries)):
        entry = element(entries, index, "rxInfo")
        path = f"rxInfo[{index}]"
        if index == 0:
            first_uplink_id = _uplink_id(entry, path)
        heard_text = text(entry, "time", path)
        heard_at = parse_timestamp(heard_text, f"{path}.time") if heard_text else None
        if heard_at is not None and (earliest is None or heard_at < earliest):
            earliest = heard_at
        gateway = gateway_id(
            hex_or_base64(required_text(entry, "gatewayID", path), 8, f"{path}.gatewayID"),
            f"{path}.gatewayID",
        )
        reception = Reception(
            gateway_id=gateway,
            gateway_eui=eui_or_none(gateway),
            rssi_dbm=number(entry, "rssi", path),
            snr_db=number(entry, "loRaSNR", path),
            channel=integer(entry, "channel", path, 0, 0xFFFF),
            antenna=integer(entry, "antenna", path, 0, 255) or 0,
            received_at=heard_at,
            gateway_location=location_in(entry, "location", path),
        )
        found.append((reception, False))
    return (one_per_antenna(found) if found else ()), first_uplink_id, earliest


def _uplink_id(entry: JsonObject, path: str) -> str | None:
    given = text(entry, "uplinkID", path)
    if not given:
        return None
    try:
        if len(given) == 36:
            return str(uuid.UUID(given))
        return str(uuid.UUID(bytes=base64_bytes(given, f"{path}.uplinkID")))
    except ValueError as exc:
        raise MessageRejected(f"{path}.uplinkID is neither a UUID nor its base64 bytes") from exc


def _radio(message: JsonObject) -> Radio:
    tx = child(message, "txInfo", "")
    data_rate = integer(message, "dr", "", 0, 255)
    if tx is None:
        return Radio(data_rate=data_rate)
    if data_rate is None:
        data_rate = integer(tx, "dr", "txInfo", 0, 255)
    frequency_hz = integer(tx, "frequency", "txInfo", 0, INT64_MAX)
    lora = child(tx, "loRaModulationInfo", "txInfo")
    if lora is None:
        return Radio(frequency_hz=frequency_hz, data_rate=data_rate)
    path = "txInfo.loRaModulationInfo"
    bandwidth_khz = integer(lora, "bandwidth", path, 0, 2**20)
    return Radio(
        spreading_factor=integer(lora, "spreadingFactor", path, 0, 255),
        bandwidth_hz=bandwidth_khz * 1000 if bandwidth_khz is not None else None,
        frequency_hz=frequency_hz,
        coding_rate=text(lora, "codeRate", path),
        data_rate=data_rate,
    )


def _join(message: JsonObject) -> Join:
    eui = _device_eui(message)
    _, _, earliest = _receptions(message)
    dev_addr = text(message, "devAddr", "")
    return Join(
        network_server=NetworkServer.CHIRPSTACK_V3,
        received_at=_published_at(message) or earliest or datetime.now(UTC),
        dev_eui=eui,
        network_device_id=stored_text(message, "deviceName", ""),
        dev_addr=hex_or_base64(dev_addr, 4, "devAddr") if dev_addr else None,
    )


def _status(message: JsonObject) -> DeviceStatus:
    external_power = flag(message, "externalPowerSource", "")
    unavailable = flag(message, "batteryLevelUnavailable", "")
    return DeviceStatus(
        network_server=NetworkServer.CHIRPSTACK_V3,
        received_at=_published_at(message) or datetime.now(UTC),
        dev_eui=_device_eui(message),
        battery_percent=None if unavailable or external_power else number(message, "batteryLevel", ""),
        margin_db=integer(message, "margin", "", -128, 127),
        external_power=external_power,
    )


_HANDLERS: dict[str, Callable[[JsonObject], NetworkEvent]] = {"up": _uplink, "join": _join, "status": _status}
