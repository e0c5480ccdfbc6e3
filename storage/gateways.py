"""Gateways a municipality can see: the ones it owns and the ones that hear its devices.

Gateways appear on their own when ingest sees them on an uplink; a person then
names them, places them and says which municipality runs them. A gateway owned by
one municipality can carry another's devices, so "visible" is wider than "owned".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from domain.errors import NotFound
from storage.models import Device, DeviceActivity, Gateway, GatewayHeard, Municipality

HEARD_WINDOW = timedelta(days=30)
"""How far back a reception counts as "this gateway hears our devices"."""


@dataclass(frozen=True, slots=True)
class GatewayView:
    gateway: Gateway
    owner_slug: str | None


def _visible_to(municipality_id: int) -> ColumnElement[bool]:
    # `gateway_heard` is kept by ingest (one row per gateway and municipality), so this
    # is an index lookup instead of a scan of a month of receptions.
    heard_recently = select(GatewayHeard.gateway_id).where(
        GatewayHeard.municipality_id == municipality_id,
        GatewayHeard.last_heard_at > func.now() - HEARD_WINDOW,
    )
    heard_last = (
        select(DeviceActivity.last_gateway_id)
        .join(Device, Device.dev_eui == DeviceActivity.dev_eui)
        .where(Device.municipality_id == municipality_id)
    )
    return or_(
        Gateway.municipality_id == municipality_id,
        Gateway.gateway_id.in_(heard_recently),
        Gateway.gateway_id.in_(heard_last),
    )


def list_gateways(
    session: Session, *, municipality_id: int | None, after_id: str | None, limit: int
) -> list[GatewayView]:
    """Gateways by id, at most `limit + 1`; `municipality_id=None` lists every gateway (region view)."""
    query = (
        select(Gateway, Municipality.slug)
        .outerjoin(Municipality, Municipality.id == Gateway.municipality_id)
        .order_by(Gateway.gateway_id)
        .limit(limit + 1)
    )
    if municipality_id is not None:
        query = query.where(_visible_to(municipality_id))
    if after_id is not None:
        query = query.where(Gateway.gateway_id > after_id)
    return [GatewayView(gateway, slug) for gateway, slug in session.execute(query)]


def get_gateway(session: Session, *, municipality_id: int | None, gateway_id: str) -> GatewayView:
    """One gateway the municipality can see (any gateway for `None`); others are not found."""
    query = (
        select(Gateway, Municipality.slug)
        .outerjoin(Municipality, Municipality.id == Gateway.municipality_id)
        .where(Gateway.gateway_id == gateway_id)
    )
    if municipality_id is not None:
        query = query.where(_visible_to(municipality_id))
    found = session.execute(query).first()
    if found is None:
        raise NotFound(f"no gateway {gateway_id}")
    return GatewayView(*found)


EDITABLE_FIELDS = frozenset({"name", "latitude", "longitude", "altitude_m", "municipality_id"})


def edit_gateway(session: Session, gateway: Gateway, changes: dict[str, object]) -> Gateway:
    """Apply a person's edits (name, location, owner); what ingest observes is not editable."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(gateway, name, value)
    session.flush()
    return gateway
