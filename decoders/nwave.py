"""Nwave parking sensors: NPS405 (in-ground, SM/FM) and NPS310 (surface mount).

The message kind is the fPort. Bit 0 of byte 0 is "occupied" in every kind that
carries it; this is the layout the vendor examples confirm (0x95 = occupied
after 74 minutes). One stored vendor decoder reads occupied from bit 7 instead;
that version contradicts its own examples and is not reproduced.

NPS405 user registration (fPort 10) exists in two layouts: 5 bytes (tag id in
bytes 1-4) and, in another vendor revision, 6 bytes with the tag battery in
byte 1. Both are accepted, told apart by length.
"""

from __future__ import annotations

from decoders.codec import BuiltinCodec, require_bytes, unknown_f_port
from domain.uplink import JsonObject
from domain.use_case import CodecUseCase

_NPS405_RESET_CAUSES = {
    0: "rejoining_lorawan_network",
    1: "watchdog",
    2: "power_on",
    3: "user_request",
    6: "brownout",
    7: "other",
}
_NPS310_RESET_CAUSES = {1: "watchdog", 2: "power_on", 3: "user_request", 4: "brownout", 5: "other"}


def _state_with_duration(status: int) -> JsonObject:
    """Occupancy and the compressed length of the previous state (minutes, with its error bound)."""
    compressed = status >> 1
    overflow = False
    error: int | None
    if compressed < 90:
        duration, error = compressed, 0
    elif compressed < 120:
        duration, error = 90 + (compressed - 90) * 5, 4
    elif compressed < 127:
        duration, error = 240 + (compressed - 120) * 60, 59
    else:
        duration, error, overflow = 660, None, True
    return {
        "occupied": bool(status & 1),
        "previous_state_duration": duration,
        "previous_state_duration_error": error,
        "previous_state_duration_overflow": overflow,
    }


def _startup(payload: bytes, reset_causes: dict[int, str]) -> JsonObject:
    require_bytes(payload, 0, 5, "startup message")
    return {
        "type": "startup",
        "firmware_version": f"{payload[0]}.{payload[1]}.{payload[2]}",
        "reset_cause": reset_causes.get(payload[3], "unknown"),
        "occupied": bool(payload[4] & 1),
    }


def _debug(payload: bytes) -> JsonObject:
    return {"type": "debug", "data": payload.hex()}


def _battery_health(millivolts: int, temperature: float) -> str:
    critical, low = (2900, 3000) if temperature >= -5 else (2800, 2900)
    if millivolts < critical:
        return "critical"
    if millivolts < low:
        return "low"
    return "normal"


def _nps405_heartbeat(payload: bytes) -> JsonObject:
    """Byte 0 holds occupied (bit 0) and, as documented, `byte0 & 0x7F` as the health status."""
    require_bytes(payload, 0, 3, "heartbeat")
    millivolts = 2500 + 4 * payload[1]
    raw_temperature = payload[2] - 256 if payload[2] & 0x80 else payload[2]
    temperature = raw_temperature / 2 + 10
    return {
        "type": "heartbeat",
        "occupied": bool(payload[0] & 1),
        "battery_voltage": millivolts / 1000,
        "temperature": temperature,
        "battery_health": _battery_health(millivolts, temperature),
        "hw_health_status": payload[0] & 0x7F,
    }


def _nps405_registration(payload: bytes) -> JsonObject:
    require_bytes(payload, 0, 5, "user registration")
    out: JsonObject = {"type": "user_registration"}
    if payload[0] & 1:
        out.update(_state_with_duration(payload[0]))
    else:
        out.update(
            {
                "occupied": None,
                "previous_state_duration": None,
                "previous_state_duration_error": None,
                "previous_state_duration_overflow": None,
            }
        )
    tag_at = 1
    if len(payload) >= 6:
        out["tag_battery_voltage"] = payload[1] / 10
        tag_at = 2
    tag = int.from_bytes(payload[tag_at : tag_at + 4], "big")
    out["tag_id"] = f"{tag:X}"
    return out


def decode_nps405(f_port: int, payload: bytes) -> JsonObject:
    if f_port == 1:
        require_bytes(payload, 0, 1, "parking status")
        return {"type": "parking_status", **_state_with_duration(payload[0])}
    if f_port == 2:
        return _nps405_heartbeat(payload)
    if f_port == 3:
        return _startup(payload, _NPS405_RESET_CAUSES)
    if f_port == 6:
        return _debug(payload)
    if f_port == 10:
        return _nps405_registration(payload)
    raise unknown_f_port(f_port)


def decode_nps310(f_port: int, payload: bytes) -> JsonObject:
    if f_port in (1, 2):
        require_bytes(payload, 0, 1, "status")
        kind = "parking_status" if f_port == 1 else "heartbeat"
        return {"type": kind, "occupied": bool(payload[0] & 1)}
    if f_port == 3:
        return _startup(payload, _NPS310_RESET_CAUSES)
    if f_port == 6:
        return _debug(payload)
    raise unknown_f_port(f_port)


CODECS: tuple[BuiltinCodec, ...] = (
    BuiltinCodec("nwave/nps405-codec", ("nps405sm", "nps405fm"), CodecUseCase.PARKING, decode_nps405),
    BuiltinCodec("nwave/nps310sm-codec", ("nps310sm",), CodecUseCase.PARKING, decode_nps310),
)
