"""Fixed-width integer fields as the sensors write them: rounded, clamped to what fits, never raising."""

from __future__ import annotations

import struct


def clamp(value: float, low: int, high: int) -> int:
    return min(high, max(low, round(value)))


def u8(value: float) -> bytes:
    return bytes((clamp(value, 0, 0xFF),))


def u16_le(value: float) -> bytes:
    return struct.pack("<H", clamp(value, 0, 0xFFFF))


def i16_le(value: float) -> bytes:
    return struct.pack("<h", clamp(value, -0x8000, 0x7FFF))


def u16_be(value: float) -> bytes:
    return struct.pack(">H", clamp(value, 0, 0xFFFF))


def i16_be(value: float) -> bytes:
    return struct.pack(">h", clamp(value, -0x8000, 0x7FFF))


def i8(value: float) -> bytes:
    return struct.pack("b", clamp(value, -0x80, 0x7F))
