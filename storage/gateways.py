"""Gateways a municipality can see: the ones it owns and the ones that hear its devices.

Gateways appear on their own when ingest sees them on an uplink; a person then
names them, places them and says which municipality runs them. A gateway owned by
one municipality can carry another's devices, so "visible" is wider than "owned".
"""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from functools import cache

from sqlalchemy import ColumnElement, Integer, Select, String, bindparam, func, or_, select
from sqlalchemy.orm import Session

from domain.errors import NotFound
from domain.gateway import Gateway as GatewayValue
from storage.models import Device, DeviceActivity, Gateway, GatewayHeard, Municipality

HEARD_WINDOW = timedelta(days=30)
"""How far back a reception counts as "this gateway hears our devices"."""


_COLUMNS = tuple(field.name for field in fields(GatewayValue) if field.name != "owner_slug")
"""The value's fields that are the row's columns of the same name."""


def gateway_value(gateway: Gateway, owner_slug: str | None) -> GatewayValue:
    """The row as a value that outlives its session."""
    return GatewayValue(owner_slug=owner_slug, **{name: getattr(gateway, name) for name in _COLUMNS})


def _visible() -> ColumnElement[bool]:
    """Gateways that municipality `:municipality_id` owns or that carry its devices."""
    municipality_id = bindparam("municipality_id", type_=Integer)
    # `gateway_heard` is kept by ingest (one row per gateway and municipality), so this
    # is an index lookup instead of a scan of a month of receptions.
    heard_recently = select(GatewayHeard.gateway_id).where(
        GatewayHeard.municipality_id == municipality_id,
        GatewayHeard.last_heard_at > func.now() - HEARD_WINDOW,
    )
    heard_last = (
        select(DeviceActivity.last_gateway_id)
        .join(
            Device,
            (Device.dev_eui == DeviceActivity.dev_eui)
            & (Device.municipality_id == DeviceActivity.municipality_id),
        )
        .where(Device.municipality_id == municipality_id)
    )
    return or_(
        Gateway.municipality_id == municipality_id,
        Gateway.gateway_id.in_(heard_recently),
        Gateway.gateway_id.in_(heard_last),
    )


_WITH_OWNER = select(Gateway, Municipality.slug).outerjoin(
    Municipality, Municipality.id == Gateway.municipality_id
)


@cache
def _listing(*, scoped: bool, paged: bool) -> Select[Gateway, str | None]:
    """Built once per shape with every value bound: the health list is polled from phones,
    and building this statement cost more than running it."""
    query = _WITH_OWNER.order_by(Gateway.gateway_id).limit(bindparam("limit", type_=Integer))
    if scoped:
        query = query.where(_visible())
    if paged:
        query = query.where(Gateway.gateway_id > bindparam("after_id", type_=String))
    return query


def list_gateways(
    session: Session, *, municipality_id: int | None, after_id: str | None, limit: int
) -> list[GatewayValue]:
    """Gateways by id, at most `limit + 1`; `municipality_id=None` lists every gateway (region view)."""
    query = _listing(scoped=municipality_id is not None, paged=after_id is not None)
    parameters = {"municipality_id": municipality_id, "after_id": after_id, "limit": limit + 1}
    return [gateway_value(gateway, slug) for gateway, slug in session.execute(query, parameters)]


def get_gateway(session: Session, *, municipality_id: int | None, gateway_id: str) -> GatewayValue:
    """One gateway the municipality can see (any gateway for `None`); others are not found."""
    query = _WITH_OWNER.where(Gateway.gateway_id == gateway_id)
    if municipality_id is not None:
        query = query.where(_visible())
    found = session.execute(query, {"municipality_id": municipality_id}).first()
    if found is None:
        raise NotFound(f"no gateway {gateway_id}")
    return gateway_value(*found)


EDITABLE_FIELDS = frozenset({"name", "latitude", "longitude", "altitude_m", "municipality_id"})


def edit_gateway(
    session: Session, gateway_id: str, changes: dict[str, object], *, owner_slug: str | None
) -> GatewayValue:
    """Apply a person's edits (name, location, owner); what ingest observes is not editable.
    The caller has found the gateway visible (`get_gateway`) and names its owner after the edit."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    gateway = session.get(Gateway, gateway_id)
    if gateway is None:
        raise NotFound(f"no gateway {gateway_id}")
    for name, value in changes.items():
        setattr(gateway, name, value)
    session.flush()
    return gateway_value(gateway, owner_slug)
