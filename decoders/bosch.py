"""Bosch Parking Lot Sensor TPS110 (firmware 0.29.2).

The message kind is the fPort. Keys are camelCase and type strings contain
spaces, exactly as the vendor output, so that the vendor's codec and this one
are interchangeable. Device information (fPort 4) and usage (fPort 5) are kept
as raw hex: their layouts are not documented.
"""

from __future__ import annotations

from decoders.codec import BuiltinCodec, require_bytes, unknown_f_port
from domain.uplink import JsonObject
from domain.use_case import CodecUseCase

_RESET_CAUSES = {1: "watchdog", 2: "power on", 3: "system request", 4: "other"}


def _debug_code(payload: bytes, at: int) -> int:
    return (payload[at + 1] & 0x0F) << 8 | payload[at]


def _startup(payload: bytes) -> JsonObject:
    require_bytes(payload, 0, 17, "startup message")
    codes = [_debug_code(payload, slot) for slot in (0, 4, 8)]
    return {
        "type": "startup",
        "debugCodes": [code for code in codes if code != 0],
        "firmwareVersion": f"{payload[12]}.{payload[13]}.{payload[14]}",
        "resetCause": _RESET_CAUSES.get(payload[15], "unknown"),
        "occupied": bool(payload[16] & 1),
    }


def _debug(payload: bytes) -> JsonObject:
    require_bytes(payload, 0, 10, "debug message")
    return {
        "type": "debug",
        "timestamp": int.from_bytes(payload[0:4], "little"),
        "debugCode": _debug_code(payload, 4),
        "sequenceNumber": int.from_bytes(payload[8:10], "little"),
    }


def decode_tps110(f_port: int, payload: bytes) -> JsonObject:
    if f_port == 1:
        require_bytes(payload, 0, 1, "parking status")
        return {"type": "parking status", "occupied": bool(payload[0] & 1)}
    if f_port == 2:
        require_bytes(payload, 0, 1, "heartbeat")
        out: JsonObject = {"type": "heartbeat", "occupied": bool(payload[0] & 1)}
        if len(payload) > 1:
            out["temperature"] = payload[1] - 256 if payload[1] & 0x80 else payload[1]
        return out
    if f_port == 3:
        return _startup(payload)
    if f_port == 4:
        return {"type": "device information", "data": payload.hex()}
    if f_port == 5:
        return {"type": "device usage", "data": payload.hex()}
    if f_port == 6:
        return _debug(payload)
    raise unknown_f_port(f_port)


CODECS: tuple[BuiltinCodec, ...] = (
    BuiltinCodec("bosch/tps110-0292-codec", ("tps110",), CodecUseCase.PARKING, decode_tps110),
)
