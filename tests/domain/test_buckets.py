"""The bucket grid without a database: origin alignment, and local days across clock changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.buckets import (
    BUCKET_ORIGIN,
    BUCKET_PATTERN,
    BUCKET_UNITS,
    WIDEST_BUCKET,
    Aggregate,
    BucketGrid,
    bucket_start,
    bucket_width,
    covering_window,
    known_zone,
    time_zone,
)

BERLIN = ZoneInfo("Europe/Berlin")
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_the_origin_is_a_monday_at_midnight_utc() -> None:
    assert BUCKET_ORIGIN.weekday() == 0
    assert (BUCKET_ORIGIN.hour, BUCKET_ORIGIN.minute, BUCKET_ORIGIN.second) == (0, 0, 0)


@pytest.mark.parametrize(
    ("moment", "width", "start"),
    [
        (utc(2026, 12, 3, 20, 31), timedelta(weeks=1), utc(2026, 11, 30)),  # weeks begin on Monday
        (utc(2026, 12, 3, 20, 31), timedelta(hours=7), utc(2026, 12, 3, 19)),  # counted from the origin
        (utc(2026, 12, 3, 20, 31), timedelta(days=5), utc(2026, 12, 2)),
        (utc(2000, 1, 3), timedelta(minutes=15), utc(2000, 1, 3)),  # the origin begins a bucket
        (utc(2000, 1, 2, 23, 59), DAY, utc(2000, 1, 2)),  # before the origin: floored, not truncated
        (utc(1999, 12, 31, 12), timedelta(weeks=1), utc(1999, 12, 27)),
        (utc(2024, 2, 29, 23, 59, 59, 999_999), DAY, utc(2024, 2, 29)),
    ],
)
def test_bucket_start_floors_onto_the_grid_from_the_origin(
    moment: datetime, width: timedelta, start: datetime
) -> None:
    assert bucket_start(moment, width) == start


def test_bucket_start_reads_offsets_as_the_instant_they_are() -> None:
    local = datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)  # 01:30 UTC, just after clocks went forward
    assert bucket_start(local, HOUR) == utc(2026, 3, 29, 1)


def test_bucket_start_refuses_naive_times_and_empty_buckets() -> None:
    with pytest.raises(ValueError, match="aware"):
        bucket_start(datetime(2026, 1, 1), HOUR)
    with pytest.raises(ValueError, match="positive"):
        bucket_start(utc(2026, 1, 1), timedelta(0))


def test_a_covering_window_is_whole_buckets() -> None:
    assert covering_window(utc(2026, 1, 1, 10, 5), utc(2026, 1, 1, 12), HOUR) == (
        utc(2026, 1, 1, 10),
        utc(2026, 1, 1, 12),
    )
    assert covering_window(utc(2026, 1, 1, 10, 5), utc(2026, 1, 1, 12, 1), HOUR)[1] == utc(2026, 1, 1, 13)


def test_berlins_spring_day_lasts_23_hours() -> None:
    grid = BucketGrid(DAY, BERLIN)
    start = grid.floor(utc(2026, 3, 29, 12))
    assert start == utc(2026, 3, 28, 23)  # midnight in winter time
    assert grid.shift(start, 1) == utc(2026, 3, 29, 22)  # the next midnight is in summer time
    assert grid.shift(start, 1) - start == timedelta(hours=23)


def test_berlins_autumn_day_lasts_25_hours() -> None:
    grid = BucketGrid(DAY, BERLIN)
    start = grid.floor(utc(2026, 10, 25, 1, 30))  # 02:30 local, the hour that shows twice
    assert start == utc(2026, 10, 24, 22)
    assert grid.shift(start, 1) - start == timedelta(hours=25)
    assert grid.floor(utc(2026, 10, 25, 22, 59)) == start  # 23:59 local is the same day


def test_a_week_of_local_days_across_the_change_has_seven_starts() -> None:
    grid = BucketGrid(DAY, BERLIN)
    starts = grid.starts(utc(2026, 3, 25, 23), utc(2026, 4, 1, 22))
    assert len(starts) == 7
    lengths = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert lengths.count(timedelta(hours=23)) == 1
    assert all(length in (timedelta(hours=23), DAY) for length in lengths)
    assert [start.astimezone(BERLIN).hour for start in starts] == [0] * 7


def test_local_weeks_begin_on_monday_midnight() -> None:
    grid = BucketGrid(timedelta(weeks=1), BERLIN)
    start = grid.floor(utc(2026, 3, 31, 12))
    assert start.astimezone(BERLIN) == datetime(2026, 3, 30, tzinfo=BERLIN)
    assert start == utc(2026, 3, 29, 22)


def test_buckets_shorter_than_a_day_stay_on_utc() -> None:
    grid = BucketGrid(HOUR, BERLIN)
    assert not grid.local
    assert grid.calendar() is None
    moment = utc(2026, 10, 25, 1, 30)
    assert grid.floor(moment) == bucket_start(moment, HOUR)
    assert grid.starts(utc(2026, 10, 25), utc(2026, 10, 25, 3)) == [
        utc(2026, 10, 25),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2),
    ]


def test_without_a_zone_days_are_utc_days() -> None:
    grid = BucketGrid(DAY)
    assert not grid.local
    assert grid.floor(utc(2026, 3, 29, 23, 30)) == utc(2026, 3, 29)
    assert grid.shift(utc(2026, 3, 29), 3) == utc(2026, 4, 1)


@settings(deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
    ),
    days=st.sampled_from([1, 2, 7]),
)
def test_every_instant_lies_in_the_local_bucket_its_floor_begins(moment: datetime, days: int) -> None:
    grid = BucketGrid(timedelta(days=days), BERLIN)
    start = grid.floor(moment)
    assert start <= moment < grid.shift(start, 1)
    assert grid.floor(start) == start
    assert start.astimezone(BERLIN).time().hour in (0, 1)  # midnight, or 01:00 where midnight never showed


@settings(deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=1, max_value=60 * 24 * 14),
)
def test_utc_buckets_are_a_whole_number_of_widths_from_the_origin(moment: datetime, minutes: int) -> None:
    width = timedelta(minutes=minutes)
    start = bucket_start(moment, width)
    assert start <= moment < start + width
    assert (start - BUCKET_ORIGIN) % width == timedelta(0)


def test_bucket_widths_as_a_request_spells_them() -> None:
    assert bucket_width("15m") == timedelta(minutes=15)
    assert bucket_width("1d") == DAY
    assert bucket_width(WIDEST_BUCKET) == timedelta(weeks=520)
    assert set(BUCKET_UNITS) == set(BUCKET_PATTERN[BUCKET_PATTERN.index("[smhdw]") + 1 : -2])


def test_zones_are_the_iana_databases_names_only() -> None:
    assert known_zone("Europe/Berlin") == "Europe/Berlin"
    with pytest.raises(ValueError, match="IANA"):
        known_zone("/etc/localtime")
    assert time_zone("UTC") is None
    assert time_zone(None) is None
    assert time_zone("Europe/Berlin") == BERLIN


def test_aggregates_are_spelt_as_sql_spells_them() -> None:
    assert [aggregate.value for aggregate in Aggregate] == ["avg", "min", "max", "sum", "count", "last"]
