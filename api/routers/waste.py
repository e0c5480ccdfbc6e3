"""Waste: bins with fill level, fill rate and forecast, the collection list, emptying history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import SessionDep, WasteReaderDep
from api.pagination import CursorQuery, LimitQuery, Page, int_cursor, page_of, text_cursor
from api.problems import problem_responses
from api.routers.devices import DevEuiPath
from api.schemas.moments import Moment
from api.schemas.usecases import BinOut, EmptyingOut
from domain.errors import NotFound
from domain.ids import parse_dev_eui
from services.waste import FILL_LEVEL, bin_statuses, collection_list, emptying_history
from storage.devices import get_device, measuring

router = APIRouter(prefix="/municipalities/{slug}/waste", tags=["waste"])

FullQuery = Annotated[float, Query(ge=1, le=100, description="Fill level (%) at which a bin counts as full")]


@router.get(
    "/bins",
    summary="Bins with fill level now, fill rate and forecast time full",
    response_model=Page[BinOut],
    responses=problem_responses(403, 404),
)
def bins(
    municipality: WasteReaderDep,
    session: SessionDep,
    full_percent: FullQuery = 90.0,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[BinOut]:
    rows = bin_statuses(
        session,
        municipality.id,
        now=datetime.now(UTC),
        full_percent=full_percent,
        after_device_id=int_cursor(cursor),
        limit=limit,
    )
    return page_of(rows, limit, item=BinOut.of, position=lambda row: row.device.id)


@router.get(
    "/collection",
    summary="Bins to empty within the next hours, most urgent first",
    response_model=Page[BinOut],
    responses=problem_responses(403, 404),
)
def collection(
    municipality: WasteReaderDep,
    session: SessionDep,
    within_hours: Annotated[
        float, Query(gt=0, le=24 * 14, description="Full now or within this many hours")
    ] = 24,
    full_percent: FullQuery = 90.0,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[BinOut]:
    due = collection_list(
        session,
        municipality.id,
        now=datetime.now(UTC),
        within=timedelta(hours=within_hours),
        full_percent=full_percent,
    )
    after = text_cursor(cursor)
    if after is not None:
        shown = [row.device.dev_eui for row in due]
        due = due[shown.index(after) + 1 :] if after in shown else []
    return page_of(due[: limit + 1], limit, item=BinOut.of, position=lambda row: row.device.dev_eui)


@router.get(
    "/bins/{dev_eui}/emptyings",
    summary="When a bin was emptied, detected as a sudden drop of its fill level",
    response_model=list[EmptyingOut],
    responses=problem_responses(403, 404),
)
def emptyings(
    dev_eui: DevEuiPath,
    municipality: WasteReaderDep,
    session: SessionDep,
    start: Annotated[Moment | None, Query(description="Inclusive; default `end` minus 30 days")] = None,
    end: Annotated[Moment | None, Query(description="Exclusive; default now")] = None,
) -> list[EmptyingOut]:
    device = get_device(session, municipality_id=municipality.id, dev_eui=parse_dev_eui(dev_eui))
    if not measuring(session, [device.id], [FILL_LEVEL]):
        raise NotFound(f"no device {device.dev_eui}")  # not a bin: as if it did not exist
    until = end or datetime.now(UTC)
    since = start or until - timedelta(days=30)
    if since >= until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must lie before end")
    return [EmptyingOut.of(found) for found in emptying_history(session, device, start=since, end=until)]
