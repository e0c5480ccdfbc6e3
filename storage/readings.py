"""Reading queries for dashboards: latest values, and history raw or in time buckets.

The bucket is one replaceable SQL expression (`BucketExpression`): `date_bin` on
plain PostgreSQL here, `time_bucket` where TimescaleDB is installed. Everything
around it (aggregation, gap filling, paging) is the same for both, so both give
the same answer for the same question.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    ColumnExpressionArgument,
    DateTime,
    Executable,
    Float,
    Integer,
    Interval,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.orm import Session

from storage.models import Device, DeviceState, Reading

BucketExpression = Callable[
    [timedelta, ColumnExpressionArgument[datetime], datetime], ColumnElement[datetime]
]
"""(bucket width, time column, origin) -> the start of the bucket each row falls into."""

AggregateSource = Callable[[timedelta, str], str | None]
"""(bucket width, aggregate name) -> SQL reading those buckets from a precomputed aggregate,
or None to bucket raw readings. Binds `:device_ids`, `:quantities`, `:start`, `:end` (bucket
boundaries); answers `bucket, device_id, quantity, value, samples`."""

BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
"""A Monday at midnight UTC, TimescaleDB's own default: week buckets start on Mondays either way."""


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


def bucket_start(moment: datetime, width: timedelta, origin: datetime = BUCKET_ORIGIN) -> datetime:
    """The same floor as the SQL expressions, in Python, to lay out the buckets that have no rows."""
    return origin + ((moment - origin) // width) * width


_DAY = timedelta(days=1)
_WALL_ORIGIN = BUCKET_ORIGIN.replace(tzinfo=None)


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
        return self._calendar() is not None

    def floor(self, moment: datetime) -> datetime:
        """The start of the bucket `moment` falls into."""
        zone = self._calendar()
        if zone is None:
            return bucket_start(moment, self.width)
        return self._instant(self._wall_start(moment, zone), zone)

    def shift(self, start: datetime, count: int) -> datetime:
        """The start of the bucket `count` buckets after the one starting at `start`."""
        zone = self._calendar()
        if zone is None:
            return start + count * self.width
        # From the bucket's wall-clock midnight, not from `start` read as local time: where
        # clocks went forward at midnight, that midnight never showed and `start` reads 01:00.
        return self._instant(self._wall_start(start, zone) + count * self.width, zone)

    def starts(self, start: datetime, end: datetime) -> list[datetime]:
        """Every bucket start in [start, end), `start` being one.

        A local day that never was (Samoa skipped 30 December 2011) has no bucket.
        """
        zone = self._calendar()
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

    def column(self, time: ColumnExpressionArgument[datetime]) -> ColumnElement[datetime]:
        """`floor` in SQL, for local buckets: `date_bin` on the zone's wall-clock time.

        The same on plain PostgreSQL and TimescaleDB, so both backends answer alike;
        continuous aggregates, being binned in UTC, cannot serve these buckets.
        """
        zone = self._calendar()
        assert zone is not None, "local buckets only"
        name = literal(zone.key, String())
        origin = literal(_WALL_ORIGIN, DateTime())
        wall_bucket = func.date_bin(literal(self.width, Interval()), func.timezone(name, time), origin)
        return func.timezone(name, wall_bucket, type_=DateTime(timezone=True))

    def _calendar(self) -> ZoneInfo | None:
        """The zone whose calendar the buckets follow; None where they follow UTC."""
        return self.zone if self.width % _DAY == timedelta(0) else None

    def _wall_start(self, moment: datetime, zone: ZoneInfo) -> datetime:
        wall = moment.astimezone(zone).replace(tzinfo=None)
        return _WALL_ORIGIN + ((wall - _WALL_ORIGIN) // self.width) * self.width

    @staticmethod
    def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
        # A wall time that never showed (clocks forward) or showed twice (clocks back) is
        # read as PostgreSQL's `AT TIME ZONE` reads it: as the later of its two readings.
        return max(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))


class Aggregate(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    LAST = "last"


def _aggregate(agg: Aggregate) -> ColumnElement[float]:
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


def _latest_filters(
    use_case: object | None, tags: object | None, bounds: Sequence[object] | None
) -> list[ColumnElement[bool]]:
    """The filters of a page of latest values, on values or on bind parameters standing for
    them: `tags` a list the device's tags must contain, `bounds` (west, south, east, north)."""
    conditions: list[ColumnElement[bool]] = []
    if use_case is not None:
        conditions.append(Device.use_case == use_case)
    if tags is not None:
        conditions.append(Device.tags.contains(tags))
    if bounds is not None:
        west, south, east, north = bounds
        conditions.append(Device.longitude.between(west, east))
        conditions.append(Device.latitude.between(south, north))
    return conditions


def latest_values(
    session: Session,
    *,
    municipality_id: int,
    after_device_id: int | None,
    limit: int,
    use_case: str | None = None,
    quantity: str | None = None,
    tag: str | None = None,
    bbox: BoundingBox | None = None,
) -> list[LatestDevice]:
    """Each matching device with its latest value per quantity, at most `limit + 1` devices.

    Reads `device_state` only (one row per device and quantity), never the history.
    """
    return latest_of_devices(
        session,
        municipality_id=municipality_id,
        quantities=None if quantity is None else [quantity],
        after_device_id=after_device_id,
        limit=limit,
        conditions=_latest_filters(
            use_case,
            None if tag is None else [tag],
            None if bbox is None else (bbox.west, bbox.south, bbox.east, bbox.north),
        ),
    )


@dataclass(frozen=True, slots=True)
class LatestJsonPage:
    """A page of latest values as JSON text written by PostgreSQL (`latest_values_json`)."""

    items_json: str
    last_device_id: int | None
    more: bool


def latest_values_json(
    session: Session,
    *,
    municipality_id: int,
    after_device_id: int | None,
    limit: int,
    use_case: str | None = None,
    quantity: str | None = None,
    tag: str | None = None,
    bbox: BoundingBox | None = None,
) -> LatestJsonPage:
    """`latest_values` for the dashboards' hot route, with the page's JSON built by the database.

    The same devices and values as `latest_values` (the same device page, the same
    filters); the objects are those of `api.schemas.readings.LatestDeviceOut.body`,
    with times in UTC as `…Z`. Building them in Python cost the API's single worker
    about 4 ms of its GIL per page of 200 devices, most of a request; PostgreSQL does
    it in its own process. The statement is built once per combination of filters,
    with every value bound (`_latest_json_statement`).
    """
    statement = _latest_json_statement(
        LatestFilters(
            after=after_device_id is not None,
            quantity=quantity is not None,
            use_case=use_case is not None,
            tag=tag is not None,
            bbox=bbox is not None,
        )
    )
    parameters: dict[str, object] = {
        "municipality_id": municipality_id,
        "after_device_id": after_device_id,
        "limit": limit,
        "page_limit": limit + 1,
        "quantities": [quantity],
        "use_case": use_case,
        "tag_list": [tag],
        "nonfinite": [float("nan"), float("inf"), float("-inf")],
    }
    if bbox is not None:
        parameters |= {"west": bbox.west, "east": bbox.east, "south": bbox.south, "north": bbox.north}
    row = session.connection().execute(statement, parameters).one()
    return LatestJsonPage(items_json=row[0], last_device_id=row[1], more=bool(row[2]))


@dataclass(frozen=True, slots=True)
class LatestFilters:
    """Which filters a request of latest values uses: the shape of its statement."""

    after: bool
    quantity: bool
    use_case: bool
    tag: bool
    bbox: bool


@cache
def _latest_json_statement(filters: LatestFilters) -> Select[str, int, bool]:
    bounds: list[object] = [bindparam(side) for side in ("west", "south", "east", "north")]
    conditions = _latest_filters(
        bindparam("use_case") if filters.use_case else None,
        bindparam("tag_list", type_=Device.tags.type) if filters.tag else None,
        bounds if filters.bbox else None,
    )
    quantities: BindParameter[list[str]] | None = (
        bindparam("quantities", expanding=True) if filters.quantity else None
    )
    page = _device_page(
        municipality_id=bindparam("municipality_id"),
        quantities=quantities,
        after_device_id=bindparam("after_device_id") if filters.after else None,
        limit=bindparam("page_limit"),
        conditions=conditions,
    ).cte("page")
    shown = select(page).order_by(page.c.id).limit(bindparam("limit")).cte("shown")
    value = case(
        (DeviceState.value.in_(bindparam("nonfinite", expanding=True)), None), else_=DeviceState.value
    )
    utc = func.timezone("UTC", DeviceState.time)
    whole_second = func.date_part("microseconds", DeviceState.time).cast(Integer) % 1_000_000 == 0
    time_text = (
        func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS')
        + case((whole_second, ""), else_=func.to_char(utc, ".US"))
        + "Z"
    )
    state_object = func.json_build_object("value", value, "time", time_text, "quality", DeviceState.quality)
    state_filter = [DeviceState.device_id == shown.c.id]
    if quantities is not None:
        state_filter.append(DeviceState.quantity.in_(quantities))
    values = (
        select(func.coalesce(func.json_object_agg(DeviceState.quantity, state_object), text("'{}'::json")))
        .where(*state_filter)
        .scalar_subquery()
    )
    item = func.json_build_object(
        "dev_eui", shown.c.dev_eui,
        "name", shown.c.name,
        "use_case", shown.c.use_case,
        "latitude", shown.c.latitude,
        "longitude", shown.c.longitude,
        "tags", shown.c.tags,
        "values", values,
    )  # fmt: skip
    items = select(
        func.coalesce(func.json_agg(aggregate_order_by(item, shown.c.id)), text("'[]'::json")).cast(Text)
    ).scalar_subquery()
    return select(
        items,
        select(func.max(shown.c.id)).scalar_subquery(),
        select(func.count()).select_from(page).scalar_subquery() > bindparam("limit"),
    )


def _device_page(
    *,
    municipality_id: int | BindParameter[int],
    quantities: Sequence[str] | BindParameter[list[str]] | None,
    after_device_id: int | BindParameter[int] | None,
    limit: int | BindParameter[int],
    conditions: Sequence[ColumnElement[bool]],
) -> Select[int, str, str, str | None, float | None, float | None, list[str]]:
    """The devices of a page of latest values (at most `limit`, by id), as columns of a card."""
    state_filter = [DeviceState.device_id == Device.id]
    if quantities is not None:
        state_filter.append(DeviceState.quantity.in_(quantities))
    card = (Device.id, Device.dev_eui, Device.name, Device.use_case, Device.latitude, Device.longitude)
    devices = select(*card, Device.tags).where(
        Device.municipality_id == municipality_id,
        select(DeviceState.device_id).where(*state_filter).exists(),
        *conditions,
    )
    if after_device_id is not None:
        devices = devices.where(Device.id > after_device_id)
    return devices.order_by(Device.id).limit(limit)


def latest_of_devices(
    session: Session,
    *,
    municipality_id: int,
    quantities: Sequence[str] | None,
    after_device_id: int | None,
    limit: int,
    conditions: Sequence[ColumnElement[bool]] = (),
) -> list[LatestDevice]:
    """Devices (by id, at most `limit + 1`) with a latest value of any of `quantities`
    (None: of any quantity), each with those values; one index-backed query."""
    page = _device_page(
        municipality_id=municipality_id,
        quantities=quantities,
        after_device_id=after_device_id,
        limit=limit + 1,
        conditions=conditions,
    ).subquery()
    joined = [DeviceState.device_id == page.c.id]
    if quantities is not None:
        joined.append(DeviceState.quantity.in_(quantities))
    rows = (
        select(
            page,
            DeviceState.quantity,
            DeviceState.value,
            DeviceState.time,
            DeviceState.quality,
        )
        .outerjoin(DeviceState, and_(*joined))
        .order_by(page.c.id, DeviceState.quantity)
    )
    found: list[LatestDevice] = []
    for *columns, quantity, value, time, quality in session.connection().execute(rows):
        if not found or found[-1].device.id != columns[0]:
            found.append(LatestDevice(DeviceCard(*columns), []))
        if quantity is not None:
            found[-1].states.append(LatestValue(quantity, value, time, quality))
    return found


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
    """Whose midnight begins a day bucket (see `BucketGrid`); None for UTC."""


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
        precomputed = aggregate_source(width, query.agg.value)
    rows: Executable
    if precomputed is not None:
        quantities = query.quantities if query.quantities is not None else sorted({q for _, q in series})
        rows = text(precomputed).bindparams(
            device_ids=list(query.device_ids), quantities=list(quantities), start=page_start, end=page_end
        )
    else:
        bucket = (
            grid.column(Reading.time) if grid.local else bucket_expression(width, Reading.time, BUCKET_ORIGIN)
        ).label("bucket")
        rows = (
            select(bucket, Reading.device_id, Reading.quantity, _aggregate(query.agg), func.count())
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
