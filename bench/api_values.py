"""What the benchmark's devices measure: noise per (device, slot) from a hash, values per use case."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.api_fleet import BATTERY, DAY_S, SEED, SLOT_S, SLOTS_PER_DAY, DevicePlan, Fleet
from bench.arrays import Floats, Ints, Words

LOCAL_OFFSET_S = 3600
"""Central European time for day profiles; summer time is ignored, plausibility is all that matters."""
LOSS_SHARE = 0.008


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = 0x9E3779B97F4A7C15


def mix(device_ids: Ints | int, slots: Ints, salt: int) -> Words:
    """A 64-bit hash of (device, slot, salt), broadcast like the inputs (splitmix64's finaliser)."""
    x = (np.asarray(device_ids).astype(np.uint64) << np.uint64(40)) ^ slots.astype(np.uint64)
    x = x ^ np.uint64((salt * _GOLDEN) & 0xFFFFFFFFFFFFFFFF)
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def uniform(words: Words) -> Floats:
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normal(device_ids: Ints | int, slots: Ints, salt: int) -> Floats:
    """Box-Muller on two hashes: a standard normal per (device, slot)."""
    u1 = uniform(mix(device_ids, slots, salt))
    u2 = uniform(mix(device_ids, slots, salt + 7919))
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


SALT_LOSS, SALT_JITTER, SALT_KEY, SALT_PAYLOAD, SALT_HEARD, SALT_RSSI, SALT_SNR = 1, 2, 3, 4, 10, 20, 30


def slot_times(device_ids: Ints | int, phase_s: Ints | int, slots: Ints) -> Ints:
    jitter = (mix(device_ids, slots, SALT_JITTER) % np.uint64(3)).astype(np.int64)
    return slots * SLOT_S + np.asarray(phase_s, dtype=np.int64) + jitter


def lost(device_ids: Ints | int, slots: Ints) -> NDArray[np.bool_]:
    return uniform(mix(device_ids, slots, SALT_LOSS)) < LOSS_SHARE


def link_signal(device_ids: Ints, slots: Ints, link: int, mean_rssi: Floats) -> tuple[Floats, Floats]:
    """RSSI (dBm, whole) and SNR (dB, quarter steps) of one link for each frame."""
    rssi = np.round(mean_rssi + 3.0 * normal(device_ids, slots, SALT_RSSI + link))
    snr = np.clip((rssi + 121.0) / 2.5, -19.0, 11.0) + normal(device_ids, slots, SALT_SNR + link)
    return rssi, np.round(snr * 4.0) / 4.0


# -- values ---------------------------------------------------------------------------------

_GRID = np.linspace(-5.0, 5.0, 2001)
_CDF = 0.5 * (1.0 + np.array([math.erf(x / math.sqrt(2.0)) for x in _GRID]))


def smooth_noise(rng: np.random.Generator, n: int, persistence: float) -> Floats:
    """Unit-variance noise correlated over time (an AR(1) process by its truncated kernel)."""
    taps = int(min(4000, max(8, 5.0 / (1.0 - persistence))))
    kernel = persistence ** np.arange(taps, dtype=np.float64)
    white = rng.standard_normal(n + taps - 1)
    return np.convolve(white, kernel, mode="valid")[:n] / float(np.sqrt(np.sum(kernel**2)))


def _bump(hour: Floats, rise: float, fall: float) -> Floats:
    """1 between `rise` and `fall` o'clock, with one-hour ramps, else 0."""
    return np.clip(hour - rise + 0.5, 0.0, 1.0) * np.clip(fall - hour + 0.5, 0.0, 1.0)


def _local_clock(times_s: Ints) -> tuple[Floats, Ints]:
    local = times_s + LOCAL_OFFSET_S
    hour = (local % DAY_S).astype(np.float64) / 3600.0
    weekday = (local // DAY_S + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    return hour, weekday


def parking_values(times_s: Ints, rng: np.random.Generator, busy: float) -> Floats:
    hour, weekday = _local_clock(times_s)
    profile = np.select(
        [weekday < 5, weekday == 5],
        [0.25 + 0.65 * _bump(hour, 7.5, 18.5), 0.2 + 0.55 * _bump(hour, 9.0, 16.0)],
        0.15 + 0.3 * _bump(hour, 11.0, 18.0),
    )
    share = np.clip(profile * busy, 0.02, 0.98)
    threshold = np.interp(share, _CDF, _GRID)
    return (smooth_noise(rng, times_s.size, 0.93) < threshold).astype(np.float64)


def waste_values(times_s: Ints, rng: np.random.Generator) -> Floats:
    period = int(rng.choice((3, 4, 7))) * DAY_S
    first = (int(times_s[0]) // DAY_S) * DAY_S + 5 * 3600 - int(rng.integers(0, 7)) * DAY_S
    emptied = first + ((times_s - first) // period) * period
    at_collection = rng.uniform(55.0, 115.0)
    rest = rng.uniform(1.0, 6.0)
    fill = rest + (at_collection - rest) * (times_s - emptied) / period
    fill = fill + 1.2 * rng.standard_normal(times_s.size)
    return np.round(np.clip(fill, 0.0, 100.0), 1).astype(np.float64)


def soil_values(times_s: Ints, rng: np.random.Generator) -> Floats:
    capacity = rng.uniform(28.0, 40.0)
    floor = rng.uniform(7.0, 14.0)
    drying_s = rng.uniform(3.0, 9.0) * DAY_S
    span = float(times_s[-1] - times_s[0]) + 20 * DAY_S
    gaps = rng.exponential(6.0 * DAY_S, size=int(span / (6.0 * DAY_S) * 2) + 10)
    wetted = float(times_s[0]) - rng.uniform(0.0, 10.0 * DAY_S) + np.concatenate(([0.0], np.cumsum(gaps)))
    last = wetted[np.searchsorted(wetted, times_s, side="right") - 1]
    hour, _ = _local_clock(times_s)
    moisture = floor + (capacity - floor) * np.exp(-(times_s - last) / drying_s)
    moisture = moisture + 0.3 * np.sin(2.0 * np.pi * hour / 24.0) + 0.2 * rng.standard_normal(times_s.size)
    return np.round(np.clip(moisture, 0.0, 60.0), 1).astype(np.float64)


def environment_values(quantity: str, times_s: Ints, rng: np.random.Generator) -> Floats:
    hour, weekday = _local_clock(times_s)
    if quantity == "co2":
        traffic = _bump(hour, 7.0, 19.0) * np.where(weekday < 5, 1.0, 0.4)
        return np.round(420.0 + 140.0 * traffic + 25.0 * smooth_noise(rng, times_s.size, 0.9))
    if quantity == "water_level":
        level = 85.0 + 25.0 * smooth_noise(rng, times_s.size, 0.999) + 0.5 * rng.standard_normal(times_s.size)
        return np.round(level, 1)
    day_of_year = (times_s / DAY_S) % 365.2425
    season = -np.cos(2.0 * np.pi * (day_of_year - 15.0) / 365.2425)
    daily = np.cos(2.0 * np.pi * (hour - 16.0) / 24.0)
    temperature = 9.5 + 9.0 * season + 4.0 * daily + 1.5 * smooth_noise(rng, times_s.size, 0.98)
    return np.round(temperature + rng.normal(0.0, 0.8), 1)


def battery_values(times_s: Ints, rng: np.random.Generator, start_s: int) -> Floats:
    level = rng.uniform(60.0, 100.0) - rng.uniform(0.005, 0.04) * (times_s - start_s) / DAY_S
    noisy = level + 0.3 * rng.standard_normal(times_s.size)
    return np.round(np.clip(noisy, 1.0, 100.0)).astype(np.float64)


@dataclass(frozen=True, slots=True)
class SeriesData:
    quantity: str
    times_s: Ints
    values: Floats


def device_series(fleet: Fleet, device: DevicePlan) -> list[SeriesData]:
    """The device's readings, ordered as the reading key is (quantity, then time)."""
    rng = np.random.default_rng([SEED, device.id])
    slots = np.arange(fleet.first_slot, fleet.end_slot, dtype=np.int64)
    times = slot_times(device.id, device.phase_s, slots)
    kept = ~lost(device.id, slots)
    if device.use_case == "parking":
        busy = fleet.towns[device.town].zones[device.metadata["parking_zone"]]
        main = parking_values(times, rng, busy)
    elif device.use_case == "waste":
        main = waste_values(times, rng)
    elif device.use_case == "soil":
        main = soil_values(times, rng)
    else:
        main = environment_values(device.quantity, times, rng)
    daily = kept & (slots % SLOTS_PER_DAY == device.id % SLOTS_PER_DAY)
    battery = battery_values(times[daily], rng, fleet.first_slot * SLOT_S)
    found = [
        SeriesData(device.quantity, times[kept], main[kept]),
        SeriesData(BATTERY, times[daily], battery),
    ]
    return sorted(found, key=lambda series: series.quantity)
