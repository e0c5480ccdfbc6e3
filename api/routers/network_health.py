"""Health for field technicians: which gateways are up and how well devices get through.

Under `/health/...` of a municipality; read access suffices, so every role sees it.
Gateways are those the municipality can see (`/gateways`); what they show of
devices is always this municipality's devices only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from api.deps import MunicipalityDep, SessionDep
from api.pagination import CursorQuery, LimitQuery, Page, cut_page, int_cursor, page_of, text_cursor
from api.problems import problem_responses
from api.responses import json_response
from api.routers.devices import DevEuiPath
from api.routers.gateways import GatewayIdPath
from api.schemas.network_health import (
    DeviceDetailOut,
    DeviceHealthOut,
    GatewayDetailOut,
    GatewayHealthOut,
    GatewaySignalOut,
)
from domain.ids import parse_dev_eui, parse_gateway_id
from services.health import device_health, gateway_detail, gateway_health
from storage.devices import get_device
from storage.gateways import get_gateway, list_gateways
from storage.health import device_signals
from storage.models import Device

router = APIRouter(prefix="/municipalities/{slug}/health", tags=["health"])

LIST_LOSS_WINDOW = timedelta(days=1)
DETAIL_LOSS_WINDOW = timedelta(days=7)


@router.get(
    "/gateways",
    summary="Gateways with status (with hysteresis), last heard, traffic and devices heard",
    response_model=Page[GatewayHealthOut],
    responses=problem_responses(403, 404),
)
def gateways(
    municipality: MunicipalityDep,
    session: SessionDep,
    offline_only: Annotated[bool, Query(description="Only gateways offline now")] = False,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Response:
    """Polled from phones in the field: the body is built without model validation."""
    gateways = list_gateways(
        session, municipality_id=municipality.id, after_id=text_cursor(cursor), limit=limit
    )
    found = gateway_health(session, gateways, municipality.id, now=datetime.now(UTC))
    shown, next_cursor = cut_page(found, limit, lambda row: row.gateway.gateway_id)
    items = [GatewayHealthOut.body(row) for row in shown if not (offline_only and row.status.online)]
    return json_response({"items": items, "next_cursor": next_cursor})


@router.get(
    "/gateways/{gateway_id}",
    summary="One gateway: signal percentiles, devices it alone hears, uptime over 7 and 30 days",
    response_model=GatewayDetailOut,
    responses=problem_responses(403, 404),
)
def gateway(
    gateway_id: GatewayIdPath, municipality: MunicipalityDep, session: SessionDep
) -> GatewayDetailOut:
    gateway = get_gateway(session, municipality_id=municipality.id, gateway_id=parse_gateway_id(gateway_id))
    return GatewayDetailOut.of_detail(
        gateway_detail(session, gateway, municipality.id, now=datetime.now(UTC))
    )


@router.get(
    "/devices",
    summary="Devices: last seen, silent, battery trend, frame loss (24 h), best gateway and signal",
    response_model=Page[DeviceHealthOut],
    responses=problem_responses(403, 404),
)
def devices(
    municipality: MunicipalityDep,
    session: SessionDep,
    silent_only: Annotated[bool, Query(description="Only silent devices")] = False,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[DeviceHealthOut]:
    query = (
        select(Device).where(Device.municipality_id == municipality.id).order_by(Device.id).limit(limit + 1)
    )
    after = int_cursor(cursor)
    if after is not None:
        query = query.where(Device.id > after)
    found = device_health(
        session, list(session.scalars(query)), now=datetime.now(UTC), loss_window=LIST_LOSS_WINDOW
    )
    page = page_of(found, limit, item=DeviceHealthOut.of, position=lambda row: row.device.id)
    if silent_only:
        page.items = [item for item in page.items if item.silent]
    return page


@router.get(
    "/devices/{dev_eui}",
    summary="One device's link health, frame loss over 7 days and every gateway that hears it",
    response_model=DeviceDetailOut,
    responses=problem_responses(403, 404),
)
def device(dev_eui: DevEuiPath, municipality: MunicipalityDep, session: SessionDep) -> DeviceDetailOut:
    found = get_device(session, municipality_id=municipality.id, dev_eui=parse_dev_eui(dev_eui))
    now = datetime.now(UTC)
    health = device_health(session, [found], now=now, loss_window=DETAIL_LOSS_WINDOW)[0]
    return DeviceDetailOut(
        **DeviceHealthOut.of(health).model_dump(),
        gateways=[GatewaySignalOut.of(signal) for signal in device_signals(session, found, now=now)],
    )
