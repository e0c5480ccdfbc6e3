"""Values that evolve the way the real sensors' values do, driven by the clock.

Each device gets a small model with its own seeded random stream; `observe(now)` moves
the model forward to `now` and returns what the sensor would measure. Time only moves
forward: an earlier `now` returns the current state unchanged. The world the models see
(local time, weather) is in world.py; the environment sensors' models are in
environment_models.py.

The models are deliberately simple but keep the shapes a dashboard should show: bins fill
faster by day and drop on collection mornings, soil dries most at warm middays and jumps
after rain or watering, cars come and go with more occupancy on weekday daytimes, indoor
CO2 climbs during lessons and falls when windows open.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cli.simulator.environment_models import IndoorClimate, StreetAir, WaterLevel
from cli.simulator.fleet import SimulatedDevice
from cli.simulator.observations import BinObservation, ParkingObservation, SoilObservation
from cli.simulator.sensor import Battery, DeviceBehaviour, SensorModel
from cli.simulator.world import HOUR_S, LocalTime, Weather, hour_chunks, local_time, text_key
from domain.use_case import UseCase


class ParkingSpot(SensorModel):
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


class WasteBin(SensorModel):
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


class TreeSoil(SensorModel):
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
