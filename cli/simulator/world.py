"""The world every sensor model sees: German local time and each town's weather, as functions of time.

Weather (air temperature, rain, pressure) is shared per town and is a pure function of
time, so that every tree in a town gets the same shower and the simulation replays
identically for the same seed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

HOUR_S = 3600.0
DAY_S = 86400.0
_MASK64 = (1 << 64) - 1


def unit_noise(*keys: int) -> float:
    """A deterministic number in [0, 1) for a tuple of integers (splitmix64 over the keys).

    Used where a value must depend only on *when* and *where* (the rain of an hour in a
    town), not on how often the model was asked.
    """
    state = 0x9E3779B97F4A7C15
    for key in keys:
        state = (state + (key & _MASK64) + 0x9E3779B97F4A7C15) & _MASK64
        state = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        state = ((state ^ (state >> 27)) * 0x94D049BB133111EB) & _MASK64
        state ^= state >> 31
    return state / 2.0**64


def text_key(text: str) -> int:
    """A stable integer for a string; Python's own `hash` changes from run to run."""
    return zlib.crc32(text.encode())


@lru_cache(maxsize=64)
def _summer_time_bounds(year: int) -> tuple[float, float]:
    """Start and end of Central European Summer Time (last Sundays of March and October, 01:00 UTC)."""

    def last_sunday(month: int) -> datetime:
        day = datetime(year, month, 31, 1, tzinfo=UTC)
        return day - timedelta(days=(day.weekday() + 1) % 7)

    return last_sunday(3).timestamp(), last_sunday(10).timestamp()


@dataclass(frozen=True, slots=True)
class LocalTime:
    """Wall-clock time in Germany, which is what people's habits follow."""

    hour: float  # 0 <= hour < 24, with fraction
    weekday: int  # Monday = 0
    day_of_year: int
    day_number: int  # days since 1970-01-01 in local time, to key daily events


def local_time(now: datetime) -> LocalTime:
    """German local time of an aware instant without needing the tz database installed."""
    ts = now.timestamp()
    begin, end = _summer_time_bounds(now.astimezone(UTC).year)
    shifted = ts + (7200.0 if begin <= ts < end else 3600.0)
    day_number = int(shifted // DAY_S)
    local = datetime.fromtimestamp(day_number * DAY_S, UTC)
    return LocalTime(
        hour=(shifted - day_number * DAY_S) / HOUR_S,
        weekday=local.weekday(),
        day_of_year=local.timetuple().tm_yday,
        day_number=day_number,
    )


def hour_chunks(start_ts: float, end_ts: float) -> Iterator[tuple[float, float]]:
    """Split [start, end) at whole hours, yielding (chunk start, chunk length in hours).

    Integrating models hour by hour keeps hourly weather (a shower) and the day curve
    (midday evaporation) right even when the model is asked only once a day.
    """
    cursor = start_ts
    while cursor < end_ts:
        boundary = min(end_ts, (math.floor(cursor / HOUR_S) + 1) * HOUR_S)
        yield cursor, (boundary - cursor) / HOUR_S
        cursor = boundary


class Weather:
    """Air temperature, rain and pressure of one town, as pure functions of time."""

    def __init__(self, seed: int, town_key: int, *, rain_probability: float = 0.07) -> None:
        self._seed = seed
        self._town_key = town_key
        self._rain_probability = rain_probability

    def _day_offset(self, day_number: float, channel: int, spread: float) -> float:
        """Smooth day-to-day variation: random per day, linearly blended between days."""
        day = math.floor(day_number)
        fraction = day_number - day
        before = unit_noise(self._seed, self._town_key, channel, day) - 0.5
        after = unit_noise(self._seed, self._town_key, channel, day + 1) - 0.5
        return 2.0 * spread * (before + (after - before) * fraction)

    def daily_mean_c(self, now: datetime) -> float:
        clock = local_time(now)
        seasonal = 9.5 + 8.5 * math.sin(2 * math.pi * (clock.day_of_year - 105) / 365.0)
        return seasonal + self._day_offset(now.timestamp() / DAY_S, 1, 4.0)

    def air_temperature_c(self, now: datetime) -> float:
        clock = local_time(now)
        summer = math.sin(2 * math.pi * (clock.day_of_year - 105) / 365.0)
        amplitude = 4.5 + 2.0 * summer
        return self.daily_mean_c(now) + amplitude * math.sin(2 * math.pi * (clock.hour - 9.0) / 24.0)

    def relative_humidity_percent(self, now: datetime) -> float:
        """Highest at dawn, lowest in the warm afternoon, as outdoor humidity goes."""
        excess = self.air_temperature_c(now) - self.daily_mean_c(now)
        wet = 12.0 if self.rain_mm_per_h(now) > 0 else 0.0
        return min(98.0, max(30.0, 70.0 - 2.5 * excess + wet))

    def rain_mm_per_h(self, now: datetime) -> float:
        hour_index = int(now.timestamp() // HOUR_S)
        draw = unit_noise(self._seed, self._town_key, 2, hour_index)
        if draw >= self._rain_probability:
            return 0.0
        strength = unit_noise(self._seed, self._town_key, 3, hour_index)
        return 0.2 + 5.0 * strength**2

    def pressure_hpa(self, now: datetime) -> float:
        return 1013.0 + self._day_offset(now.timestamp() / DAY_S / 2.0, 4, 12.0)
