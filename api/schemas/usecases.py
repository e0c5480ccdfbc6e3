"""Bodies of the use-case routes: parking, waste, soil and trees."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.numbers import BodyInt
from services.parking import OccupancyBucket, SpotState, TypicalHour, ZoneSummary
from services.soil import Area, Light, SoilSensor, Thresholds
from services.waste import BinStatus, Emptying


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


class ZoneOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "zone": "Marktplatz",
                    "capacity": 24,
                    "capacity_entered": True,
                    "sensors": 20,
                    "occupied": 15,
                    "free": 8,
                    "unknown": 1,
                }
            ]
        }
    )

    zone: str
    capacity: int = Field(description="Entered capacity, else the number of spot sensors")
    capacity_entered: bool
    sensors: int
    occupied: int
    free: int = Field(description="Capacity less occupied and unknown spots: only spaces known to be free")
    unknown: int = Field(description="Spots whose sensor has not reported a settled state")

    @classmethod
    def of(cls, summary: ZoneSummary) -> ZoneOut:
        return cls(
            zone=summary.name,
            capacity=summary.capacity,
            capacity_entered=summary.capacity_entered,
            sensors=summary.sensors,
            occupied=summary.occupied,
            free=summary.free,
            unknown=summary.unknown,
        )


class CapacityIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"capacity": 24}]})

    capacity: BodyInt = Field(ge=0, le=100_000)


class SpotOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dev_eui": "70b3d57ed0004a01",
                    "name": "Stellplatz 7",
                    "zone": "Marktplatz",
                    "spot": "7",
                    "occupied": True,
                    "since": "2026-11-26T08:12:00Z",
                    "flapping": False,
                }
            ]
        }
    )

    dev_eui: str
    name: str
    zone: str
    spot: str | None
    occupied: bool | None = Field(description="Debounced state; null before any settled report")
    since: datetime | None = Field(description="When the debounced state began")
    flapping: bool = Field(description="The raw state changed unusually often in the last hour")

    @classmethod
    def of(cls, state: SpotState) -> SpotOut:
        return cls(
            dev_eui=state.device.dev_eui,
            name=state.device.name,
            zone=state.zone,
            spot=state.spot,
            occupied=state.occupied,
            since=state.since,
            flapping=state.flapping,
        )


class OccupancyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"time": "2026-11-26T08:00:00Z", "occupied": 14.5, "occupancy_percent": 60.42, "gap": False}
            ]
        }
    )

    time: datetime = Field(description="Start of the bucket")
    occupied: float | None = Field(description="Mean number of occupied spots, weighted by time")
    occupancy_percent: float | None = Field(description="Of the zone's capacity")
    gap: bool = Field(description="No spot's state was known in this bucket")

    @classmethod
    def of(cls, bucket: OccupancyBucket, capacity: int) -> OccupancyOut:
        share = None
        if bucket.occupied is not None and capacity > 0:
            share = round(100.0 * bucket.occupied / capacity, 2)
        return cls(
            time=bucket.start,
            occupied=_rounded(bucket.occupied),
            occupancy_percent=share,
            gap=bucket.occupied is None,
        )


class TypicalHourOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"weekday": 5, "hour": 10, "occupancy_percent": 87.5}]}
    )

    weekday: int = Field(description="0 Monday … 6 Sunday, local time")
    hour: int = Field(description="0 … 23, local time")
    occupancy_percent: float | None

    @classmethod
    def of(cls, hour: TypicalHour) -> TypicalHourOut:
        return cls(weekday=hour.weekday, hour=hour.hour, occupancy_percent=hour.occupancy_percent)


class BinOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dev_eui": "70b3d57ed0001234",
                    "name": "Bin Marktplatz 3",
                    "latitude": 48.6734,
                    "longitude": 9.3762,
                    "fill_percent": 72.5,
                    "measured_at": "2026-11-26T08:40:00Z",
                    "fill_rate_percent_per_day": 11.2,
                    "full_at": "2026-11-28T11:00:00Z",
                    "last_emptied_at": "2026-11-21T06:30:00Z",
                }
            ]
        }
    )

    dev_eui: str
    name: str
    latitude: float | None
    longitude: float | None
    fill_percent: float
    measured_at: datetime
    fill_rate_percent_per_day: float | None = Field(description="Robust fit since the last emptying")
    full_at: datetime | None = Field(description="Forecast; now when already full; null when not filling")
    last_emptied_at: datetime | None

    @classmethod
    def of(cls, status: BinStatus) -> BinOut:
        device = status.device
        return cls(
            dev_eui=device.dev_eui,
            name=device.name,
            latitude=device.latitude,
            longitude=device.longitude,
            fill_percent=round(status.fill_percent, 2),
            measured_at=status.measured_at,
            fill_rate_percent_per_day=_rounded(status.rate_percent_per_day),
            full_at=status.full_at,
            last_emptied_at=status.last_emptied_at,
        )


class EmptyingOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"time": "2026-11-21T06:30:00Z", "before_percent": 93.0, "after_percent": 4.0}]
        }
    )

    time: datetime = Field(description="The first reading after the emptying")
    before_percent: float
    after_percent: float

    @classmethod
    def of(cls, emptying: Emptying) -> EmptyingOut:
        return cls(
            time=emptying.time,
            before_percent=round(emptying.before_percent, 2),
            after_percent=round(emptying.after_percent, 2),
        )


class ThresholdsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"yellow_below_percent": 22.0, "red_below_percent": 15.0}]},
    )

    yellow_below_percent: float = Field(ge=0, le=100, allow_inf_nan=False, strict=True)
    red_below_percent: float = Field(ge=0, le=100, allow_inf_nan=False, strict=True)

    @model_validator(mode="after")
    def red_is_drier(self) -> ThresholdsIn:
        if self.red_below_percent > self.yellow_below_percent:
            raise ValueError("red_below_percent must not exceed yellow_below_percent")
        return self


class ThresholdsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "soil_type": "sand",
                    "yellow_below_percent": 12.0,
                    "red_below_percent": 8.0,
                    "entered": False,
                }
            ]
        }
    )

    soil_type: str
    yellow_below_percent: float
    red_below_percent: float
    entered: bool = Field(description="False for a built-in default")

    @classmethod
    def of(cls, limits: Thresholds) -> ThresholdsOut:
        return cls(
            soil_type=limits.soil_type,
            yellow_below_percent=limits.yellow_below_percent,
            red_below_percent=limits.red_below_percent,
            entered=limits.entered,
        )


class SoilSensorOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dev_eui": "70b3d57ed0007c11",
                    "name": "Linde Bahnhofstraße 4",
                    "tree_id": "BST-0412",
                    "species": "Tilia cordata",
                    "soil_type": "loam",
                    "tags": ["bahnhofstrasse"],
                    "latitude": 48.6741,
                    "longitude": 9.3801,
                    "moisture_percent": 18.4,
                    "measured_at": "2026-11-26T08:30:00Z",
                    "light": "yellow",
                    "drying_percent_per_day": 1.3,
                    "days_until_red": 2.6,
                }
            ]
        }
    )

    dev_eui: str
    name: str
    tree_id: str | None
    species: str | None
    soil_type: str
    tags: list[str]
    latitude: float | None
    longitude: float | None
    moisture_percent: float = Field(description="Volumetric water content")
    measured_at: datetime
    light: Light
    drying_percent_per_day: float | None = Field(description="Positive while drying; since the last rain")
    days_until_red: float | None = Field(description="0 when red already; null when not drying")

    @classmethod
    def of(cls, sensor: SoilSensor) -> SoilSensorOut:
        device = sensor.device
        return cls(
            dev_eui=device.dev_eui,
            name=device.name,
            tree_id=device.metadata_.get("tree_id"),
            species=device.metadata_.get("species"),
            soil_type=sensor.thresholds.soil_type,
            tags=list(device.tags),
            latitude=device.latitude,
            longitude=device.longitude,
            moisture_percent=round(sensor.moisture_percent, 2),
            measured_at=sensor.measured_at,
            light=sensor.light,
            drying_percent_per_day=_rounded(sensor.drying_percent_per_day, 3),
            days_until_red=_rounded(sensor.days_until_red),
        )


class AreaOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "area": "bahnhofstrasse",
                    "sensors": 6,
                    "light": "red",
                    "lights": {"green": 3, "yellow": 2, "red": 1},
                    "lowest_moisture_percent": 13.9,
                }
            ]
        }
    )

    area: str = Field(description="A tag of the sensors")
    sensors: int
    light: Light = Field(description="The worst light among the area's sensors")
    lights: dict[Light, int]
    lowest_moisture_percent: float

    @classmethod
    def of(cls, area: Area) -> AreaOut:
        return cls(
            area=area.name,
            sensors=area.sensors,
            light=area.light,
            lights=area.lights,
            lowest_moisture_percent=round(area.lowest_moisture_percent, 2),
        )
