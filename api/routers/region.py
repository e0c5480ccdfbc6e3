"""Region views: one use case across the municipalities that share it with the region.

Any key may read them, since a grant to the region is an offer to every member; a
region admin sees every municipality here, as everywhere. Each item names its
municipality. The numbers come from the same storage functions as the municipality's
own routes, called once per municipality, so a region view never disagrees with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol, TypeVar

from fastapi import APIRouter, Query

from api.access import is_region_admin
from api.deps import CurrentKey, SessionDep
from api.pagination import CursorQuery, InvalidCursor, LimitQuery, Page, int_cursor, page_of, text_cursor
from api.problems import problem_responses
from api.routers.environment import ENVIRONMENT_QUANTITIES, EnvironmentQuantity
from api.routers.parking import HoldQuery
from api.routers.waste import FullQuery
from api.schemas.readings import LatestDeviceOut
from api.schemas.sharing import RegionBinOut, RegionLatestDeviceOut, RegionSoilSensorOut, RegionZoneOut
from api.schemas.usecases import BinOut, SoilSensorOut, ZoneOut
from services.environment import latest_of_quantities
from services.parking import ZoneSummary, zone_summaries
from services.soil import soil_sensors
from services.waste import bin_statuses
from storage.models import ApiKey, Municipality
from storage.sharing import SharedUseCase, region_municipalities

router = APIRouter(prefix="/region", tags=["region"])

Row = TypeVar("Row", bound="OfDevice")
Item = TypeVar("Item")


class DeviceWithId(Protocol):
    @property
    def id(self) -> int: ...


class OfDevice(Protocol):
    """A use case's row about one device (a bin, a soil sensor, a station's latest values)."""

    @property
    def device(self) -> DeviceWithId: ...


def _covered(session: SessionDep, key: ApiKey, use_case: SharedUseCase) -> list[Municipality]:
    return region_municipalities(session, use_case, everyone=is_region_admin(key))


def _device_page(
    municipalities: Iterable[Municipality],
    rows_of: Callable[[Municipality], list[Row]],
    item: Callable[[Municipality, Row], Item],
    limit: int,
) -> Page[Item]:
    """A page of rows by device id over all municipalities, each row shown with its municipality.

    `rows_of` gives a municipality's rows by device id, at most `limit + 1` after the
    cursor, so merging them and cutting gives the region's page (device ids are unique
    platform-wide, and so serve as the region's cursor too).
    """
    merged = [(municipality, row) for municipality in municipalities for row in rows_of(municipality)]
    merged.sort(key=lambda pair: pair[1].device.id)
    return page_of(
        merged[: limit + 1],
        limit,
        item=lambda pair: item(*pair),
        position=lambda pair: pair[1].device.id,
    )


@router.get(
    "/parking/zones",
    summary="Parking zones of every municipality sharing parking with the region, free spaces now",
    response_model=Page[RegionZoneOut],
    responses=problem_responses(),
)
def zones(
    key: CurrentKey,
    session: SessionDep,
    hold_minutes: HoldQuery = 5,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[RegionZoneOut]:
    after = _zone_position(text_cursor(cursor))
    now = datetime.now(UTC)
    rows: list[tuple[Municipality, ZoneSummary]] = []
    # Sorted here, not by the database: the cursor compares slugs as Python does, and a
    # database collation may order hyphens differently.
    for municipality in sorted(_covered(session, key, SharedUseCase.PARKING), key=lambda found: found.slug):
        if after is not None and municipality.slug < after[0]:
            continue
        found = zone_summaries(session, municipality.id, now=now, hold=timedelta(minutes=hold_minutes))
        rows += [
            (municipality, zone) for zone in found if after is None or (municipality.slug, zone.name) > after
        ]
        if len(rows) > limit:
            break
    return page_of(
        rows[: limit + 1],
        limit,
        item=lambda pair: RegionZoneOut(**ZoneOut.of(pair[1]).model_dump(), municipality=pair[0].slug),
        position=lambda pair: f"{pair[0].slug}/{pair[1].name}",
    )


def _zone_position(text: str | None) -> tuple[str, str] | None:
    """A zones cursor is `slug/zone`; a slug holds no slash, a zone name may."""
    if text is None:
        return None
    slug, slash, zone = text.partition("/")
    if not slash:
        raise InvalidCursor("this cursor was not handed out for this list")
    return slug, zone


@router.get(
    "/waste/bins",
    summary="Bins of every municipality sharing waste with the region, with fill level and forecast",
    response_model=Page[RegionBinOut],
    responses=problem_responses(),
)
def bins(
    key: CurrentKey,
    session: SessionDep,
    full_percent: FullQuery = 90.0,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[RegionBinOut]:
    after = int_cursor(cursor)
    now = datetime.now(UTC)
    return _device_page(
        _covered(session, key, SharedUseCase.WASTE),
        lambda municipality: bin_statuses(
            session, municipality.id, now=now, full_percent=full_percent, after_device_id=after, limit=limit
        ),
        lambda municipality, row: RegionBinOut(**BinOut.of(row).model_dump(), municipality=municipality.slug),
        limit,
    )


@router.get(
    "/soil/sensors",
    summary="Soil sensors of every municipality sharing soil with the region, with traffic light",
    response_model=Page[RegionSoilSensorOut],
    responses=problem_responses(),
)
def sensors(
    key: CurrentKey, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[RegionSoilSensorOut]:
    after = int_cursor(cursor)
    now = datetime.now(UTC)
    return _device_page(
        _covered(session, key, SharedUseCase.SOIL),
        lambda municipality: soil_sensors(
            session, municipality.id, now=now, after_device_id=after, limit=limit
        ),
        lambda municipality, row: RegionSoilSensorOut(
            **SoilSensorOut.of(row).model_dump(), municipality=municipality.slug
        ),
        limit,
    )


@router.get(
    "/environment/latest",
    summary="Latest environmental values of every municipality sharing environment with the region",
    response_model=Page[RegionLatestDeviceOut],
    responses=problem_responses(),
)
def environment_latest(
    key: CurrentKey,
    session: SessionDep,
    quantity: Annotated[EnvironmentQuantity | None, Query(description="Only this quantity")] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[RegionLatestDeviceOut]:
    wanted = [quantity.value] if quantity is not None else ENVIRONMENT_QUANTITIES
    after = int_cursor(cursor)
    return _device_page(
        _covered(session, key, SharedUseCase.ENVIRONMENT),
        lambda municipality: latest_of_quantities(
            session, municipality.id, wanted, after_device_id=after, limit=limit
        ),
        lambda municipality, row: RegionLatestDeviceOut.model_validate(
            {**LatestDeviceOut.body(row), "municipality": municipality.slug}
        ),
        limit,
    )
