"""Milesight IoT frames: records of channel id, channel type and a little-endian value (fPort 85)."""

from __future__ import annotations

from cli.simulator.encoders.wire import clamp, i16_le, u8, u16_le

MILESIGHT_F_PORT = 85


def milesight_battery(percent: float) -> bytes:
    return b"\x01\x75" + bytes((clamp(percent, 0, 100),))


def milesight_temperature(celsius: float) -> bytes:
    return b"\x03\x67" + i16_le(celsius * 10)


def milesight_humidity(percent: float) -> bytes:
    """Relative humidity, or soil moisture on the EM500-SMTC: one byte in half percent."""
    return b"\x04\x68" + u8(percent * 2)


def encode_em500_udl(*, battery_percent: float, distance_mm: float) -> bytes:
    return milesight_battery(battery_percent) + b"\x03\x82" + u16_le(distance_mm)


def encode_em310_udl(*, battery_percent: float, distance_mm: float, tilted: bool) -> bytes:
    return (
        encode_em500_udl(battery_percent=battery_percent, distance_mm=distance_mm) + b"\x04\x00" + u8(tilted)
    )


def encode_em500_smtc(
    *, battery_percent: float, temperature_c: float, moisture_percent: float, conductivity_us_cm: float
) -> bytes:
    return (
        milesight_battery(battery_percent)
        + milesight_temperature(temperature_c)
        + milesight_humidity(moisture_percent)
        + b"\x05\x7f"
        + u16_le(conductivity_us_cm)
    )


def encode_em500_swl(*, battery_percent: float, level_cm: float) -> bytes:
    return milesight_battery(battery_percent) + b"\x03\x77" + u16_le(level_cm)


def encode_am307(
    *,
    battery_percent: float | None = None,
    temperature_c: float | None = None,
    humidity_percent: float | None = None,
    pir_activity: int | None = None,
    light_level: int | None = None,
    co2_ppm: float | None = None,
    tvoc: float | None = None,
    pressure_hpa: float | None = None,
    pm2_5_ug_m3: float | None = None,
    pm10_ug_m3: float | None = None,
) -> bytes:
    """An AM307 frame with the channels given, in the device's channel order."""
    records = (
        (battery_percent, milesight_battery),
        (temperature_c, milesight_temperature),
        (humidity_percent, milesight_humidity),
        (pir_activity, lambda value: b"\x05\x6a" + u16_le(value)),
        (light_level, lambda value: b"\x06\xcb" + u8(value)),
        (co2_ppm, lambda value: b"\x07\x7d" + u16_le(value)),
        (tvoc, lambda value: b"\x08\x7d" + u16_le(value)),
        (pressure_hpa, lambda value: b"\x09\x73" + u16_le(value * 10)),
        (pm2_5_ug_m3, lambda value: b"\x0b\x7d" + u16_le(value)),
        (pm10_ug_m3, lambda value: b"\x0c\x7d" + u16_le(value)),
    )
    return b"".join(encode(value) for value, encode in records if value is not None)
