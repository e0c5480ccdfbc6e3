"""Elsys frames: records of a type byte and a big-endian value (fPort 5 by default)."""

from __future__ import annotations

from cli.simulator.encoders.wire import i16_be, u8, u16_be

ELSYS_F_PORT = 5


def encode_ers_co2(
    *,
    temperature_c: float,
    humidity_percent: float,
    light_lux: float,
    motion_count: int,
    co2_ppm: float,
    vdd_mv: float | None = None,
) -> bytes:
    frame = (
        b"\x01"
        + i16_be(temperature_c * 10)
        + b"\x02"
        + u8(humidity_percent)
        + b"\x04"
        + u16_be(light_lux)
        + b"\x05"
        + u8(motion_count)
        + b"\x06"
        + u16_be(co2_ppm)
    )
    if vdd_mv is not None:
        frame += b"\x07" + u16_be(vdd_mv)
    return frame
