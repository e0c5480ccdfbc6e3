"""Soil and trees: volumetric moisture per sensor, a traffic light, drying rate, watering need.

The traffic light depends on the soil: the thresholds are per soil type (device
metadata `soil_type`), from `soil_threshold` where a municipality entered its own,
else from `DEFAULT_THRESHOLDS`. Areas are the devices' tags (a street, a park).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from domain.analytics import forecast_drying
from storage.models import Device
from storage.series import device_series, devices_with_state, epoch_seconds
from storage.soil import entered_thresholds

SOIL_MOISTURE = "soil_moisture"
DRYING_WINDOW = timedelta(days=7)
DEFAULT_SOIL = "default"


class Light(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


LIGHT_ORDER = {Light.GREEN: 0, Light.YELLOW: 1, Light.RED: 2}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Yellow below `yellow_below_percent`, red below `red_below_percent` (volumetric water content)."""

    soil_type: str
    yellow_below_percent: float
    red_below_percent: float
    entered: bool

    def light(self, moisture_percent: float) -> Light:
        if moisture_percent < self.red_below_percent:
            return Light.RED
        if moisture_percent < self.yellow_below_percent:
            return Light.YELLOW
        return Light.GREEN


# Rough refill points (yellow) and points of stress for urban trees (red), in % VWC:
# sand drains early and holds little, clay binds water the roots cannot take.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    DEFAULT_SOIL: (22.0, 15.0),
    "sand": (12.0, 8.0),
    "loam": (22.0, 15.0),
    "silt": (26.0, 18.0),
    "clay": (32.0, 25.0),
}


def thresholds(session: Session, municipality_id: int) -> dict[str, Thresholds]:
    """The defaults, overridden or extended by the municipality's own entries."""
    found = {
        soil: Thresholds(soil, yellow, red, entered=False)
        for soil, (yellow, red) in DEFAULT_THRESHOLDS.items()
    }
    for row in entered_thresholds(session, municipality_id):
        found[row.soil_type] = Thresholds(
            row.soil_type, row.yellow_below_percent, row.red_below_percent, entered=True
        )
    return found


@dataclass(frozen=True, slots=True)
class SoilSensor:
    device: Device
    moisture_percent: float
    measured_at: datetime
    thresholds: Thresholds
    light: Light
    drying_percent_per_day: float | None
    days_until_red: float | None


def soil_sensors(
    session: Session, municipality_id: int, *, now: datetime, after_device_id: int | None, limit: int | None
) -> list[SoilSensor]:
    """Sensors with a moisture value by device id (at most `limit + 1`), with light and forecast."""
    rows = devices_with_state(
        session,
        municipality_id,
        SOIL_MOISTURE,
        after_device_id=after_device_id,
        limit=None if limit is None else limit + 1,
    )
    known = thresholds(session, municipality_id)
    series = device_series(
        session, [device.id for device, _ in rows], SOIL_MOISTURE, start=now - DRYING_WINDOW, end=now
    )
    sensors = []
    for device, state in rows:
        soil = device.metadata_.get("soil_type") or DEFAULT_SOIL
        limits = known.get(soil, known[DEFAULT_SOIL])
        found = series[device.id]
        forecast = forecast_drying(
            found.times_s, found.values, now_s=epoch_seconds(now), lower_percent=limits.red_below_percent
        )
        sensors.append(
            SoilSensor(
                device=device,
                moisture_percent=state.value,
                measured_at=state.time,
                thresholds=limits,
                light=limits.light(state.value),
                drying_percent_per_day=forecast.drying_percent_per_day if forecast else None,
                days_until_red=forecast.days_until_lower if forecast else None,
            )
        )
    return sensors


def needs_water(sensors: list[SoilSensor], *, within_days: float) -> list[SoilSensor]:
    """Red sensors, and yellow ones forecast red within `within_days`; driest first."""
    due = [
        sensor
        for sensor in sensors
        if sensor.light is Light.RED
        or (sensor.days_until_red is not None and sensor.days_until_red <= within_days)
    ]
    return sorted(
        due,
        key=lambda sensor: (
            -LIGHT_ORDER[sensor.light],
            sensor.days_until_red if sensor.days_until_red is not None else 0.0,
            sensor.moisture_percent - sensor.thresholds.red_below_percent,
            sensor.device.dev_eui,
        ),
    )


@dataclass(frozen=True, slots=True)
class Area:
    name: str
    sensors: int
    light: Light
    lights: dict[Light, int]
    lowest_moisture_percent: float


def areas(sensors: list[SoilSensor]) -> list[Area]:
    """Per tag: the worst light (one dry tree is reason enough to send the water cart) and counts."""
    by_tag: dict[str, list[SoilSensor]] = defaultdict(list)
    for sensor in sensors:
        for tag in sensor.device.tags:
            by_tag[tag].append(sensor)
    found = []
    for name in sorted(by_tag):
        members = by_tag[name]
        lights = {light: sum(1 for sensor in members if sensor.light is light) for light in Light}
        found.append(
            Area(
                name=name,
                sensors=len(members),
                light=max((sensor.light for sensor in members), key=LIGHT_ORDER.__getitem__),
                lights=lights,
                lowest_moisture_percent=min(sensor.moisture_percent for sensor in members),
            )
        )
    return found
