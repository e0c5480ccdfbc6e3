"""Parking: zones with free spaces now, spot states, occupancy history and the typical week.

Every state is debounced: `hold_minutes` says how long a change must last to count,
so that a sensor flickering as a lorry passes shows neither a free spot nor a
spike in the history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from api.deps import DeviceEditorDep, ParkingReaderDep, SessionDep
from api.pagination import CursorQuery, LimitQuery, Page, page_of, text_cursor
from api.problems import problem_responses
from api.routers.readings import TimeZoneQuery
from api.schemas.moments import Moment
from api.schemas.usecases import CapacityIn, OccupancyOut, SpotOut, TypicalHourOut, ZoneOut
from domain.buckets import BUCKET_PATTERN, BUCKET_UNITS, time_zone
from domain.text import Label
from services.parking import occupancy_history, spot_states, typical_week, zone_summaries
from storage.parking import parking_devices, set_capacity

router = APIRouter(prefix="/municipalities/{slug}/parking", tags=["parking"])

ZonePath = Annotated[Label, Path(max_length=100, examples=["Marktplatz"])]
HoldQuery = Annotated[
    int, Query(ge=0, le=120, description="Minutes a spot's new state must hold before it counts")
]
MAX_BUCKETS = 2000


def _now() -> datetime:
    return datetime.now(UTC)


@router.get(
    "/zones",
    summary="Zones with capacity, occupied and free spaces now",
    response_model=Page[ZoneOut],
    responses=problem_responses(403, 404),
)
def zones(
    municipality: ParkingReaderDep,
    session: SessionDep,
    hold_minutes: HoldQuery = 5,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[ZoneOut]:
    after = text_cursor(cursor)
    found = zone_summaries(session, municipality.id, now=_now(), hold=timedelta(minutes=hold_minutes))
    rows = [summary for summary in found if after is None or summary.name > after][: limit + 1]
    return page_of(rows, limit, item=ZoneOut.of, position=lambda summary: summary.name)


@router.get(
    "/zones/{zone}",
    summary="One zone now",
    response_model=ZoneOut,
    responses=problem_responses(403, 404),
)
def zone(
    zone: ZonePath, municipality: ParkingReaderDep, session: SessionDep, hold_minutes: HoldQuery = 5
) -> ZoneOut:
    found = zone_summaries(
        session, municipality.id, now=_now(), hold=timedelta(minutes=hold_minutes), zone=zone
    )
    return ZoneOut.of(found[0])


@router.put(
    "/zones/{zone}/capacity",
    summary="Enter how many cars fit in a zone (editor), where spots lack sensors",
    response_model=ZoneOut,
    responses=problem_responses(403, 404),
)
def put_capacity(
    zone: ZonePath, body: CapacityIn, municipality: DeviceEditorDep, session: SessionDep
) -> ZoneOut:
    set_capacity(session, municipality.id, zone, body.capacity)
    session.commit()
    found = zone_summaries(session, municipality.id, now=_now(), hold=timedelta(minutes=5), zone=zone)
    return ZoneOut.of(found[0])


@router.get(
    "/zones/{zone}/spots",
    summary="Each spot's debounced state and since when",
    response_model=Page[SpotOut],
    responses=problem_responses(403, 404),
)
def spots(
    zone: ZonePath,
    municipality: ParkingReaderDep,
    session: SessionDep,
    hold_minutes: HoldQuery = 5,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[SpotOut]:
    zone_summaries(session, municipality.id, now=_now(), hold=timedelta(minutes=hold_minutes), zone=zone)
    after = text_cursor(cursor)
    devices = [
        device
        for device in parking_devices(session, municipality.id, zone)
        if after is None or device.dev_eui > after
    ]
    states = spot_states(session, devices[: limit + 1], now=_now(), hold=timedelta(minutes=hold_minutes))
    return page_of(states, limit, item=SpotOut.of, position=lambda state: state.device.dev_eui)


@router.get(
    "/zones/{zone}/occupancy",
    summary="Occupancy history of a zone in time buckets",
    response_model=list[OccupancyOut],
    responses=problem_responses(403, 404),
)
def occupancy(
    zone: ZonePath,
    municipality: ParkingReaderDep,
    session: SessionDep,
    start: Annotated[Moment | None, Query(description="Inclusive; default `end` minus one day")] = None,
    end: Annotated[Moment | None, Query(description="Exclusive; default now")] = None,
    bucket: Annotated[
        str, Query(pattern=BUCKET_PATTERN, description="Bucket width such as `15m`, `1h`, `1d`")
    ] = "1h",
    hold_minutes: HoldQuery = 5,
    tz: TimeZoneQuery = None,
) -> list[OccupancyOut]:
    until = min(end or _now(), _now())
    since = start or until - timedelta(days=1)
    width = int(bucket[:-1]) * BUCKET_UNITS[bucket[-1]]
    if since >= until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must lie before end and now")
    if (until - since) / width > MAX_BUCKETS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"at most {MAX_BUCKETS} buckets per request"
        )
    summary = zone_summaries(
        session, municipality.id, now=until, hold=timedelta(minutes=hold_minutes), zone=zone
    )[0]
    buckets = occupancy_history(
        session,
        municipality.id,
        zone,
        start=since,
        end=until,
        width=width,
        hold=timedelta(minutes=hold_minutes),
        time_zone=time_zone(tz),
    )
    return [OccupancyOut.of(found, summary.capacity) for found in buckets]


@router.get(
    "/zones/{zone}/typical-week",
    summary="Typical occupancy for each hour of the week (local time) over recent weeks",
    response_model=list[TypicalHourOut],
    responses=problem_responses(403, 404),
)
def typical(
    zone: ZonePath,
    municipality: ParkingReaderDep,
    session: SessionDep,
    weeks: Annotated[int, Query(ge=1, le=12, description="How many past weeks to average")] = 4,
    hold_minutes: HoldQuery = 5,
) -> list[TypicalHourOut]:
    hours = typical_week(
        session, municipality.id, zone, now=_now(), weeks=weeks, hold=timedelta(minutes=hold_minutes)
    )
    return [TypicalHourOut.of(hour) for hour in hours]
