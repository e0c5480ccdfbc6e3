"""Elsys type/value payloads (ERS, ERS CO2, ERS Eye and the rest of the family).

A frame is a run of `type (1 byte)` + a value whose length the type fixes, all
big-endian. The three ERS codecs share one table: the devices differ only in
which types they send, and a shared table lets a reconfigured or newer device
still decode. An unknown type ends decoding and keeps what was read, as the
vendor decoder does (the length of an unknown value cannot be known). A value
cut short is a `DecodeError` at the value's offset. The fPort is not checked:
Elsys devices use a configurable port (5 by default, 1 in the vendor examples).

GPS (type 0x09) is emitted as signed raw 24-bit integers; the vendor examples
carry no scale for it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from decoders.codec import BuiltinCodec, signed_24_be
from domain.errors import DecodeError
from domain.uplink import JsonObject
from domain.use_case import CodecUseCase

_Reader = Callable[[bytes, int, JsonObject], None]

_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_THREE_I8 = struct.Struct(">bbb")
_TWO_I16 = struct.Struct(">hh")


def _scalar(key: str, layout: struct.Struct, divisor: float | None = None) -> tuple[int, _Reader]:
    unpack_from = layout.unpack_from
    if divisor is None:

        def read(data: bytes, at: int, out: JsonObject) -> None:
            out[key] = unpack_from(data, at)[0]

    else:

        def read(data: bytes, at: int, out: JsonObject) -> None:
            out[key] = unpack_from(data, at)[0] / divisor

    return layout.size, read


def _byte(key: str) -> tuple[int, _Reader]:
    def read(data: bytes, at: int, out: JsonObject) -> None:
        out[key] = data[at]

    return 1, read


def _read_acceleration(data: bytes, at: int, out: JsonObject) -> None:
    out["x"], out["y"], out["z"] = _THREE_I8.unpack_from(data, at)


def _read_position(data: bytes, at: int, out: JsonObject) -> None:
    out["lat"] = signed_24_be(data, at)
    out["long"] = signed_24_be(data, at + 3)


def _read_infrared(data: bytes, at: int, out: JsonObject) -> None:
    internal, external = _TWO_I16.unpack_from(data, at)
    out["irInternalTemperature"] = internal / 10
    out["irExternalTemperature"] = external / 10


def _read_grideye(data: bytes, at: int, out: JsonObject) -> None:
    reference = data[at]
    out["grideye"] = [reference + data[at + 1 + pixel] / 10 for pixel in range(64)]


def _read_sound(data: bytes, at: int, out: JsonObject) -> None:
    out["soundPeak"] = data[at]
    out["soundAvg"] = data[at + 1]


def _read_external_temperature_2(data: bytes, at: int, out: JsonObject) -> None:
    """Repeated probes append: the first value is a number, later ones turn it into a list."""
    value = _I16.unpack_from(data, at)[0] / 10
    previous = out.get("externalTemperature2")
    if previous is None:
        out["externalTemperature2"] = value
    elif isinstance(previous, list):
        previous.append(value)
    else:
        out["externalTemperature2"] = [previous, value]


_TYPES: dict[int, tuple[int, _Reader]] = {
    0x01: _scalar("temperature", _I16, 10),
    0x02: _byte("humidity"),
    0x03: (3, _read_acceleration),
    0x04: _scalar("light", _U16),
    0x05: _byte("motion"),
    0x06: _scalar("co2", _U16),
    0x07: _scalar("vdd", _U16),
    0x08: _scalar("analog1", _U16),
    0x09: (6, _read_position),
    0x0A: _scalar("pulse1", _U16),
    0x0B: _scalar("pulseAbs", _U32),
    0x0C: _scalar("externalTemperature", _I16, 10),
    0x0D: _byte("digital"),
    0x0E: _scalar("distance", _U16),
    0x0F: _byte("accMotion"),
    0x10: (4, _read_infrared),
    0x11: _byte("occupancy"),
    0x12: _byte("waterleak"),
    0x13: (65, _read_grideye),
    0x14: _scalar("pressure", _U32, 1000),
    0x15: (2, _read_sound),
    0x16: _scalar("pulse2", _U16),
    0x17: _scalar("pulseAbs2", _U32),
    0x18: _scalar("analog2", _U16),
    0x19: (2, _read_external_temperature_2),
    0x1A: _byte("digital2"),
    0x1B: _scalar("analogUv", _I32),
    0x1C: _scalar("tvoc", _U16),
    0x3D: _scalar("debug", _U32),
}


def decode_elsys(f_port: int, payload: bytes) -> JsonObject:
    out: JsonObject = {}
    at = 0
    end = len(payload)
    lookup = _TYPES.get
    while at < end:
        entry = lookup(payload[at])
        if entry is None:
            break
        size, read = entry
        start = at + 1
        if start + size > end:
            raise DecodeError(f"type 0x{payload[at]:02x} needs {size} bytes, {end - start} left", start)
        read(payload, start, out)
        at = start + size
    return out


CODECS: tuple[BuiltinCodec, ...] = (
    BuiltinCodec("elsys/ers-codec", ("ers",), CodecUseCase.ENVIRONMENT, decode_elsys),
    BuiltinCodec("elsys/ers-co2-codec", ("ers-co2",), CodecUseCase.ENVIRONMENT, decode_elsys),
    BuiltinCodec("elsys/ers-eye-codec", ("ers-eye",), CodecUseCase.COUNTING, decode_elsys),
)
