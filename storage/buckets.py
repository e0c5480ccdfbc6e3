"""Time buckets in SQL: the grid of `domain.buckets` as `date_bin`, `time_bucket` and aggregates.

History queries must give the same numbers on both backends: buckets are `time_bucket`
on TimescaleDB (read from a continuous aggregate for hour and day buckets) and
`date_bin` on plain PostgreSQL, both aligned on Monday 2000-01-03 00:00 UTC, which is
TimescaleDB's default origin; `domain.buckets.bucket_start` is the same arithmetic in
Python. The history pages, the gap layout, the gateway activity bins and the
continuous aggregates' DDL all take their bucket SQL from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import (
    ColumnElement,
    ColumnExpressionArgument,
    DateTime,
    Float,
    Interval,
    String,
    func,
    literal,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

from domain.buckets import BUCKET_ORIGIN, WALL_ORIGIN, Aggregate, BucketGrid
from storage.models import Reading

BucketExpression = Callable[
    [timedelta, ColumnExpressionArgument[datetime], datetime], ColumnElement[datetime]
]
"""(bucket width, time column, origin) -> the start of the bucket each row falls into."""

AggregateSource = Callable[[timedelta, Aggregate], str | None]
"""(bucket width, aggregate) -> SQL reading those buckets from a precomputed aggregate,
or None to bucket raw readings. Binds `:device_ids`, `:quantities`, `:start`, `:end` (bucket
boundaries); answers `bucket, device_id, quantity, value, samples`."""

BUCKET_ORIGIN_SQL: Final = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"
"""`domain.buckets.BUCKET_ORIGIN` as a SQL literal."""

IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")
"""A plain (optionally qualified) column or relation name: the only names spliced into SQL text."""


@dataclass(frozen=True)
class ContinuousAggregate:
    """A continuous aggregate of `reading` over one bucket width.

    `end_offset` keeps the newest, still filling bucket out of materialisation;
    real-time aggregation answers it from `reading`. Late rows (backfill after an
    outage, history decoded when a device is claimed) invalidate materialised
    buckets; the refresh policy re-materialises them within its window.
    """

    name: str
    bucket: timedelta
    end_offset: timedelta
    schedule_interval: timedelta


CONTINUOUS_AGGREGATES: Final = (
    ContinuousAggregate("reading_hourly", timedelta(hours=1), timedelta(hours=1), timedelta(minutes=30)),
    ContinuousAggregate("reading_daily", timedelta(days=1), timedelta(days=1), timedelta(hours=1)),
)

AGGREGATE_COLUMNS: Final[dict[Aggregate, str]] = {
    Aggregate.AVG: "value_avg",
    Aggregate.MIN: "value_min",
    Aggregate.MAX: "value_max",
    Aggregate.SUM: "value_sum",
    Aggregate.COUNT: "value_count",
    Aggregate.LAST: "value_last",
}
"""Column of a continuous aggregate holding each aggregate; `last_time` says when `value_last` was read."""


def interval_sql(span: timedelta) -> str:
    """An `INTERVAL` literal in the largest unit that divides `span` exactly."""
    microseconds = span // timedelta(microseconds=1)
    if microseconds <= 0:
        raise ValueError(f"an interval must be positive, got {span}")
    for unit, size in (
        ("day", 86_400_000_000),
        ("hour", 3_600_000_000),
        ("minute", 60_000_000),
        ("second", 1_000_000),
    ):
        if microseconds % size == 0:
            count = microseconds // size
            return f"INTERVAL '{count} {unit}{'' if count == 1 else 's'}'"
    return f"INTERVAL '{microseconds} microseconds'"


def bucket_expression(bucket: timedelta, column: str, *, timescale: bool) -> str:
    """SQL for the start of the bucket holding `column`, identical on both backends.

    `time_bucket` without an origin uses TimescaleDB's default (Monday
    2000-01-03 UTC), which is the only form its continuous aggregates and
    planner optimisations recognise; `date_bin` gets that origin explicitly. With
    the origin `date_bin` is often shown with (2000-01-01) weeks would start on
    Saturday and buckets like 7h or 5d would be shifted.
    """
    if not IDENTIFIER.fullmatch(column):
        raise ValueError(f"not a plain column name: {column!r}")
    if timescale:
        return f"time_bucket({interval_sql(bucket)}, {column})"
    return f"date_bin({interval_sql(bucket)}, {column}, {BUCKET_ORIGIN_SQL})"


def date_bin_bucket(
    width: timedelta, column: ColumnExpressionArgument[datetime], origin: datetime
) -> ColumnElement[datetime]:
    """Plain PostgreSQL (14+): `date_bin(width, time, origin)`."""
    return func.date_bin(
        literal(width, Interval()),
        column,
        literal(origin, DateTime(timezone=True)),
        type_=DateTime(timezone=True),
    )


def time_bucket_column(
    width: timedelta, time_column: ColumnExpressionArgument[datetime], origin: datetime = BUCKET_ORIGIN
) -> ColumnElement[datetime]:
    """`time_bucket` as a SQLAlchemy expression, for query code that swaps it in for `date_bin`.

    Same arguments as `date_bin_bucket`; at the default origin the origin is left
    out, which is the form TimescaleDB optimises.
    """
    if origin == BUCKET_ORIGIN:
        return func.time_bucket(literal(width, Interval()), time_column, type_=DateTime(timezone=True))
    return func.time_bucket(
        literal(width, Interval()),
        time_column,
        literal(origin, DateTime(timezone=True)),
        type_=DateTime(timezone=True),
    )


def local_bucket_column(
    grid: BucketGrid, time: ColumnExpressionArgument[datetime]
) -> ColumnElement[datetime]:
    """`grid.floor` in SQL, for local buckets: `date_bin` on the zone's wall-clock time.

    The same on plain PostgreSQL and TimescaleDB, so both backends answer alike;
    continuous aggregates, being binned in UTC, cannot serve these buckets.
    """
    zone = grid.calendar()
    assert zone is not None, "local buckets only"
    name = literal(zone.key, String())
    origin = literal(WALL_ORIGIN, DateTime())
    wall_bucket = func.date_bin(literal(grid.width, Interval()), func.timezone(name, time), origin)
    return func.timezone(name, wall_bucket, type_=DateTime(timezone=True))


def reading_aggregate(agg: Aggregate) -> ColumnElement[float]:
    """`agg` over the `reading` rows of a bucket, as a SQLAlchemy expression."""
    match agg:
        case Aggregate.LAST:
            latest_first = func.array_agg(
                aggregate_order_by(Reading.value, Reading.time.desc()), type_=ARRAY(Float)
            )
            return latest_first[1]
        case Aggregate.COUNT:
            return func.count(Reading.value).cast(Float)
        case Aggregate.MIN:
            return func.min(Reading.value)
        case Aggregate.MAX:
            return func.max(Reading.value)
        case Aggregate.SUM:
            return func.sum(Reading.value)
        case Aggregate.AVG:
            return func.avg(Reading.value).cast(Float)


def raw_aggregate_sql(aggregate: Aggregate, *, timescale: bool) -> str:
    """The aggregate over raw `reading` rows; `last` is the value with the latest time in the bucket.

    `(device_id, quantity, time)` is the primary key, so within one series the
    latest time is unique and both forms of `last` pick the same row.
    """
    if aggregate == Aggregate.LAST:
        return "last(value, time)" if timescale else "(array_agg(value ORDER BY time DESC))[1]"
    if aggregate == Aggregate.COUNT:
        return "count(*)"
    return f"{aggregate}(value)"


def continuous_aggregate_for(bucket: timedelta) -> str | None:
    """The continuous aggregate that serves `bucket` as it is, if any (hour and day)."""
    for aggregate in CONTINUOUS_AGGREGATES:
        if aggregate.bucket == bucket:
            return aggregate.name
    return None


def bucketed_readings_sql(bucket: timedelta, aggregate: Aggregate, *, timescale: bool) -> str:
    """History of some devices' quantities in buckets, one row per bucket that has readings.

    Bind parameters: `:device_ids` (int array), `:quantities` (text array),
    `:start`, `:end` (aware datetimes on bucket boundaries: use
    `domain.buckets.covering_window`, since the aggregate path selects whole buckets).
    Columns: `bucket, device_id, quantity, value, samples` (readings in the bucket),
    ordered by device, quantity, bucket. Missing buckets are gaps; the caller marks them.
    """
    where_series = "device_id = ANY(:device_ids) AND quantity = ANY(:quantities)"
    order = "ORDER BY device_id, quantity, bucket"
    view = continuous_aggregate_for(bucket) if timescale else None
    if view is not None:
        return (
            f"SELECT bucket, device_id, quantity, {AGGREGATE_COLUMNS[aggregate]} AS value, "
            f"value_count AS samples FROM {view} "
            f"WHERE {where_series} AND bucket >= :start AND bucket < :end {order}"
        )
    return (
        f"SELECT {bucket_expression(bucket, 'time', timescale=timescale)} AS bucket, device_id, quantity, "
        f"{raw_aggregate_sql(aggregate, timescale=timescale)} AS value, count(*) AS samples FROM reading "
        f"WHERE {where_series} AND time >= :start AND time < :end GROUP BY 1, 2, 3 {order}"
    )


def aggregate_history_sql(bucket: timedelta, aggregate: Aggregate) -> str | None:
    """For the API's history on TimescaleDB: the query reading `bucket` from its continuous
    aggregate, or None when no aggregate has that width (the API then buckets raw readings).

    The same text that `make check-timescale` compares with `date_bin` on raw readings.
    """
    if continuous_aggregate_for(bucket) is None:
        return None
    return bucketed_readings_sql(bucket, aggregate, timescale=True)
