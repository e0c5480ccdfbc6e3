"""Soil and trees: moisture with a traffic light per sensor and per area, drying forecast,
the trees that need water, and the thresholds behind the lights (per soil type)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.deps import KeyAdminDep, SessionDep, SoilReaderDep
from api.pagination import CursorQuery, LimitQuery, Page, int_cursor, page_of, text_cursor
from api.problems import problem_responses
from api.schemas.usecases import AreaOut, SoilSensorOut, ThresholdsIn, ThresholdsOut
from domain.text import Label
from services.soil import areas, needs_water, soil_sensors, thresholds
from storage.soil import remove_thresholds, set_thresholds

router = APIRouter(prefix="/municipalities/{slug}/soil", tags=["soil"])

SoilTypePath = Annotated[Label, Path(max_length=100, examples=["sand"])]


@router.get(
    "/sensors",
    summary="Each soil sensor's moisture now, traffic light and drying forecast",
    response_model=Page[SoilSensorOut],
    responses=problem_responses(403, 404),
)
def sensors(
    municipality: SoilReaderDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[SoilSensorOut]:
    rows = soil_sensors(
        session, municipality.id, now=datetime.now(UTC), after_device_id=int_cursor(cursor), limit=limit
    )
    return page_of(rows, limit, item=SoilSensorOut.of, position=lambda row: row.device.id)


@router.get(
    "/areas",
    summary="Traffic light per area (the sensors' tags)",
    response_model=Page[AreaOut],
    responses=problem_responses(403, 404),
)
def area_lights(
    municipality: SoilReaderDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[AreaOut]:
    after = text_cursor(cursor)
    found = areas(
        soil_sensors(session, municipality.id, now=datetime.now(UTC), after_device_id=None, limit=None)
    )
    rows = [area for area in found if after is None or area.name > after][: limit + 1]
    return page_of(rows, limit, item=AreaOut.of, position=lambda area: area.name)


@router.get(
    "/needs-water",
    summary="Trees to water now: red, or forecast red within `within_days`; driest first",
    response_model=Page[SoilSensorOut],
    responses=problem_responses(403, 404),
)
def water_now(
    municipality: SoilReaderDep,
    session: SessionDep,
    within_days: Annotated[float, Query(ge=0, le=30, description="Also yellow sensors red within this")] = 2,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[SoilSensorOut]:
    all_sensors = soil_sensors(
        session, municipality.id, now=datetime.now(UTC), after_device_id=None, limit=None
    )
    due = needs_water(all_sensors, within_days=within_days)
    after = text_cursor(cursor)
    if after is not None:
        shown = [sensor.device.dev_eui for sensor in due]
        due = due[shown.index(after) + 1 :] if after in shown else []
    return page_of(due[: limit + 1], limit, item=SoilSensorOut.of, position=lambda row: row.device.dev_eui)


@router.get(
    "/thresholds",
    summary="Moisture thresholds per soil type: built-in defaults and the municipality's own",
    response_model=list[ThresholdsOut],
    responses=problem_responses(403, 404),
)
def list_thresholds(municipality: SoilReaderDep, session: SessionDep) -> list[ThresholdsOut]:
    found = thresholds(session, municipality.id)
    return [ThresholdsOut.of(found[soil]) for soil in sorted(found)]


@router.put(
    "/thresholds/{soil_type}",
    summary="Set a soil type's thresholds (admin)",
    response_model=ThresholdsOut,
    responses=problem_responses(403, 404),
)
def put_thresholds(
    soil_type: SoilTypePath, body: ThresholdsIn, municipality: KeyAdminDep, session: SessionDep
) -> ThresholdsOut:
    set_thresholds(
        session,
        municipality.id,
        soil_type,
        yellow_below_percent=body.yellow_below_percent,
        red_below_percent=body.red_below_percent,
    )
    session.commit()
    return ThresholdsOut.of(thresholds(session, municipality.id)[soil_type])


@router.delete(
    "/thresholds/{soil_type}",
    summary="Drop the municipality's own thresholds for a soil type (admin); defaults apply again",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
def delete_thresholds(soil_type: SoilTypePath, municipality: KeyAdminDep, session: SessionDep) -> None:
    remove_thresholds(session, municipality.id, soil_type)
    session.commit()
