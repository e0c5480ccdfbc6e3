"""Values that evolve the way the real sensors' values do, driven by the clock.

Each device gets a small model with its own seeded random stream; `observe(now)` moves
the model forward to `now` and returns what the sensor would measure. Time only moves
forward: an earlier `now` returns the current state unchanged. Weather (air temperature,
rain, pressure) is shared per town and is a pure function of time, so that every tree in
a town gets the same shower and the simulation replays identically for the same seed.

The models are deliberately simple but keep the shapes a dashboard should show: bins fill
faster by day and drop on collection mornings, soil dries most at warm middays and jumps
after rain or watering, cars come and go with more occupancy on weekday daytimes, indoor
CO2 climbs during lessons and falls when windows open.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol

from cli.simulator.fleet import SimulatedDevice
from cli.simulator.observations import (
    AirObservation,
    BatteryLevel,
    BinObservation,
    Observation,
    ParkingObservation,
    SoilObservation,
    WaterLevelObservation,
)
from domain.use_case import UseCase

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


@dataclass(frozen=True, slots=True)
class Battery:
    """A primary lithium cell draining linearly; voltage follows its flat discharge curve."""

    start_percent: float
    drain_percent_per_day: float
    since: datetime

    def level(self, now: datetime) -> BatteryLevel:
        days = max(0.0, (now - self.since).total_seconds() / DAY_S)
        percent = max(1.0, self.start_percent - self.drain_percent_per_day * days)
        return BatteryLevel(percent=round(percent), millivolts=int(3000 + 6 * percent))


class DeviceBehaviour(Protocol):
    def observe(self, now: datetime) -> Observation: ...


class _SensorModel:
    """What every model holds: its random stream, its town's weather, its battery, how far it has run."""

    def __init__(self, rng: random.Random, weather: Weather, battery: Battery, start: datetime) -> None:
        self._rng = rng
        self._weather = weather
        self._battery = battery
        self._observed_ts = start.timestamp()


class ParkingSpot(_SensorModel):
    """One spot as a two-state process whose rates follow the hour and the weekday.

    The mean parking time is fixed per time of day (longer overnight); the mean gap between
    cars is set so that the long-run share of occupied time matches the target occupancy of
    that hour. Waiting times are exponential, hence memoryless: a wait longer than half an
    hour is cut there and drawn again with the rates of the new hour, so that a spot freed
    at night does fill up in the morning.
    """

    RECHECK = timedelta(minutes=30)

    def __init__(self, rng: random.Random, weather: Weather, battery: Battery, start: datetime) -> None:
        super().__init__(rng, weather, battery, start)
        self._occupied = rng.random() < self.target_occupancy(start)
        self._last_change = start - timedelta(minutes=rng.uniform(1, 120))
        self._previous_minutes = rng.uniform(5, 120)
        self._schedule(start)
        self._changed = True  # the first frame after start-up reports the state

    @staticmethod
    def target_occupancy(now: datetime) -> float:
        clock = local_time(now)
        hour = clock.hour
        if clock.weekday == 6:
            return 0.25 + 0.2 * math.exp(-(((hour - 15.0) / 3.0) ** 2))
        peak = 0.9 if clock.weekday == 5 else 0.85
        daytime = math.exp(-(((hour - 12.5) / 4.0) ** 2))
        evening = 0.25 * math.exp(-(((hour - 19.5) / 1.5) ** 2))
        return min(0.95, 0.12 + (peak - 0.12) * daytime + evening)

    def _mean_wait_min(self, at: datetime) -> float:
        hour = local_time(at).hour
        mean_parked_min = 480.0 if (hour >= 19.0 or hour < 6.0) else 85.0
        if self._occupied:
            return mean_parked_min
        share = self.target_occupancy(at)
        return max(4.0, mean_parked_min * (1.0 - share) / share)

    def _schedule(self, at: datetime) -> None:
        wait = timedelta(minutes=self._rng.expovariate(1.0 / self._mean_wait_min(at)))
        self._flip_at_next_event = wait <= self.RECHECK
        self._next_event = at + (wait if self._flip_at_next_event else self.RECHECK)

    def observe(self, now: datetime) -> ParkingObservation:
        flips = 0
        for _ in range(5000):  # bounded: a long pause is caught up in 30-minute steps
            if self._next_event > now:
                break
            at = self._next_event
            if self._flip_at_next_event:
                flips += 1
                self._previous_minutes = (at - self._last_change).total_seconds() / 60.0
                self._last_change = at
                self._occupied = not self._occupied
            self._schedule(at)
        changed = self._changed or flips > 0
        self._changed = False
        return ParkingObservation(
            occupied=self._occupied,
            changed=changed,
            previous_state_minutes=self._previous_minutes,
            temperature_c=self._weather.air_temperature_c(now) + 1.5,
            battery=self._battery.level(now),
        )


class WasteBin(_SensorModel):
    """Fill level rising with use (mostly by day) and dropping to a residue when emptied.

    Collections happen on the bin's weekdays at a morning hour of its own; an uncollected
    bin overflows slightly (the ultrasonic distance gets shorter than the full line).
    """

    def __init__(
        self,
        rng: random.Random,
        weather: Weather,
        battery: Battery,
        start: datetime,
        *,
        bin_depth_mm: float,
        sensor_offset_mm: float,
        collection_weekdays: tuple[int, ...],
    ) -> None:
        super().__init__(rng, weather, battery, start)
        self._depth_mm = bin_depth_mm
        self._offset_mm = sensor_offset_mm
        self._collection_weekdays = collection_weekdays
        self._collection_hour = rng.uniform(6.0, 11.0)
        self._rate_per_hour = rng.uniform(0.003, 0.012)  # full in roughly 3 to 12 days
        self._fill = rng.uniform(0.05, 0.7)

    @property
    def fill_fraction(self) -> float:
        return self._fill

    def _use_factor(self, clock: LocalTime) -> float:
        if clock.hour < 6.0 or clock.hour >= 22.0:
            return 0.15
        return 1.6 if clock.weekday >= 5 else 1.3

    def _is_collection_hour(self, clock: LocalTime) -> bool:
        return clock.weekday in self._collection_weekdays and (
            self._collection_hour <= clock.hour < self._collection_hour + 1.0
        )

    def observe(self, now: datetime) -> BinObservation:
        now_ts = now.timestamp()
        collected_on: int | None = None
        for chunk_start, hours in hour_chunks(self._observed_ts, now_ts):
            at = datetime.fromtimestamp(chunk_start, UTC)
            clock = local_time(at)
            if self._is_collection_hour(clock) and collected_on != clock.day_number:
                self._fill = self._rng.uniform(0.0, 0.04)
                collected_on = clock.day_number
            growth = self._rate_per_hour * self._use_factor(clock) * hours
            self._fill = min(1.08, self._fill + growth * self._rng.uniform(0.5, 1.5))
        self._observed_ts = max(self._observed_ts, now_ts)
        surface_mm = self._offset_mm + self._depth_mm * (1.0 - self._fill)
        distance = max(20.0, surface_mm + self._rng.gauss(0.0, 6.0))
        return BinObservation(
            distance_mm=round(distance),
            temperature_c=self._weather.air_temperature_c(now) + 2.0,
            tilted=self._rng.random() < 0.002,
            battery=self._battery.level(now),
        )


@dataclass(frozen=True, slots=True)
class SoilHydraulics:
    """Field capacity and wilting point in % by volume, the band a tree's water lives in."""

    field_capacity: float
    wilting_point: float


SOIL_TYPES: dict[str, SoilHydraulics] = {
    "Sand": SoilHydraulics(22.0, 6.0),
    "lehmiger Sand": SoilHydraulics(28.0, 9.0),
    "Lehm": SoilHydraulics(36.0, 15.0),
    "Schluff": SoilHydraulics(38.0, 13.0),
    "Baumsubstrat": SoilHydraulics(30.0, 10.0),
}

_ROOT_ZONE_MM = 300.0  # 1 mm of water in 30 cm of soil is 1/3 % by volume


class TreeSoil(_SensorModel):
    """Water content in a street tree's root zone.

    It loses water by evapotranspiration, which follows the sun (zero at night, highest
    at a warm midday) and slows as the soil nears its wilting point; it gains from rain
    and from the city's watering rounds, which come on the next working morning after
    the soil fell into the stress band.
    """

    def __init__(
        self, rng: random.Random, weather: Weather, battery: Battery, start: datetime, *, soil_type: str
    ) -> None:
        super().__init__(rng, weather, battery, start)
        self._soil = SOIL_TYPES[soil_type]
        band = self._soil.field_capacity - self._soil.wilting_point
        self._moisture = self._soil.wilting_point + band * rng.uniform(0.4, 1.0)
        self._base_conductivity = rng.uniform(250.0, 1100.0)
        self._watering_due_ts: float | None = None

    @property
    def moisture_percent(self) -> float:
        return self._moisture

    @staticmethod
    def evaporative_demand_mm_per_h(hour: float, air_temperature_c: float) -> float:
        sun = max(0.0, math.sin(math.pi * (hour - 6.0) / 14.0)) if 6.0 <= hour <= 20.0 else 0.0
        return 1.2 * sun * max(0.0, (air_temperature_c + 5.0) / 30.0)

    def _schedule_watering(self, now_ts: float) -> None:
        due = datetime.fromtimestamp(now_ts, UTC) + timedelta(days=1)
        while local_time(due).weekday >= 5:
            due += timedelta(days=1)
        clock = local_time(due)
        morning = self._rng.uniform(8.0, 14.0)
        self._watering_due_ts = due.timestamp() + (morning - clock.hour) * HOUR_S

    def observe(self, now: datetime) -> SoilObservation:
        soil = self._soil
        band = soil.field_capacity - soil.wilting_point
        now_ts = now.timestamp()
        for chunk_start, hours in hour_chunks(self._observed_ts, now_ts):
            at = datetime.fromtimestamp(chunk_start, UTC)
            availability = min(1.0, max(0.0, (self._moisture - soil.wilting_point) / band))
            demand = self.evaporative_demand_mm_per_h(
                local_time(at).hour, self._weather.air_temperature_c(at)
            )
            self._moisture -= demand * availability * hours * 100.0 / _ROOT_ZONE_MM
            rain_mm = self._weather.rain_mm_per_h(at) * hours
            self._moisture += 0.7 * rain_mm * 100.0 / _ROOT_ZONE_MM
            if self._watering_due_ts is not None and self._watering_due_ts <= chunk_start:
                self._moisture += self._rng.uniform(0.35, 0.55) * band
                self._watering_due_ts = None
            elif self._watering_due_ts is None and self._moisture < soil.wilting_point + 0.3 * band:
                self._schedule_watering(chunk_start)
            self._moisture = min(soil.field_capacity * 1.05, max(soil.wilting_point * 0.8, self._moisture))
        self._observed_ts = max(self._observed_ts, now_ts)
        air_c = self._weather.air_temperature_c(now)
        mean_c = self._weather.daily_mean_c(now)
        soil_c = mean_c + 0.25 * (air_c - mean_c)
        moisture = max(0.0, self._moisture + self._rng.gauss(0.0, 0.2))
        profile = tuple(
            (moisture + 1.2 * depth, mean_c + (soil_c - mean_c) * math.exp(-0.6 * depth))
            for depth in range(6)
        )
        return SoilObservation(
            moisture_percent=moisture,
            soil_temperature_c=soil_c,
            conductivity_us_cm=self._base_conductivity * (moisture / soil.field_capacity) ** 1.5,
            air_temperature_c=air_c,
            profile=profile,
            battery=self._battery.level(now),
        )


class IndoorClimate(_SensorModel):
    """A classroom or meeting room: CO2 and warmth rise while people are in, airing brings them down."""

    def __init__(self, rng: random.Random, weather: Weather, battery: Battery, start: datetime) -> None:
        super().__init__(rng, weather, battery, start)
        self._co2 = 450.0
        self._crowd_ppm = rng.uniform(700.0, 1400.0)

    @staticmethod
    def occupied(clock: LocalTime) -> bool:
        in_lesson = (clock.hour % 1.0) < 0.75  # 45 minutes in, a break with open windows
        return clock.weekday < 5 and 7.75 <= clock.hour < 15.5 and in_lesson

    def observe(self, now: datetime) -> AirObservation:
        now_ts = now.timestamp()
        for chunk_start, hours in hour_chunks(self._observed_ts, now_ts):
            for step in range(max(1, round(hours * 4))):  # quarter-hour steps catch lesson breaks
                at = datetime.fromtimestamp(chunk_start + step * 900.0, UTC)
                step_hours = hours / max(1, round(hours * 4))
                target = 430.0 + (self._crowd_ppm if self.occupied(local_time(at)) else 0.0)
                self._co2 += (target - self._co2) * (1.0 - math.exp(-step_hours / 0.5))
        self._observed_ts = max(self._observed_ts, now_ts)
        clock = local_time(now)
        people = self.occupied(clock)
        outdoor_c = self._weather.air_temperature_c(now)
        daylight = max(0.0, math.sin(math.pi * (clock.hour - 6.0) / 14.0)) if 6.0 <= clock.hour <= 20 else 0.0
        return AirObservation(
            temperature_c=20.5
            + (1.5 if people else 0.0)
            + 0.08 * (outdoor_c - 10.0)
            + self._rng.gauss(0, 0.1),
            humidity_percent=min(70.0, 38.0 + (9.0 if people else 0.0) + self._rng.gauss(0, 1.0)),
            co2_ppm=max(400.0, self._co2 + self._rng.gauss(0.0, 15.0)),
            pm1_0_ug_m3=0.0,
            pm2_5_ug_m3=0.0,
            pm4_ug_m3=0.0,
            pm10_ug_m3=0.0,
            pressure_hpa=self._weather.pressure_hpa(now),
            light_lux=(350.0 if people else 0.0) + 250.0 * daylight,
            motion_count=self._rng.randint(3, 25) if people else 0,
            tvoc_ppb=120.0 + (0.3 * (self._co2 - 430.0)),
            battery=self._battery.level(now),
        )


class StreetAir(_SensorModel):
    """Outdoor particulate matter: a background wandering by day, rush-hour peaks, washed out by rain."""

    def __init__(
        self,
        rng: random.Random,
        weather: Weather,
        battery: Battery,
        start: datetime,
        *,
        town_key: int,
        seed: int,
    ) -> None:
        super().__init__(rng, weather, battery, start)
        self._town_key = town_key
        self._seed = seed
        self._traffic_share = rng.uniform(0.3, 0.8)

    def observe(self, now: datetime) -> AirObservation:
        clock = local_time(now)
        day = now.timestamp() / DAY_S
        background = 4.0 + 18.0 * unit_noise(self._seed, self._town_key, 5, math.floor(day)) ** 2
        rush = math.exp(-(((clock.hour - 8.0) / 1.2) ** 2)) + math.exp(-(((clock.hour - 17.5) / 1.5) ** 2))
        traffic = 1.0 + self._traffic_share * rush * (0.5 if clock.weekday >= 5 else 1.0)
        washed = 0.55 if self._weather.rain_mm_per_h(now) > 0 else 1.0
        pm2_5 = max(0.5, background * traffic * washed * self._rng.uniform(0.85, 1.15))
        return AirObservation(
            temperature_c=self._weather.air_temperature_c(now),
            humidity_percent=self._weather.relative_humidity_percent(now),
            co2_ppm=420.0 + 25.0 * rush,
            pm1_0_ug_m3=0.72 * pm2_5,
            pm2_5_ug_m3=pm2_5,
            pm4_ug_m3=1.12 * pm2_5,
            pm10_ug_m3=1.55 * pm2_5,
            pressure_hpa=self._weather.pressure_hpa(now),
            light_lux=0.0,
            motion_count=0,
            tvoc_ppb=0.0,
            battery=self._battery.level(now),
        )


class WaterLevel(_SensorModel):
    """A stream or retention basin gauge: a slow base level, rising after rain, receding over a day or two."""

    def __init__(self, rng: random.Random, weather: Weather, battery: Battery, start: datetime) -> None:
        super().__init__(rng, weather, battery, start)
        self._base_cm = rng.uniform(25.0, 80.0)
        self._storm_cm = 0.0

    def observe(self, now: datetime) -> WaterLevelObservation:
        now_ts = now.timestamp()
        for chunk_start, hours in hour_chunks(self._observed_ts, now_ts):
            at = datetime.fromtimestamp(chunk_start, UTC)
            self._storm_cm *= math.exp(-hours / 20.0)
            self._storm_cm += 6.0 * self._weather.rain_mm_per_h(at) * hours
        self._observed_ts = max(self._observed_ts, now_ts)
        seasonal = 10.0 * math.cos(2 * math.pi * (local_time(now).day_of_year - 45) / 365.0)
        level = self._base_cm + seasonal + self._storm_cm + self._rng.gauss(0.0, 0.4)
        return WaterLevelObservation(level_cm=max(0.0, level), battery=self._battery.level(now))


def behaviour_for(
    device: SimulatedDevice, weather: Weather, *, seed: int, start: datetime
) -> DeviceBehaviour:
    """The model that fits a device's use case (and, for environment devices, its kind of sensor)."""
    rng = random.Random(f"{seed}:{device.dev_eui}")
    battery = Battery(
        start_percent=rng.uniform(55.0, 100.0), drain_percent_per_day=rng.uniform(0.02, 0.08), since=start
    )
    metadata = device.metadata
    if device.use_case is UseCase.PARKING:
        return ParkingSpot(rng, weather, battery, start)
    if device.use_case is UseCase.WASTE:
        return WasteBin(
            rng,
            weather,
            battery,
            start,
            bin_depth_mm=float(metadata["bin_depth_mm"]),
            sensor_offset_mm=float(metadata["sensor_offset_mm"]),
            collection_weekdays=tuple(int(day) - 1 for day in metadata["collection_weekdays"]),
        )
    if device.use_case is UseCase.SOIL:
        return TreeSoil(rng, weather, battery, start, soil_type=str(metadata["soil_type"]))
    if device.codec_id == "milesight-iot/em500-swl-codec":
        return WaterLevel(rng, weather, battery, start)
    if device.codec_id == "decentlab/dl-pm-codec":
        return StreetAir(rng, weather, battery, start, town_key=text_key(device.municipality), seed=seed)
    return IndoorClimate(rng, weather, battery, start)
