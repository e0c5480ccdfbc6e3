"""Readings for dashboards: latest values of a municipality, and history of chosen devices.

History is raw without `bucket`, else aggregated per bucket with every empty bucket
present as a gap, so that a chart draws a hole instead of a line across it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, StringConstraints, WithJsonSchema
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.access import Action
from api.deps import EngineDep, MunicipalityDep, ServicesDep, SessionDep, SettingsDep, municipality_for
from api.exports import EXPORT_RESPONSES, ExportFormat, ExportRow, export_response, negotiate, paged
from api.pagination import CursorQuery, LimitQuery, Page, encode_cursor, int_cursor, time_cursor
from api.problems import problem_responses
from api.responses import json_page_response, json_response
from api.schemas.moments import Moment
from api.schemas.readings import HistoryPointOut, LatestDeviceOut
from domain.buckets import (
    BUCKET_PATTERN,
    WIDEST_BUCKET,
    Aggregate,
    bucket_width,
    known_zone,
    time_zone,
)
from domain.device import Device
from domain.device_fields import DEV_EUI_PATTERN
from domain.errors import NotFound
from domain.history import HistoryCursor, HistoryPage, HistoryQuery
from domain.ids import parse_dev_eui
from domain.latest import BoundingBox
from domain.municipality import Municipality
from domain.text import Label
from domain.use_case import UseCase
from storage.buckets import AggregateSource, BucketExpression
from storage.latest import LatestRequest, latest_values, latest_values_json
from storage.models import Device as DeviceRow
from storage.readings import bucketed_points, history_page
from storage.tenancy import tenant_of

router = APIRouter(prefix="/municipalities/{slug}/readings", tags=["readings"])

DEFAULT_SPAN = timedelta(days=1)
BBOX_NUMBER = r"-?[0-9]{1,3}(\.[0-9]{1,12})?"

QuantityName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")]
DEV_EUI_QUERY_SCHEMA = {"type": "string", "maxLength": 64, "pattern": DEV_EUI_PATTERN}
"""A DevEUI in a query, as documented: checked by `parse_dev_eui` when the devices are looked up."""
ZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(known_zone)]
TimeZoneQuery = Annotated[
    ZoneName | None,
    Query(
        description="IANA time zone whose midnight begins a bucket of whole days (`1d`, `7d`, `1w`), so "
        "that a town's day is its own; default UTC. Shorter buckets stay on UTC, which in zones with "
        "whole-hour offsets (all of Europe) gives the same bucket starts",
        examples=["Europe/Berlin"],
    ),
]


QuantityQuery = Annotated[QuantityName | None, Query(description="Only this quantity, e.g. `fill_percent`")]
TagQuery = Annotated[Label | None, Query(description="Only devices carrying this tag")]
BboxQuery = Annotated[
    str | None,
    Query(pattern=rf"^{BBOX_NUMBER}(,{BBOX_NUMBER}){{3}}$", description="`west,south,east,north` in degrees"),
]
FormatQuery = Annotated[ExportFormat | None, Query(alias="format", description="Overrides the Accept header")]


def _bbox(text: str | None) -> BoundingBox | None:
    if text is None:
        return None
    west, south, east, north = (float(part) for part in text.split(","))
    return BoundingBox(west=west, south=south, east=east, north=north)


def _latest_request(
    municipality: Municipality,
    after_device_id: int | None,
    limit: int,
    use_case: UseCase | None,
    quantity: str | None,
    tag: str | None,
    bbox: str | None,
) -> LatestRequest:
    """The page both latest-values routes read, from their shared query parameters."""
    quantities = None if quantity is None else [quantity]
    return LatestRequest(municipality.id, after_device_id, limit, use_case, quantities, tag, _bbox(bbox))


@router.get(
    "/latest",
    summary="Latest value of every quantity of every matching device",
    response_model=Page[LatestDeviceOut],
    responses=problem_responses(403, 404),
)
def latest(
    municipality: MunicipalityDep,
    session: SessionDep,
    use_case: UseCase | None = None,
    quantity: QuantityQuery = None,
    tag: TagQuery = None,
    bbox: BboxQuery = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Response:
    request = _latest_request(municipality, int_cursor(cursor), limit, use_case, quantity, tag, bbox)
    page = latest_values_json(session, request)
    last = page.last_device_id
    next_cursor = encode_cursor(last) if page.more and last is not None else None
    return json_page_response(page.items_json, next_cursor)


LATEST_COLUMNS = (
    "dev_eui",
    "name",
    "use_case",
    "latitude",
    "longitude",
    "quantity",
    "time",
    "value",
    "quality",
)


@router.get(
    "/latest/export",
    summary="Latest values as CSV, JSON or GeoJSON (one row per device and quantity), streamed",
    response_model=list[dict[str, str | float | int | None]],
    responses={**EXPORT_RESPONSES, **problem_responses(403, 404)},
)
def latest_export(
    municipality: MunicipalityDep,
    request_session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    use_case: UseCase | None = None,
    quantity: QuantityQuery = None,
    tag: TagQuery = None,
    bbox: BboxQuery = None,
    export_format: FormatQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> StreamingResponse:
    page_rows = settings.export_page_rows
    request = _latest_request(municipality, None, page_rows, use_case, quantity, tag, bbox)

    def read_page(session: Session, after: int | None) -> tuple[list[ExportRow], int | None]:
        found = latest_values(session, replace(request, after_device_id=after))
        rows: list[ExportRow] = [
            {
                "dev_eui": entry.device.dev_eui,
                "name": entry.device.name,
                "use_case": entry.device.use_case,
                "latitude": entry.device.latitude,
                "longitude": entry.device.longitude,
                "quantity": state.quantity,
                "time": state.time,
                "value": state.value,
                "quality": state.quality,
            }
            for entry in found[:page_rows]
            for state in entry.states
        ]
        return rows, found[page_rows - 1].device.id if len(found) > page_rows else None

    fmt = negotiate(export_format, accept)
    return export_response(
        fmt,
        LATEST_COLUMNS,
        paged(engine, read_page, tenant_of(request_session)),
        f"{municipality.slug}-latest",
    )


@dataclass(frozen=True, slots=True)
class ResolvedHistory:
    """A history request with its DevEUIs resolved to this municipality's devices."""

    query: HistoryQuery
    devices: dict[int, Device]


def history_resolver(
    reader: Callable[..., Municipality], shown: Callable[[Session, list[DeviceRow]], set[int]] | None = None
) -> Callable[..., ResolvedHistory]:
    """The history dependency, with `reader` resolving `{slug}`: whose devices a request may
    name. The readings routes read the key's own municipality only; a use case's routes
    also one that shares that use case (`api.deps.municipality_for_use_case`), and name
    only the devices its views show (`shown`): any other is not found, like a missing one."""

    def resolve_history(
        *,
        municipality: Municipality = Depends(reader),  # noqa: B008  (a default: `reader` varies)
        session: SessionDep,
        settings: SettingsDep,
        dev_eui: Annotated[
            list[Annotated[str, StringConstraints(max_length=64), WithJsonSchema(DEV_EUI_QUERY_SCHEMA)]],
            Query(min_length=1, max_length=100, description="One or more DevEUIs of this municipality"),
        ],
        quantity: Annotated[
            list[QuantityName] | None, Query(max_length=20, description="Only these quantities")
        ] = None,
        start: Annotated[Moment | None, Query(description="Inclusive; default `end` minus one day")] = None,
        end: Annotated[Moment | None, Query(description="Exclusive; default now")] = None,
        bucket: Annotated[
            str | None,
            Query(
                pattern=BUCKET_PATTERN,
                description=f"Bucket width such as `15m`, `1h`, `1d`, at most `{WIDEST_BUCKET}`; raw if "
                "absent. Buckets over the range times series may be at most the API's "
                "`max_history_points` (2,000,000 unless configured), else 422",
            ),
        ] = None,
        agg: Annotated[
            Aggregate, Query(description="How a bucket's readings become one value")
        ] = Aggregate.AVG,
        tz: TimeZoneQuery = None,
    ) -> ResolvedHistory:
        wanted = {parse_dev_eui(text) for text in dev_eui}
        found = session.scalars(
            select(DeviceRow).where(
                DeviceRow.municipality_id == municipality.id, DeviceRow.dev_eui.in_(wanted)
            )
        ).all()
        if shown is not None and found:
            visible = shown(session, list(found))
            found = [device for device in found if device.id in visible]
        missing = wanted - {device.dev_eui for device in found}
        if missing:
            raise NotFound(f"no device {', '.join(sorted(missing))}")
        until = end or datetime.now(UTC)
        since = start or until - DEFAULT_SPAN
        if since >= until:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must lie before end")
        width = None if bucket is None else bucket_width(bucket)
        if width is not None and width > bucket_width(WIDEST_BUCKET):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"bucket may be at most {WIDEST_BUCKET} wide"
            )
        query = HistoryQuery(
            device_ids=sorted(device.id for device in found),
            start=since,
            end=until,
            quantities=sorted(set(quantity)) if quantity else None,
            bucket=width,
            agg=agg,
            zone=time_zone(tz),
        )
        if bucket is not None:
            _check_size(bucketed_points(session, query), settings.max_history_points, bucket)
        return ResolvedHistory(query, {device.id: _device_value(device) for device in found})

    return resolve_history


def _device_value(row: DeviceRow) -> Device:
    return Device(row.id, row.dev_eui, row.name, row.use_case, row.latitude, row.longitude, list(row.tags))


def _check_size(points: int, most: int, bucket: str) -> None:
    if points > most:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"bucket={bucket} over this range and these series gives {points:,} points, more than the "
            f"{most:,} one request may ask for: choose wider buckets, a shorter range or fewer series",
        )


HistoryDep = Annotated[ResolvedHistory, Depends(history_resolver(municipality_for(Action.READ)))]


def _history_cursor(text: str | None) -> HistoryCursor | None:
    position = time_cursor(text)
    return HistoryCursor(*position) if position is not None else None


def _next_cursor(page: HistoryPage) -> str | None:
    if page.next is None:
        return None
    if page.next.device_id is None or page.next.quantity is None:
        return encode_cursor(page.next.time.isoformat())
    return encode_cursor(page.next.time.isoformat(), page.next.device_id, page.next.quantity)


@router.get(
    "/history",
    summary="History of one or more devices, raw or in buckets with gaps marked",
    response_model=Page[HistoryPointOut],
    responses=problem_responses(403, 404),
)
def history(
    resolved: HistoryDep,
    session: SessionDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: CursorQuery = None,
) -> Response:
    page = history_page(
        session,
        resolved.query,
        cursor=_history_cursor(cursor),
        limit=limit,
        bucket_expression=services.bucket_expression,
        aggregate_source=services.aggregate_source,
    )
    devices = resolved.devices
    return json_response(
        {
            "items": [HistoryPointOut.body(point, devices[point.device_id].dev_eui) for point in page.points],
            "next_cursor": _next_cursor(page),
        }
    )


HISTORY_COLUMNS = ("time", "dev_eui", "quantity", "value", "samples", "gap", "latitude", "longitude")


@router.get(
    "/history/export",
    summary="History as CSV, JSON or GeoJSON, streamed to the end of the range",
    response_model=list[HistoryPointOut],
    responses={**EXPORT_RESPONSES, **problem_responses(403, 404)},
)
def history_export(
    resolved: HistoryDep,
    municipality: MunicipalityDep,
    request_session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    services: ServicesDep,
    export_format: FormatQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> StreamingResponse:
    rows = _history_rows(
        engine,
        tenant_of(request_session),
        resolved,
        settings.export_page_rows,
        services.bucket_expression,
        services.aggregate_source,
    )
    fmt = negotiate(export_format, accept)
    return export_response(fmt, HISTORY_COLUMNS, rows, f"{municipality.slug}-history")


def _history_rows(
    engine: Engine,
    tenant: int | None,
    resolved: ResolvedHistory,
    page_rows: int,
    bucket_expression: BucketExpression,
    aggregate_source: AggregateSource | None,
) -> Iterator[ExportRow]:
    """All pages of the history (the request's session is gone while streaming: see `paged`)."""

    def read_page(
        session: Session, cursor: HistoryCursor | None
    ) -> tuple[list[ExportRow], HistoryCursor | None]:
        page = history_page(
            session,
            resolved.query,
            cursor=cursor,
            limit=page_rows,
            bucket_expression=bucket_expression,
            aggregate_source=aggregate_source,
        )
        rows: list[ExportRow] = []
        for point in page.points:
            device = resolved.devices[point.device_id]
            rows.append(
                {
                    "time": point.time,
                    "dev_eui": device.dev_eui,
                    "quantity": point.quantity,
                    "value": point.value,
                    "samples": point.samples,
                    "gap": point.gap,
                    "latitude": device.latitude,
                    "longitude": device.longitude,
                }
            )
        return rows, page.next

    return paged(engine, read_page, tenant)
