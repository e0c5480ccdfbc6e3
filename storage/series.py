"""Reading history of several devices as numpy arrays, ready for `domain.analytics`.

One query per quantity for a whole page of devices, ordered as the reading key
(device, quantity, time) is, so the database walks one index and Python only cuts
the result at device boundaries. Times come back as float epoch seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import (
    ColumnElement,
    ColumnExpressionArgument,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Select,
    bindparam,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.orm import Session

from domain.analytics.arrays import Floats
from storage.models import Device, DeviceState, Reading

Collected = dict[int, tuple[list[float], list[float]]]


@dataclass(frozen=True, slots=True)
class Series:
    times_s: Floats
    values: Floats

    def __len__(self) -> int:
        return int(self.times_s.size)


def epoch_seconds(moment: datetime) -> float:
    return moment.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def epoch_of(moment: ColumnExpressionArgument[datetime]) -> ColumnElement[float]:
    """Epoch seconds as double precision; `extract` gives numeric, several times slower to make."""
    return func.date_part("epoch", moment, type_=Float)


_EPOCH = epoch_of(Reading.time)


def packed_doubles(
    column: ColumnExpressionArgument[float], order_by: ColumnExpressionArgument[object]
) -> ColumnElement[bytes]:
    """The column's values in `order_by` order as one string of big-endian doubles (`float8send`).

    numpy reads it with no work per value; a float8[] array costs a parse per element
    in psycopg and another pass in SQLAlchemy's ARRAY result processor.
    """
    return func.string_agg(
        func.float8send(column),
        aggregate_order_by(literal(b"", LargeBinary), order_by),
        type_=LargeBinary,
    )


def doubles(packed: bytes | None) -> Floats:
    """Big-endian doubles packed by the database (`float8send`) as a native array."""
    return np.frombuffer(packed or b"", dtype=">f8").astype(np.float64)


def _state_before_statement() -> Select[int, float, float]:
    """Each device's last reading before `:start`: one index probe per device (LATERAL ...
    LIMIT 1 walks the key backwards); DISTINCT ON would read and sort whole histories."""
    devices = select(func.unnest(bindparam("device_ids", type_=ARRAY(Integer))).label("device_id")).subquery()
    last = (
        select(_EPOCH.label("moment"), Reading.value)
        .where(
            Reading.device_id == devices.c.device_id,
            Reading.quantity == bindparam("quantity"),
            Reading.time < bindparam("start"),
        )
        .order_by(Reading.time.desc())
        .limit(1)
        .lateral()
    )
    return select(devices.c.device_id, last.c.moment, last.c.value).select_from(devices.join(last, true()))


def _packed_series_statement() -> Select[int, bytes, bytes]:
    """One row of two packed arrays per device (from its own start to `:end`), each device's
    aggregate fed by its own walk of the reading key: thousands of rows would each cost a
    trip through the result machinery, and no sort of the whole set is needed."""
    bounds = select(
        func.unnest(bindparam("device_ids", type_=ARRAY(Integer))).label("device_id"),
        func.unnest(bindparam("starts", type_=ARRAY(DateTime(timezone=True)))).label("start"),
    ).subquery()
    arrays = (
        select(
            packed_doubles(_EPOCH, Reading.time).label("moments"),
            packed_doubles(Reading.value, Reading.time).label("measured"),
        )
        .where(
            Reading.device_id == bounds.c.device_id,
            Reading.quantity == bindparam("quantity"),
            Reading.time >= bounds.c.start,
            Reading.time <= bindparam("end"),
        )
        .lateral()
    )
    return select(bounds.c.device_id, arrays.c.moments, arrays.c.measured).select_from(
        bounds.join(arrays, true())
    )


_STATE_BEFORE = _state_before_statement()
_PACKED_SERIES = _packed_series_statement()


def device_series(
    session: Session,
    device_ids: Sequence[int],
    quantity: str,
    *,
    start: datetime,
    end: datetime,
    with_state_before: bool = False,
    later_starts: Mapping[int, datetime] | None = None,
) -> dict[int, Series]:
    """Each device's readings of `quantity` in [start, end], oldest first.

    `with_state_before` adds each device's last reading before `start`, for series
    that are states (a parking spot stays occupied between reports), where the value
    at the window's start matters as much as the changes within it. `later_starts`
    moves the start of some devices' series later (never earlier than `start`), for
    callers that know the older readings cannot change their answer.
    """
    if not device_ids:
        return {}
    # Column queries go through the Core connection: the ORM's compile and result layers
    # cost more than the rows here; the statements are built once, every value bound.
    core = session.connection()
    before_points: dict[int, tuple[float, float]] = {}
    if with_state_before:
        parameters = {"device_ids": list(device_ids), "quantity": quantity, "start": start}
        for device_id, moment, value in core.execute(_STATE_BEFORE, parameters):
            before_points[device_id] = (moment, value)
    starts = [max(start, (later_starts or {}).get(device_id, start)) for device_id in device_ids]
    parameters = {"device_ids": list(device_ids), "starts": starts, "quantity": quantity, "end": end}
    rows = core.execute(_PACKED_SERIES, parameters)
    series = {device_id: Series(doubles(None), doubles(None)) for device_id in device_ids}
    for device_id, moments, values in rows:
        series[device_id] = Series(doubles(moments), doubles(values))
    for device_id, (moment, value) in before_points.items():
        found = series[device_id]
        series[device_id] = Series(np.insert(found.times_s, 0, moment), np.insert(found.values, 0, value))
    return series


def daily_means(
    session: Session, device_ids: Sequence[int], quantity: str, *, start: datetime, end: datetime
) -> dict[int, Series]:
    """One mean per device and day: enough for trends over months, a hundredth of the rows."""
    if not device_ids:
        return {}
    day = func.date_trunc("day", Reading.time)
    rows = (
        select(Reading.device_id, epoch_of(day), func.avg(Reading.value).cast(Float))
        .where(
            Reading.device_id.in_(device_ids),
            Reading.quantity == quantity,
            Reading.time >= start,
            Reading.time <= end,
        )
        .group_by(Reading.device_id, day)
        .order_by(Reading.device_id, day)
    )
    found: Collected = {device_id: ([], []) for device_id in device_ids}
    for device_id, moment, value in session.execute(rows):
        found[device_id][0].append(moment + timedelta(hours=12).total_seconds())
        found[device_id][1].append(value)
    return _as_series(found)


def _as_series(found: Collected) -> dict[int, Series]:
    return {
        device_id: Series(np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64))
        for device_id, (times, values) in found.items()
    }


def devices_with_state(
    session: Session, municipality_id: int, quantity: str, *, after_device_id: int | None, limit: int | None
) -> list[tuple[Device, DeviceState]]:
    """The municipality's devices that report `quantity`, by id, each with its latest value."""
    query = (
        select(Device, DeviceState)
        .join(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.municipality_id == municipality_id, DeviceState.quantity == quantity)
        .order_by(Device.id)
    )
    if after_device_id is not None:
        query = query.where(Device.id > after_device_id)
    if limit is not None:
        query = query.limit(limit)
    return [(device, state) for device, state in session.execute(query)]
