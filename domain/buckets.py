"""Time buckets as calendar maths: where buckets begin, how wide a request asks them, how they aggregate.

One grid for every path that cuts time into buckets: the history pages and the gap
layout in Python, and (through `storage.buckets`) the SQL that bins rows, so that
a row never lands in a bucket the layout does not know. Buckets are laid on UTC from
`BUCKET_ORIGIN`, TimescaleDB's own default origin, so plain PostgreSQL's `date_bin`,
TimescaleDB's `time_bucket` and its continuous aggregates answer alike; buckets of
whole days may follow a town's calendar instead (`BucketGrid` with a zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, available_timezones

BUCKET_ORIGIN: Final = datetime(2000, 1, 3, tzinfo=UTC)
"""A Monday at midnight UTC, TimescaleDB's own default: week buckets start on Mondays (ISO) either way."""

WALL_ORIGIN: Final = BUCKET_ORIGIN.replace(tzinfo=None)
"""`BUCKET_ORIGIN` read as a wall-clock time: where local day buckets are counted from."""

BUCKET_UNITS: Final = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
BUCKET_PATTERN: Final = r"^[1-9][0-9]{0,3}[smhdw]$"
"""A bucket width as a request spells it: a count and a unit of `BUCKET_UNITS`, e.g. `15m`."""

WIDEST_BUCKET: Final = "520w"
"""About ten years: wider buckets answer nothing a dashboard asks, and reach past the dates
that times are kept in."""

_DAY: Final = timedelta(days=1)


# How a bucket's readings become one value; `last` is the value read latest in the bucket.
# (A comment, not a docstring: the API's schema would show that as the enum's description.)
class Aggregate(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    LAST = "last"


def bucket_width(text: str) -> timedelta:
    """The width of a bucket spelt as `BUCKET_PATTERN` allows, e.g. `15m`."""
    return int(text[:-1]) * BUCKET_UNITS[text[-1]]


@cache
def _zone_names() -> frozenset[str]:
    # Read on first use: walking the zone database costs every process that never asks.
    return frozenset(available_timezones())


def known_zone(name: str) -> str:
    """`name` if the IANA database has it; `ZoneInfo` would also open any file path it is given."""
    if name not in _zone_names():
        raise ValueError("an IANA time zone name such as Europe/Berlin")
    return name


def time_zone(name: str | None) -> ZoneInfo | None:
    """The zone of a checked zone name; None for UTC, whose days need no zone."""
    return None if name in (None, "UTC") else ZoneInfo(name)


def bucket_start(moment: datetime, width: timedelta, origin: datetime = BUCKET_ORIGIN) -> datetime:
    """The start of the bucket of `width` holding `moment`: what the bucket SQL computes, in Python."""
    if moment.tzinfo is None:
        raise ValueError("bucket_start needs an aware datetime")
    if width <= timedelta(0):
        raise ValueError(f"a bucket must be positive, got {width}")
    return origin + ((moment - origin) // width) * width


def covering_window(start: datetime, end: datetime, width: timedelta) -> tuple[datetime, datetime]:
    """The bucket boundaries around `[start, end)`: whole buckets, so raw and aggregate paths agree."""
    aligned_end = bucket_start(end, width)
    if aligned_end < end:
        aligned_end += width
    return bucket_start(start, width), aligned_end


@dataclass(frozen=True, slots=True)
class BucketGrid:
    """Where buckets of `width` begin.

    With a `zone`, buckets of whole days begin at its local midnight, so a town's day
    is its own (a day across a change to or from summer time lasts 23 or 25 hours).
    Shorter buckets stay on UTC: in every zone with whole-hour offsets they begin at
    the same instants anyway, and where clocks go back an hour-long local bucket would
    hold two hours. Without a zone every bucket is laid on UTC from `BUCKET_ORIGIN`.
    """

    width: timedelta
    zone: ZoneInfo | None = None

    @property
    def local(self) -> bool:
        """Whether buckets follow the zone's calendar (and not UTC's)."""
        return self.calendar() is not None

    def calendar(self) -> ZoneInfo | None:
        """The zone whose calendar the buckets follow; None where they follow UTC."""
        return self.zone if self.width % _DAY == timedelta(0) else None

    def floor(self, moment: datetime) -> datetime:
        """The start of the bucket `moment` falls into."""
        zone = self.calendar()
        if zone is None:
            return bucket_start(moment, self.width)
        return self._instant(self._wall_start(moment, zone), zone)

    def shift(self, start: datetime, count: int) -> datetime:
        """The start of the bucket `count` buckets after the one starting at `start`."""
        zone = self.calendar()
        if zone is None:
            return start + count * self.width
        # From the bucket's wall-clock midnight, not from `start` read as local time: where
        # clocks went forward at midnight, that midnight never showed and `start` reads 01:00.
        return self._instant(self._wall_start(start, zone) + count * self.width, zone)

    def starts(self, start: datetime, end: datetime) -> list[datetime]:
        """Every bucket start in [start, end), `start` being one.

        A local day that never was (Samoa skipped 30 December 2011) has no bucket.
        """
        zone = self.calendar()
        found: list[datetime] = []
        if zone is None:  # a month of hours on every history page: plain additions
            moment = start
            while moment < end:
                found.append(moment)
                moment += self.width
            return found
        wall = self._wall_start(start, zone)
        while (moment := self._instant(wall, zone)) < end:
            if not found or moment > found[-1]:
                found.append(moment)
            wall += self.width
        return found

    def _wall_start(self, moment: datetime, zone: ZoneInfo) -> datetime:
        wall = moment.astimezone(zone).replace(tzinfo=None)
        return WALL_ORIGIN + ((wall - WALL_ORIGIN) // self.width) * self.width

    @staticmethod
    def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
        # A wall time that never showed (clocks forward) or showed twice (clocks back) is
        # read as PostgreSQL's `AT TIME ZONE` reads it: as the later of its two readings.
        return max(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
