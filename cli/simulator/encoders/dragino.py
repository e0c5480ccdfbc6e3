"""Dragino frames: fixed big-endian layouts whose first word is the battery in mV (fPort 2)."""

from __future__ import annotations

import struct

from cli.simulator.encoders.wire import clamp, i16_be, u8, u16_be

DRAGINO_F_PORT = 2


def _dragino_battery(millivolts: float, flag_bits: int) -> bytes:
    """The battery word: mV in the low 14 bits, device flags in the top two."""
    return struct.pack(">H", ((flag_bits & 0x3) << 14) | clamp(millivolts, 0, 0x3FFF))


def encode_ldds75(*, battery_mv: float, distance_mm: float, interrupt: bool = False) -> bytes:
    """The 5-byte LDDS75 frame (firmware 1.2): battery, distance in mm, interrupt flag."""
    return _dragino_battery(battery_mv, 0) + u16_be(distance_mm) + u8(interrupt)


def encode_lse01(
    *,
    battery_mv: float,
    ds18b20_temperature_c: float,
    moisture_percent: float,
    soil_temperature_c: float,
    conductivity_us_cm: float,
    flags: int = 0,
    battery_flag_bits: int = 0,
) -> bytes:
    return (
        _dragino_battery(battery_mv, battery_flag_bits)
        + i16_be(ds18b20_temperature_c * 10)
        + u16_be(moisture_percent * 100)
        + i16_be(soil_temperature_c * 100)
        + u16_be(conductivity_us_cm)
        + u8(flags)
    )
