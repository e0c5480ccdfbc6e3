"""The latest values of devices as the dashboards list them, and the area a list may be limited to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BoundingBox:
    west: float
    south: float
    east: float
    north: float


@dataclass(frozen=True, slots=True)
class DeviceCard:
    """What a list of latest values shows of a device; plain columns, no ORM entity.

    The latest-values call is the dashboards' hottest read: building ORM entities (with
    their JSON metadata) for hundreds of devices cost more than the query itself.
    """

    id: int
    dev_eui: str
    name: str
    use_case: str | None
    latitude: float | None
    longitude: float | None
    tags: list[str]


@dataclass(frozen=True, slots=True)
class LatestValue:
    quantity: str
    value: float
    time: datetime
    quality: int


@dataclass(frozen=True, slots=True)
class LatestDevice:
    device: DeviceCard
    states: list[LatestValue]
