"""Cayenne Low Power Payload (LPP): channel, type, value records, big-endian.

Not a device codec of the Device Repository but the generic formatter many
do-it-yourself sensors (and TTN's built-in formatter) use; keys are
`<type name>_<channel>` as the network servers' own LPP formatters emit them.
Unlike the vendor families, an unknown type is an error: LPP has no per-device
table, so the length of an unknown value is unknowable and what follows would
be misread. The fPort is not checked.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from decoders.codec import BuiltinCodec, signed_24_be
from domain.errors import DecodeError
from domain.uplink import JsonObject
from domain.use_case import CodecUseCase

_Convert = Callable[[bytes, int], object]

_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_THREE_I16 = struct.Struct(">hhh")


def _axes(divisor: float) -> _Convert:
    def convert(data: bytes, at: int) -> object:
        x, y, z = _THREE_I16.unpack_from(data, at)
        return {"x": x / divisor, "y": y / divisor, "z": z / divisor}

    return convert


def _position(data: bytes, at: int) -> object:
    return {
        "latitude": signed_24_be(data, at) / 10_000,
        "longitude": signed_24_be(data, at + 3) / 10_000,
        "altitude": signed_24_be(data, at + 6) / 100,
    }


_TYPES: dict[int, tuple[str, int, _Convert]] = {
    0x00: ("digital_in", 1, lambda data, at: data[at]),
    0x01: ("digital_out", 1, lambda data, at: data[at]),
    0x02: ("analog_in", 2, lambda data, at: _I16.unpack_from(data, at)[0] / 100),
    0x03: ("analog_out", 2, lambda data, at: _I16.unpack_from(data, at)[0] / 100),
    0x65: ("luminosity", 2, lambda data, at: _U16.unpack_from(data, at)[0]),
    0x66: ("presence", 1, lambda data, at: data[at]),
    0x67: ("temperature", 2, lambda data, at: _I16.unpack_from(data, at)[0] / 10),
    0x68: ("relative_humidity", 1, lambda data, at: data[at] / 2),
    0x71: ("accelerometer", 6, _axes(1000)),
    0x73: ("barometric_pressure", 2, lambda data, at: _U16.unpack_from(data, at)[0] / 10),
    0x86: ("gyrometer", 6, _axes(100)),
    0x88: ("gps", 9, _position),
}


def decode_cayenne_lpp(f_port: int, payload: bytes) -> JsonObject:
    out: JsonObject = {}
    at = 0
    end = len(payload)
    while at < end:
        if at + 2 > end:
            raise DecodeError("record header needs 2 bytes, 1 left", at)
        channel, kind = payload[at], payload[at + 1]
        entry = _TYPES.get(kind)
        if entry is None:
            raise DecodeError(f"unknown LPP type 0x{kind:02x}", at + 1)
        name, size, convert = entry
        start = at + 2
        if start + size > end:
            raise DecodeError(f"{name} needs {size} bytes, {end - start} left", start)
        out[f"{name}_{channel}"] = convert(payload, start)
        at = start + size
    return out


CODECS: tuple[BuiltinCodec, ...] = (
    BuiltinCodec("cayenne/lpp", ("any Cayenne LPP device",), CodecUseCase.GENERIC, decode_cayenne_lpp),
)
