"""A registered device as routes show it: a plain value of the columns they read, no ORM entity."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Device:
    """What a list or a history shows of a device.

    Built from plain columns: the latest-values call is the dashboards' hottest read,
    and building ORM entities (with their JSON metadata) for hundreds of devices cost
    more than the query itself.
    """

    id: int
    dev_eui: str
    name: str
    use_case: str | None
    latitude: float | None
    longitude: float | None
    tags: list[str]
