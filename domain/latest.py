"""The latest values of devices as the dashboards list them, and the area a list may be limited to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.device import Device


@dataclass(frozen=True, slots=True)
class BoundingBox:
    west: float
    south: float
    east: float
    north: float


@dataclass(frozen=True, slots=True)
class LatestValue:
    quantity: str
    value: float
    time: datetime
    quality: int


@dataclass(frozen=True, slots=True)
class LatestDevice:
    device: Device
    states: list[LatestValue]
