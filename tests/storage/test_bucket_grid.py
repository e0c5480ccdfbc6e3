"""Local day buckets: the Python grid (which lays out empty buckets and pages) and the SQL
expression (which bins the rows) must agree on every instant, or rows land in no bucket."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, DateTime, literal, select

from domain.buckets import BucketGrid
from storage.buckets import local_bucket_column
from storage.database import create_database_engine

ZONES = [
    "Europe/Berlin",
    "America/Santiago",  # clocks change at midnight: some local midnights do not exist
    "America/Havana",  # the same, in the other hemisphere's season
    "Australia/Lord_Howe",  # a half-hour change
    "Asia/Kolkata",  # a half-hour offset
    "Pacific/Apia",  # skipped a whole calendar day in 2011
]


@pytest.fixture(scope="module")
def connection(migrated_db_url: str) -> Iterator[Connection]:
    engine = create_database_engine(migrated_db_url, pool_size=1)
    with engine.connect() as found:
        yield found
    engine.dispose()


def sql_floor(connection: Connection, grid: BucketGrid, moment: datetime) -> datetime:
    found: datetime | None = connection.scalar(
        select(local_bucket_column(grid, literal(moment, DateTime(timezone=True))))
    )
    assert found is not None
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    zone=st.sampled_from(ZONES),
    days=st.sampled_from([1, 2, 7]),
    moment=st.datetimes(
        min_value=datetime(2005, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
)
@example(zone="America/Havana", days=1, moment=datetime(2012, 11, 4, 4, 30, tzinfo=UTC))  # midnight twice
@example(zone="America/Santiago", days=1, moment=datetime(2011, 8, 21, 4, 30, tzinfo=UTC))  # no midnight
def test_python_and_sql_put_an_instant_in_the_same_local_bucket(
    connection: Connection, zone: str, days: int, moment: datetime
) -> None:
    grid = BucketGrid(timedelta(days=days), ZoneInfo(zone))
    start = grid.floor(moment)
    assert sql_floor(connection, grid, moment) == start
    # Where clocks went back at midnight (Havana), that midnight showed twice and is read
    # as its later showing: the hour between belongs to the day it names, ahead of its start.
    assert start <= moment < grid.shift(start, 1) or midnight_showed_twice(start, ZoneInfo(zone))


def midnight_showed_twice(start: datetime, zone: ZoneInfo) -> bool:
    wall = start.astimezone(zone).replace(tzinfo=None)
    readings = {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    return len(readings) == 2


@pytest.mark.parametrize("zone", ZONES)
def test_a_year_of_local_days_each_begins_where_the_last_ended(connection: Connection, zone: str) -> None:
    grid = BucketGrid(timedelta(days=1), ZoneInfo(zone))
    starts = grid.starts(grid.floor(datetime(2011, 1, 1, tzinfo=UTC)), datetime(2012, 1, 1, tzinfo=UTC))
    lengths = {later - earlier for earlier, later in itertools.pairwise(starts)}
    # Samoa's 29 December 2011 ran into its 31st: 30 December never was, and has no bucket
    assert lengths <= {timedelta(hours=h) for h in (23, 23.5, 24, 24.5, 25)}
    for start in starts[::7]:
        assert sql_floor(connection, grid, start) == start
        assert grid.floor(start) == start


def test_shorter_buckets_and_no_zone_stay_on_utc() -> None:
    moment = datetime(2026, 3, 29, 1, 40, tzinfo=UTC)
    assert not BucketGrid(timedelta(hours=1), ZoneInfo("Europe/Berlin")).local
    assert BucketGrid(timedelta(hours=1), ZoneInfo("Europe/Berlin")).floor(moment) == moment.replace(minute=0)
    assert BucketGrid(timedelta(days=1)).floor(moment) == moment.replace(hour=0, minute=0)
    assert BucketGrid(timedelta(days=1), ZoneInfo("Europe/Berlin")).floor(moment) == datetime(
        2026, 3, 28, 23, tzinfo=UTC
    )
