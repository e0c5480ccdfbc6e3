"""Dragino fixed-layout frames: LDDS75 (ultrasonic distance) and LSE01 (soil), two firmware lines each.

Measurements arrive on fPort 2; any other port is an error ("unknown FPort"),
as in the vendor decoders. The first word is the battery in mV with two flag
bits on top (`& 0x3FFF`). Like the vendor output, temperatures and moisture are
strings with fixed decimals and the 1.1.4 distance is a string "<n> mm"; stage
2 parses them back to numbers.

Behaviour chosen against the vendor decoders:
- LSE01 negative soil temperature is read as two's complement. The vendor
  subtracts 0xFFFF instead of 0x10000, giving values 0.01 °C too high; not
  reproduced.
- LDDS75 firmware 1.2 (`ldds75-codec`): a 5-byte frame yields `Bat`,
  `distance` (mm, from bytes 2-3) and `Interrupt_flag`. The vendor decoder
  stores the battery word in `distance`; not reproduced. Any other length
  answers `{"distance": "No Sensor"}`, as the vendor does.
- LSE01 1.1.4 splits byte 10 into overlapping flags (sensor = high nibble,
  interrupt = low nibble, hardware = bit 2); reproduced as the vendor documents it.
"""

from __future__ import annotations

from decoders.codec import BuiltinCodec, require_bytes, unknown_f_port
from domain.uplink import JsonObject
from domain.use_case import CodecUseCase

_MEASUREMENT_PORT = 2


def _u16(payload: bytes, at: int) -> int:
    return payload[at] << 8 | payload[at + 1]


def _i16(payload: bytes, at: int) -> int:
    value = _u16(payload, at)
    return value - 0x10000 if value & 0x8000 else value


def _battery_volts(payload: bytes) -> float:
    return (_u16(payload, 0) & 0x3FFF) / 1000


def _measurement_frame(f_port: int, payload: bytes, length: int, what: str) -> None:
    if f_port != _MEASUREMENT_PORT:
        raise unknown_f_port(f_port)
    require_bytes(payload, 0, length, what)


def decode_ldds75_114(f_port: int, payload: bytes) -> JsonObject:
    _measurement_frame(f_port, payload, 8, "LDDS75 frame")
    return {
        "Bat": _battery_volts(payload),
        "Distance": f"{_u16(payload, 2)} mm",
        "Interrupt_flag": payload[4],
        "TempC_DS18B20": f"{_i16(payload, 5) / 10:.2f}",
        "Sensor_flag": payload[7],
    }


def decode_ldds75(f_port: int, payload: bytes) -> JsonObject:
    if f_port != _MEASUREMENT_PORT:
        raise unknown_f_port(f_port)
    if len(payload) != 5:
        return {"distance": "No Sensor"}
    return {"Bat": _battery_volts(payload), "distance": _u16(payload, 2), "Interrupt_flag": payload[4]}


def _soil_values(payload: bytes, temperature_decimals: int) -> JsonObject:
    return {
        "Bat": _battery_volts(payload),
        "TempC_DS18B20": f"{_i16(payload, 2) / 10:.{temperature_decimals}f}",
        "water_SOIL": f"{_u16(payload, 4) / 100:.2f}",
        "temp_SOIL": f"{_i16(payload, 6) / 100:.2f}",
        "conduct_SOIL": _u16(payload, 8),
    }


def decode_lse01(f_port: int, payload: bytes) -> JsonObject:
    _measurement_frame(f_port, payload, 11, "LSE01 frame")
    return _soil_values(payload, temperature_decimals=1)


def decode_lse01_114(f_port: int, payload: bytes) -> JsonObject:
    _measurement_frame(f_port, payload, 11, "LSE01 frame")
    out = _soil_values(payload, temperature_decimals=2)
    flags = payload[10]
    out["Sensor_flag"] = flags >> 4
    out["Interrupt_flag"] = flags & 0x0F
    out["Hardware_flag"] = flags >> 2 & 1
    return out


CODECS: tuple[BuiltinCodec, ...] = (
    BuiltinCodec("dragino/ldds75-codec", ("ldds75",), CodecUseCase.WASTE, decode_ldds75),
    BuiltinCodec("dragino/ldds75-114-codec", ("ldds75",), CodecUseCase.WASTE, decode_ldds75_114),
    BuiltinCodec("dragino/lse01-codec", ("lse01",), CodecUseCase.SOIL, decode_lse01),
    BuiltinCodec("dragino/lse01-114-codec", ("lse01",), CodecUseCase.SOIL, decode_lse01_114),
)
