"""Readings history for dashboards: raw, or in time buckets with every empty bucket laid out as a gap.

The bucket is one replaceable SQL expression (`storage.buckets.BucketExpression`):
`date_bin` on plain PostgreSQL, `time_bucket` where TimescaleDB is installed, or a
town's local days (`domain.buckets.BucketGrid`). Everything around it (aggregation,
gap filling, paging) is the same for all, so every backend gives the same answer
for the same question.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, Executable, func, literal, select, text, tuple_
from sqlalchemy.orm import Session

from domain.buckets import BUCKET_ORIGIN, BucketGrid
from domain.history import HistoryCursor, HistoryPage, HistoryPoint, HistoryQuery
from storage.buckets import (
    AggregateSource,
    BucketExpression,
    date_bin_bucket,
    local_bucket_column,
    reading_aggregate,
)
from storage.models import DeviceState, Reading


def history_page(
    session: Session,
    query: HistoryQuery,
    *,
    cursor: HistoryCursor | None,
    limit: int,
    bucket_expression: BucketExpression = date_bin_bucket,
    aggregate_source: AggregateSource | None = None,
) -> HistoryPage:
    """One page of history, at most about `limit` points, and where the next one starts.

    `aggregate_source` serves the widths it knows from precomputed buckets (TimescaleDB's
    continuous aggregates for hours and days); any other width is bucketed from raw rows.
    """
    if query.bucket is None:
        return _raw_page(session, query, cursor, limit)
    return _bucketed_page(session, query, query.bucket, cursor, limit, bucket_expression, aggregate_source)


def _series_filter(query: HistoryQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Reading.device_id.in_(query.device_ids)]
    if query.quantities is not None:
        conditions.append(Reading.quantity.in_(query.quantities))
    return conditions


def _raw_page(session: Session, query: HistoryQuery, cursor: HistoryCursor | None, limit: int) -> HistoryPage:
    rows = (
        select(Reading.time, Reading.device_id, Reading.quantity, Reading.value)
        .where(*_series_filter(query), Reading.time >= query.start, Reading.time < query.end)
        .order_by(Reading.time, Reading.device_id, Reading.quantity)
        .limit(limit + 1)
    )
    if cursor is not None and cursor.device_id is not None and cursor.quantity is not None:
        position = tuple_(Reading.time, Reading.device_id, Reading.quantity)
        rows = rows.where(
            position > tuple_(literal(cursor.time), literal(cursor.device_id), literal(cursor.quantity))
        )
    points = [
        HistoryPoint(time, device_id, quantity, value, 1)
        for time, device_id, quantity, value in session.connection().execute(rows)
    ]
    if len(points) <= limit:
        return HistoryPage(points, None)
    last = points[limit - 1]
    return HistoryPage(points[:limit], HistoryCursor(last.time, last.device_id, last.quantity))


def bucketed_points(session: Session, query: HistoryQuery) -> int:
    """How many points (buckets, gaps included, times series) a bucketed history answers at most.

    Counted, not read: a request for one-second buckets over two centuries would
    otherwise be found out only by streaming it. Series without a latest value count
    as none, as they are laid out only once a page finds their rows; a query without
    any series still counts its buckets, since each of them is walked through.
    """
    assert query.bucket is not None, "raw history has as many points as stored readings"
    buckets = -(-(query.end - query.start) // query.bucket) + 1  # whole buckets at both ends
    if query.quantities is not None:
        series = len(set(query.device_ids)) * len(set(query.quantities))
    else:
        known = select(func.count()).where(DeviceState.device_id.in_(query.device_ids))
        series = int(session.connection().scalar(known) or 0)
    return buckets * max(1, series)


def _series(session: Session, query: HistoryQuery) -> list[tuple[int, str]]:
    """The (device, quantity) pairs to lay out buckets for, gaps included."""
    if query.quantities is not None:
        return sorted(
            (device_id, quantity) for device_id in set(query.device_ids) for quantity in set(query.quantities)
        )
    known = select(DeviceState.device_id, DeviceState.quantity).where(
        DeviceState.device_id.in_(query.device_ids)
    )
    return sorted(session.connection().execute(known))


def _bucketed_page(
    session: Session,
    query: HistoryQuery,
    width: timedelta,
    cursor: HistoryCursor | None,
    limit: int,
    bucket_expression: BucketExpression,
    aggregate_source: AggregateSource | None = None,
) -> HistoryPage:
    series = _series(session, query)
    buckets_per_page = max(1, limit // max(1, len(series)))
    grid = BucketGrid(width, query.zone)
    # Whole buckets at both ends, as TimescaleDB's continuous aggregates serve them: a day
    # bucket always means the whole day, whichever backend answers.
    last_start = grid.floor(query.end)
    covered_end = grid.shift(last_start, 1) if last_start < query.end else last_start
    page_start = grid.floor(query.start)
    if cursor is not None:
        # Clamped into the query's range, so a cursor edited by hand cannot reach odd times.
        page_start = max(page_start, min(covered_end, grid.floor(cursor.time)))
    # Never shifted past the range's end: `buckets_per_page` buckets of a wide bucket from
    # the page's start would reach beyond the year 9999, which Python's datetime refuses.
    # One bucket more than the span holds, for local days that are shorter than 24 hours.
    buckets_left = -(-(covered_end - page_start) // width) + 1
    page_end = min(covered_end, grid.shift(page_start, min(buckets_per_page, buckets_left)))
    precomputed = None
    if aggregate_source is not None and not grid.local:
        precomputed = aggregate_source(width, query.agg)
    rows: Executable
    if precomputed is not None:
        quantities = query.quantities if query.quantities is not None else sorted({q for _, q in series})
        rows = text(precomputed).bindparams(
            device_ids=list(query.device_ids), quantities=list(quantities), start=page_start, end=page_end
        )
    else:
        bucket = (
            local_bucket_column(grid, Reading.time)
            if grid.local
            else bucket_expression(width, Reading.time, BUCKET_ORIGIN)
        ).label("bucket")
        rows = (
            select(bucket, Reading.device_id, Reading.quantity, reading_aggregate(query.agg), func.count())
            .where(
                *_series_filter(query),
                Reading.time >= page_start,
                Reading.time < page_end,
            )
            .group_by(bucket, Reading.device_id, Reading.quantity)
        )
    # Column rows are read through the Core connection (here and above): the ORM's result
    # machinery cost more than the rows themselves for a month of hourly buckets.
    found = {
        (time, device_id, quantity): (value, samples)
        for time, device_id, quantity, value, samples in session.connection().execute(rows)
    }
    seen_series = sorted(set(series) | {(device_id, quantity) for _, device_id, quantity in found})
    points = []
    for moment in grid.starts(page_start, page_end):
        for device_id, quantity in seen_series:
            value, samples = found.get((moment, device_id, quantity), (None, 0))
            points.append(HistoryPoint(moment, device_id, quantity, value, samples, gap=samples == 0))
    return HistoryPage(points, HistoryCursor(page_end) if page_end < covered_end else None)
