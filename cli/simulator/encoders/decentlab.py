"""Decentlab protocol v2 frames: version, device id, a mask of sensor groups, then their words (fPort 1)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

DECENTLAB_F_PORT = 1


def decentlab_frame(device_id: int, groups: Sequence[Sequence[int] | None]) -> bytes:
    """A protocol v2 frame: each present group sets its bit in the mask and appends its words."""
    flags = 0
    words: list[int] = []
    for index, group in enumerate(groups):
        if group is not None:
            flags |= 1 << index
            words.extend(group)
    return struct.pack(f">BHH{len(words)}H", 2, device_id, flags, *(min(0xFFFF, max(0, w)) for w in words))


def encode_dl_smtp(
    *, device_id: int, battery_v: float, depths: Sequence[tuple[float, float] | None] | None
) -> bytes:
    """DL-SMTP: eight depths of (moisture on the probe's raw scale, temperature °C); None = no sensor there.

    `depths=None` sends the battery-only frame the device uses when the probe did not answer.
    """
    probe: list[int] | None = None
    if depths is not None:
        padded = list(depths)[:8] + [None] * (8 - min(8, len(depths)))
        probe = []
        for depth in padded:
            if depth is None:
                probe += [0, 0]
            else:
                moisture, temperature_c = depth
                probe += [round(moisture * 500 + 2500), round(temperature_c * 100 + 32768)]
    return decentlab_frame(device_id, (probe, [round(battery_v * 1000)]))


@dataclass(frozen=True, slots=True)
class ParticulateMatter:
    """What the DL-PM's optical sensor reports: mass in µg/m³, counts per cm³, size in nm."""

    pm1_0_mass: float
    pm2_5_mass: float
    pm4_mass: float
    pm10_mass: float
    typical_particle_size_nm: float
    pm0_5_number: float
    pm1_0_number: float
    pm2_5_number: float
    pm4_number: float
    pm10_number: float


def encode_dl_pm(
    *,
    device_id: int,
    battery_v: float,
    particulate_matter: ParticulateMatter | None,
    air_temperature_c: float | None,
    air_humidity_percent: float | None,
    barometric_pressure_pa: float | None,
) -> bytes:
    pm = particulate_matter
    pm_words = (
        None
        if pm is None
        else [
            round(pm.pm1_0_mass * 10),
            round(pm.pm2_5_mass * 10),
            round(pm.pm4_mass * 10),
            round(pm.pm10_mass * 10),
            round(pm.typical_particle_size_nm),
            round(pm.pm0_5_number * 10),
            round(pm.pm1_0_number * 10),
            round(pm.pm2_5_number * 10),
            round(pm.pm4_number * 10),
            round(pm.pm10_number * 10),
        ]
    )
    climate_words = (
        None
        if air_temperature_c is None or air_humidity_percent is None
        else [
            round((air_temperature_c + 46.85) * 65536 / 175.72),
            round((air_humidity_percent + 6) * 65536 / 125),
        ]
    )
    pressure_words = None if barometric_pressure_pa is None else [round(barometric_pressure_pa / 2)]
    return decentlab_frame(device_id, ([round(battery_v * 1000)], pm_words, climate_words, pressure_words))
