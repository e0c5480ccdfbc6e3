"""The environment use case's sensors: indoor climate, street air and water level gauges.

Indoor CO2 climbs during lessons and falls when windows open; street particulate matter
peaks at rush hours and is washed out by rain; a gauge rises after rain and recedes over
a day or two.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

from cli.simulator.observations import AirObservation, WaterLevelObservation
from cli.simulator.sensor import Battery, SensorModel
from cli.simulator.world import DAY_S, LocalTime, Weather, hour_chunks, local_time, unit_noise


class IndoorClimate(SensorModel):
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


class StreetAir(SensorModel):
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


class WaterLevel(SensorModel):
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
