"""Environment: latest values and history of climate, air quality and water level.

The same queries as `/readings`, narrowed to the environmental quantities, so a
dashboard for the town's air and water needs no list of quantity names of its own.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from api.access import Action
from api.deps import EnvironmentReaderDep, ServicesDep, SessionDep, municipality_for_use_case
from api.pagination import CursorQuery, LimitQuery, Page, encode_cursor, int_cursor, time_cursor
from api.problems import problem_responses
from api.responses import page_response
from api.routers.readings import ResolvedHistory, history_resolver
from api.schemas.readings import HistoryPointOut, LatestDeviceOut
from domain.history import HistoryCursor
from services.environment import latest_of_quantities
from storage.devices import measuring
from storage.models import Device
from storage.readings import history_page
from storage.sharing import SharedUseCase

router = APIRouter(prefix="/municipalities/{slug}/environment", tags=["environment"])


class EnvironmentQuantity(StrEnum):
    TEMPERATURE = "temperature"
    RELATIVE_HUMIDITY = "relative_humidity"
    CO2 = "co2"
    PM2_5 = "pm2_5"
    PM10 = "pm10"
    WATER_LEVEL = "water_level"


ENVIRONMENT_QUANTITIES = sorted(quantity.value for quantity in EnvironmentQuantity)


def _environment_devices(session: Session, devices: list[Device]) -> set[int]:
    return measuring(session, [device.id for device in devices], ENVIRONMENT_QUANTITIES)


# The readings' history request, but readable where a municipality shares its environment data,
# and only of devices that measure the environment.
EnvironmentHistoryDep = Annotated[
    ResolvedHistory,
    Depends(
        history_resolver(
            municipality_for_use_case(Action.READ, SharedUseCase.ENVIRONMENT), shown=_environment_devices
        )
    ),
]


@router.get(
    "/latest",
    summary="Latest environmental values of every device that measures any",
    response_model=Page[LatestDeviceOut],
    responses=problem_responses(403, 404),
)
def latest(
    municipality: EnvironmentReaderDep,
    session: SessionDep,
    quantity: Annotated[EnvironmentQuantity | None, Query(description="Only this quantity")] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Response:
    wanted = [quantity.value] if quantity is not None else ENVIRONMENT_QUANTITIES
    rows = latest_of_quantities(
        session, municipality.id, wanted, after_device_id=int_cursor(cursor), limit=limit
    )
    return page_response(rows, limit, item=LatestDeviceOut.body, position=lambda row: row.device.id)


@router.get(
    "/history",
    summary="History of environmental quantities of one or more devices, raw or bucketed",
    response_model=Page[HistoryPointOut],
    responses=problem_responses(403, 404),
)
def history(
    resolved: EnvironmentHistoryDep,
    session: SessionDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: CursorQuery = None,
) -> Page[HistoryPointOut]:
    asked = resolved.query.quantities
    allowed = [name for name in asked if name in ENVIRONMENT_QUANTITIES] if asked else ENVIRONMENT_QUANTITIES
    if not allowed:
        return Page(items=[], next_cursor=None)
    position = time_cursor(cursor)
    page = history_page(
        session,
        replace(resolved.query, quantities=allowed),
        cursor=HistoryCursor(*position) if position is not None else None,
        limit=limit,
        bucket_expression=services.bucket_expression,
        aggregate_source=services.aggregate_source,
    )
    following = None
    if page.next is not None:
        parts: list[str | int] = [page.next.time.isoformat()]
        if page.next.device_id is not None and page.next.quantity is not None:
            parts += [page.next.device_id, page.next.quantity]
        following = encode_cursor(*parts)
    return Page(
        items=[HistoryPointOut.of(point, resolved.devices[point.device_id].dev_eui) for point in page.points],
        next_cursor=following,
    )
