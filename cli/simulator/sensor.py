"""What every sensor model shares: its random stream, its town's weather, its battery, its clock."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cli.simulator.observations import BatteryLevel, Observation
from cli.simulator.world import DAY_S, Weather


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


class SensorModel:
    """What every model holds: its random stream, its town's weather, its battery, how far it has run."""

    def __init__(self, rng: random.Random, weather: Weather, battery: Battery, start: datetime) -> None:
        self._rng = rng
        self._weather = weather
        self._battery = battery
        self._observed_ts = start.timestamp()
