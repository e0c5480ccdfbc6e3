"""A history request and the pages it is answered in: the types the readings history speaks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from domain.buckets import Aggregate


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Which series, over which time, and whether in buckets.

    `bucket=None` asks for the raw readings; `quantities=None` means every quantity
    the devices report.
    """

    device_ids: Sequence[int]
    start: datetime
    end: datetime
    quantities: Sequence[str] | None = None
    bucket: timedelta | None = None
    agg: Aggregate = Aggregate.AVG
    zone: ZoneInfo | None = None
    """Whose midnight begins a day bucket (see `domain.buckets.BucketGrid`); None for UTC."""


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """A raw reading, or a bucket's aggregate; `gap` marks a bucket without readings (value None)."""

    time: datetime
    device_id: int
    quantity: str
    value: float | None
    samples: int
    gap: bool = False


@dataclass(frozen=True, slots=True)
class HistoryCursor:
    """Where the next page starts: a bucket start, or (for raw) the last row returned."""

    time: datetime
    device_id: int | None = None
    quantity: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    points: list[HistoryPoint]
    next: HistoryCursor | None
