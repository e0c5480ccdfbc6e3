"""Latest values of a municipality's devices, read from `device_state` only, never from the history.

One page of devices (by id, with their filters) is the statement every reader shares:
the dashboards' JSON page, the export's rows and the environment view's quantities
differ only in what they build on it. Statements are built once per shape of request
(`LatestFilters`) with every value bound, so a page costs a cached compile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from domain.device import Device
from domain.latest import BoundingBox, LatestDevice, LatestValue
from storage.models import Device as DeviceRow
from storage.models import DeviceState

_BOUNDS = ("west", "south", "east", "north")


@dataclass(frozen=True, slots=True)
class LatestFilters:
    """Which filters a request of latest values uses: the shape of its statement."""

    after: bool
    quantity: bool
    use_case: bool
    tag: bool
    bbox: bool


@dataclass(frozen=True, slots=True)
class LatestRequest:
    """A page of latest values asked for: whose, after which device, how many, and filtered how."""

    municipality_id: int
    after_device_id: int | None
    limit: int
    use_case: str | None = None
    quantities: Sequence[str] | None = None
    tag: str | None = None
    bbox: BoundingBox | None = None

    @property
    def filters(self) -> LatestFilters:
        return LatestFilters(
            after=self.after_device_id is not None,
            quantity=self.quantities is not None,
            use_case=self.use_case is not None,
            tag=self.tag is not None,
            bbox=self.bbox is not None,
        )

    @property
    def parameters(self) -> dict[str, object]:
        """The values of the bind parameters of `latest_page_statement` and what is built on it."""
        parameters: dict[str, object] = {
            "municipality_id": self.municipality_id,
            "after_device_id": self.after_device_id,
            "limit": self.limit,
            "page_limit": self.limit + 1,
            "quantities": list(self.quantities or ()),
            "use_case": self.use_case,
            "tag_list": [self.tag],
            "nonfinite": [float("nan"), float("inf"), float("-inf")],
        }
        if self.bbox is not None:
            box = self.bbox
            parameters |= {"west": box.west, "east": box.east, "south": box.south, "north": box.north}
        return parameters


@dataclass(frozen=True, slots=True)
class LatestPage:
    """The device page of a shape of request, and the quantities it is limited to (if any)."""

    devices: Select[int, str, str, str | None, float | None, float | None, list[str]]
    quantities: BindParameter[list[str]] | None


def latest_page_statement(filters: LatestFilters) -> LatestPage:
    """The devices of a page of latest values (at most `:page_limit`, by id), as columns of a card.

    A device is on the page only if it has a latest value (of the quantities asked for).
    """
    quantities: BindParameter[list[str]] | None = (
        bindparam("quantities", expanding=True) if filters.quantity else None
    )
    state_filter = [DeviceState.device_id == DeviceRow.id]
    if quantities is not None:
        state_filter.append(DeviceState.quantity.in_(quantities))
    conditions: list[ColumnElement[bool]] = []
    if filters.use_case:
        conditions.append(DeviceRow.use_case == bindparam("use_case"))
    if filters.tag:
        conditions.append(DeviceRow.tags.contains(bindparam("tag_list", type_=DeviceRow.tags.type)))
    if filters.bbox:
        west, south, east, north = (bindparam(side, type_=Float()) for side in _BOUNDS)
        conditions.append(DeviceRow.longitude.between(west, east))
        conditions.append(DeviceRow.latitude.between(south, north))
    if filters.after:
        conditions.append(DeviceRow.id > bindparam("after_device_id"))
    card = (
        DeviceRow.id,
        DeviceRow.dev_eui,
        DeviceRow.name,
        DeviceRow.use_case,
        DeviceRow.latitude,
        DeviceRow.longitude,
    )
    devices = (
        select(*card, DeviceRow.tags)
        .where(
            DeviceRow.municipality_id == bindparam("municipality_id"),
            select(DeviceState.device_id).where(*state_filter).exists(),
            *conditions,
        )
        .order_by(DeviceRow.id)
        .limit(bindparam("page_limit"))
    )
    return LatestPage(devices, quantities)


def latest_values(session: Session, request: LatestRequest) -> list[LatestDevice]:
    """Each device of `request`'s page (at most `limit + 1`) with its latest value per quantity."""
    found: list[LatestDevice] = []
    rows = session.connection().execute(_latest_rows_statement(request.filters), request.parameters)
    for device_id, dev_eui, name, use_case, latitude, longitude, tags, quantity, value, time, quality in rows:
        if not found or found[-1].device.id != device_id:
            card = Device(device_id, dev_eui, name, use_case, latitude, longitude, tags)
            found.append(LatestDevice(card, []))
        # All None where the device has no value of the quantities (outer join); never some.
        if quantity is not None and value is not None and time is not None and quality is not None:
            found[-1].states.append(LatestValue(quantity, value, time, quality))
    return found


def latest_of_devices(
    session: Session,
    *,
    municipality_id: int,
    quantities: Sequence[str] | None,
    after_device_id: int | None,
    limit: int,
) -> list[LatestDevice]:
    """Devices (by id, at most `limit + 1`) with a latest value of any of `quantities`
    (None: of any quantity), each with those values; one index-backed query."""
    request = LatestRequest(
        municipality_id=municipality_id, after_device_id=after_device_id, limit=limit, quantities=quantities
    )
    return latest_values(session, request)


@cache
def _latest_rows_statement(
    filters: LatestFilters,
) -> Select[
    int,
    str,
    str,
    str | None,
    float | None,
    float | None,
    list[str],
    str | None,
    float | None,
    datetime | None,
    int | None,
]:
    page = latest_page_statement(filters)
    devices = page.devices.subquery()
    joined = [DeviceState.device_id == devices.c.id]
    if page.quantities is not None:
        joined.append(DeviceState.quantity.in_(page.quantities))
    return (
        select(devices, DeviceState.quantity, DeviceState.value, DeviceState.time, DeviceState.quality)
        .outerjoin(DeviceState, and_(*joined))
        .order_by(devices.c.id, DeviceState.quantity)
    )


@dataclass(frozen=True, slots=True)
class LatestJsonPage:
    """A page of latest values as JSON text written by PostgreSQL (`latest_values_json`)."""

    items_json: str
    last_device_id: int | None
    more: bool


def latest_values_json(session: Session, request: LatestRequest) -> LatestJsonPage:
    """`latest_values` for the dashboards' hot route, with the page's JSON built by the database.

    The same devices and values as `latest_values` (the same device page, the same
    filters); the objects are those of `api.schemas.readings.LatestDeviceOut.body`,
    with times in UTC as `…Z`. Building them in Python cost the API's single worker
    about 4 ms of its GIL per page of 200 devices, most of a request; PostgreSQL does
    it in its own process.
    """
    row = session.connection().execute(_latest_json_statement(request.filters), request.parameters).one()
    return LatestJsonPage(items_json=row[0], last_device_id=row[1], more=bool(row[2]))


@cache
def _latest_json_statement(filters: LatestFilters) -> Select[str, int, bool]:
    page = latest_page_statement(filters)
    devices = page.devices.cte("page")
    shown = select(devices).order_by(devices.c.id).limit(bindparam("limit")).cte("shown")
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
    if page.quantities is not None:
        state_filter.append(DeviceState.quantity.in_(page.quantities))
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
        select(func.count()).select_from(devices).scalar_subquery() > bindparam("limit"),
    )
