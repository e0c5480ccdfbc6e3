"""ChirpStack v4 device events in their protobuf encoding (MQTT `json=false`, HTTP without JSON).

Fields are read straight off the generated messages rather than through
`MessageToDict`, which would cost a dict per nested message and lose nothing
we need. Protobuf accepts almost any bytes as *some* message, so the checks
that matter are semantic: an uplink without a deduplication id, time or DevEUI
is rejected, floats must be finite and strings free of NUL, because the values
go to PostgreSQL unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chirpstack_api import gw, integration
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from domain.errors import MessageRejected
from domain.ids import DevEui
from domain.uplink import (
    DeviceStatus,
    Ignored,
    Join,
    JsonObject,
    Location,
    NetworkEvent,
    NetworkServer,
    Radio,
    Reception,
    Uplink,
)
from ingest.adapters.json_fields import (
    STORED_TEXT_LIMIT,
    dev_eui,
    finite,
    gateway_id,
    reject_nul_characters,
)
from ingest.adapters.keys import bounded_key
from ingest.adapters.receptions import eui_or_none, location_or_none, one_per_antenna
from ingest.adapters.timestamps import from_epoch

CODING_RATES = {
    "CR_4_5": "4/5",
    "CR_4_6": "4/6",
    "CR_4_7": "4/7",
    "CR_4_8": "4/8",
    "CR_3_8": "3/8",
    "CR_2_6": "2/6",
    "CR_1_4": "1/4",
    "CR_1_6": "1/6",
    "CR_5_6": "5/6",
    "CR_LI_4_5": "LI 4/5",
    "CR_LI_4_6": "LI 4/6",
    "CR_LI_4_8": "LI 4/8",
}
"""ChirpStack's `CodeRate` enum names in the "4/5" spelling TTS and ChirpStack v3 use."""

_MESSAGE_TYPES: dict[str, Any] = {
    "up": integration.UplinkEvent,
    "join": integration.JoinEvent,
    "status": integration.StatusEvent,
    "ack": integration.AckEvent,
    "txack": integration.TxAckEvent,
    "log": integration.LogEvent,
    "location": integration.LocationEvent,
}
"""Every event whose schema chirpstack-api ships; `integration` events are ignored unparsed."""


def coding_rate(name: str | None) -> str | None:
    if not name or name == "CR_UNDEFINED":
        return None
    return CODING_RATES.get(name, name)


def decode(message_type: Any, body: bytes) -> Any:
    message = message_type()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise MessageRejected(f"not a valid protobuf {message_type.DESCRIPTOR.full_name}: {exc}") from exc
    return message


def parse_event(event: str, body: bytes) -> NetworkEvent:
    message_type = _MESSAGE_TYPES.get(event)
    if message_type is None:
        if event == "integration":
            return Ignored(kind="chirpstack integration")
        raise MessageRejected(f"unknown ChirpStack event type {event!r}")
    message = decode(message_type, body)
    handler = _HANDLERS.get(event)
    return handler(message) if handler is not None else Ignored(kind=f"chirpstack {event}")


def clean_text(value: str, path: str) -> str | None:
    """A protobuf string as we store it: empty means unset, NUL is refused, length capped."""
    if not value:
        return None
    if "\x00" in value:
        raise MessageRejected(f"{path} contains a NUL character, which PostgreSQL cannot store")
    return value[:STORED_TEXT_LIMIT]


def timestamp(message: Any, field: str, path: str) -> datetime | None:
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    return from_epoch(value.seconds, value.nanos, path)


def required_timestamp(message: Any, field: str, path: str) -> datetime:
    found = timestamp(message, field, path)
    if found is None:
        raise MessageRejected(f"{path} is missing")
    return found


def location_field(message: Any, path: str) -> Location | None:
    """A `common.Location` field, unset or zero meaning unknown as in JSON."""
    if not message.HasField("location"):
        return None
    position = message.location
    return location_or_none(
        finite(position.latitude, path), finite(position.longitude, path), finite(position.altitude, path)
    )


def _device(message: Any) -> tuple[DevEui, str | None, str | None]:
    if not message.HasField("device_info"):
        raise MessageRejected("ChirpStack event has no deviceInfo")
    info = message.device_info
    eui = clean_text(info.dev_eui, "deviceInfo.devEui")
    if eui is None:
        raise MessageRejected("deviceInfo.devEui is missing")
    return (
        dev_eui(eui, "deviceInfo.devEui"),
        clean_text(info.device_name, "deviceInfo.deviceName"),
        clean_text(info.application_id, "deviceInfo.applicationId"),
    )


def _in_range(value: int, high: int, path: str) -> int:
    if value > high:
        raise MessageRejected(f"{path} = {value} is outside 0..{high}")
    return value


def _uplink(event: Any) -> Uplink:
    eui, name, application_id = _device(event)
    deduplication_id = clean_text(event.deduplication_id, "deduplicationId")
    if deduplication_id is None:
        raise MessageRejected("deduplicationId is missing")
    return Uplink(
        network_server=NetworkServer.CHIRPSTACK_V4,
        uplink_key=bounded_key(deduplication_id),
        received_at=required_timestamp(event, "time", "time"),
        dev_eui=eui,
        payload=bytes(event.data),
        f_port=_in_range(event.f_port, 255, "fPort"),
        f_cnt=event.f_cnt,
        network_device_id=name,
        application_id=application_id,
        dev_addr=clean_text(event.dev_addr, "devAddr"),
        decoded_by_network=_object(event),
        receptions=_receptions(event),
        radio=_radio(event),
        confirmed=event.confirmed,
    )


def _object(event: Any) -> JsonObject | None:
    if not event.HasField("object"):
        return None
    try:
        decoded: JsonObject = json_format.MessageToDict(event.object)
    except ValueError as exc:
        raise MessageRejected(f"object cannot be represented as JSON: {exc}") from exc
    reject_nul_characters(decoded, "object")
    return decoded


def _receptions(event: Any) -> tuple[Reception, ...]:
    found: list[tuple[Reception, bool]] = []
    for index, entry in enumerate(event.rx_info):
        path = f"rxInfo[{index}]"
        name = clean_text(entry.gateway_id, f"{path}.gatewayId")
        if name is None:
            raise MessageRejected(f"{path}.gatewayId is missing")
        heard_at = timestamp(entry, "gw_time", f"{path}.gwTime") or timestamp(
            entry, "ns_time", f"{path}.nsTime"
        )
        gateway = gateway_id(name, f"{path}.gatewayId")
        reception = Reception(
            gateway_id=gateway,
            gateway_eui=eui_or_none(gateway),
            rssi_dbm=float(entry.rssi),
            snr_db=finite(entry.snr, f"{path}.snr"),
            channel=_in_range(entry.channel, 0xFFFF, f"{path}.channel"),
            antenna=_in_range(entry.antenna, 255, f"{path}.antenna"),
            received_at=heard_at,
            gateway_location=location_field(entry, f"{path}.location"),
        )
        found.append((reception, False))
    return one_per_antenna(found) if found else ()


def _radio(event: Any) -> Radio:
    data_rate = _in_range(event.dr, 255, "dr")
    if not event.HasField("tx_info"):
        return Radio(data_rate=data_rate)
    tx = event.tx_info
    if not tx.modulation.HasField("lora"):
        return Radio(frequency_hz=tx.frequency, data_rate=data_rate)
    lora = tx.modulation.lora
    try:
        rate_name: str | None = gw.CodeRate.Name(lora.code_rate)
    except ValueError:
        rate_name = None
    return Radio(
        spreading_factor=_in_range(lora.spreading_factor, 255, "txInfo.modulation.lora.spreadingFactor"),
        bandwidth_hz=lora.bandwidth,
        frequency_hz=tx.frequency,
        coding_rate=coding_rate(rate_name) or clean_text(lora.code_rate_legacy, "txInfo.modulation.lora"),
        data_rate=data_rate,
    )


def _join(event: Any) -> Join:
    eui, name, _ = _device(event)
    return Join(
        network_server=NetworkServer.CHIRPSTACK_V4,
        received_at=required_timestamp(event, "time", "time"),
        dev_eui=eui,
        network_device_id=name,
        dev_addr=clean_text(event.dev_addr, "devAddr"),
    )


def _status(event: Any) -> DeviceStatus:
    eui, _, _ = _device(event)
    if not -128 <= event.margin <= 127:
        raise MessageRejected(f"margin = {event.margin} is outside -128..127")
    unavailable = event.battery_level_unavailable or event.external_power_source
    return DeviceStatus(
        network_server=NetworkServer.CHIRPSTACK_V4,
        received_at=required_timestamp(event, "time", "time"),
        dev_eui=eui,
        battery_percent=None if unavailable else finite(event.battery_level, "batteryLevel"),
        margin_db=event.margin,
        external_power=event.external_power_source,
    )


_HANDLERS: dict[str, Callable[[Any], NetworkEvent]] = {"up": _uplink, "join": _join, "status": _status}
