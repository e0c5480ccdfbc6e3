"""Registered devices: one municipality's sensors, their codec and what they are for.

What a device's fields may hold is `domain.device_fields`; the CSV import is
`services.device_import`. Every change sets `updated_at = now()`: the ingest bridge
refreshes its device cache from that column alone.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, exists, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.device_fields import DeviceFields, DeviceMetadata, DeviceSpec
from domain.errors import Conflict, NotFound
from domain.use_case import UseCase
from storage.ingest_grants import claimable_municipalities
from storage.models import Device, DeviceActivity, DeviceState
from storage.models import Uplink as UplinkRow
from storage.models_sharing import IngestGrant


def fields_of(device: Device) -> DeviceFields:
    return DeviceFields(
        name=device.name,
        codec_id=device.codec_id,
        decoder_source=device.decoder_source,
        use_case=UseCase(device.use_case or UseCase.OTHER),
        latitude=device.latitude,
        longitude=device.longitude,
        tags=list(device.tags),
        metadata=DeviceMetadata.model_validate(device.metadata_),
    )


def _columns_of(municipality_id: int, spec: DeviceSpec) -> dict[str, Any]:
    return {
        "municipality_id": municipality_id,
        "dev_eui": spec.dev_eui,
        "name": spec.name,
        "codec_id": spec.codec_id,
        "decoder_source": spec.decoder_source,
        "use_case": spec.use_case.value,
        "latitude": spec.latitude,
        "longitude": spec.longitude,
        "tags": spec.tags,
        "metadata": spec.metadata.model_dump(exclude_none=True),
    }


def measuring(session: Session, device_ids: Collection[int], quantities: Collection[str]) -> set[int]:
    """Those of `device_ids` with a latest value of any of `quantities`.

    A use case's views show exactly these devices (a bin is a device with a fill level),
    so a device outside them must be answered there like a device that does not exist:
    to a reader the use case was shared with, anything else would reveal it.
    """
    if not device_ids or not quantities:
        return set()
    found = session.scalars(
        select(DeviceState.device_id)
        .where(DeviceState.device_id.in_(device_ids), DeviceState.quantity.in_(quantities))
        .distinct()
    )
    return set(found)


def get_device(session: Session, *, municipality_id: int, dev_eui: str) -> Device:
    """A device of this municipality; another municipality's device is not found, like a missing one."""
    device = session.scalar(
        select(Device).where(Device.municipality_id == municipality_id, Device.dev_eui == dev_eui)
    )
    if device is None:
        raise NotFound(f"no device {dev_eui}")
    return device


def list_devices(
    session: Session,
    *,
    municipality_id: int,
    after_id: int | None,
    limit: int,
    use_case: UseCase | None = None,
    tag: str | None = None,
) -> list[Device]:
    """Devices in registration order, at most `limit + 1` so the caller can tell a next page exists."""
    query = select(Device).where(Device.municipality_id == municipality_id).order_by(Device.id)
    if after_id is not None:
        query = query.where(Device.id > after_id)
    if use_case is not None:
        query = query.where(Device.use_case == use_case.value)
    if tag is not None:
        query = query.where(Device.tags.contains([tag]))
    return list(session.scalars(query.limit(limit + 1)))


def create_device(session: Session, *, municipality_id: int, spec: DeviceSpec) -> Device:
    """Register a device. A DevEUI registered anywhere else is a conflict, without saying where."""
    statement = insert(Device).values(**_columns_of(municipality_id, spec)).returning(Device)
    try:
        with session.begin_nested():
            device = session.scalars(statement).one()
    except IntegrityError as exc:
        raise Conflict(f"device {spec.dev_eui} is registered already") from exc
    return device


def update_device(session: Session, device: Device, fields: DeviceFields) -> Device:
    device.name = fields.name
    device.codec_id = fields.codec_id
    device.decoder_source = fields.decoder_source
    device.use_case = fields.use_case.value
    device.latitude = fields.latitude
    device.longitude = fields.longitude
    device.tags = list(fields.tags)
    device.metadata_ = fields.metadata.model_dump(exclude_none=True)
    device.updated_at = func.now()
    session.flush()
    session.refresh(device)
    return device


def delete_device(session: Session, device: Device) -> None:
    session.delete(device)
    session.flush()


def list_unclaimed(
    session: Session, *, municipality_id: int, after_dev_eui: str | None, limit: int
) -> list[DeviceActivity]:
    """DevEUIs heard on this municipality's sources that no device it delivers for has.

    Only this municipality's own activity rows: another town's pool is that town's. A
    DevEUI counts as claimed when the municipality registered it, or when its owner
    granted this municipality's sources ingest (their frames go to that device). One
    registered by a town that did not grant stays listed: this town's frames of it are
    unclaimed, whoever owns a device of that DevEUI elsewhere.

    Under row-level security the granting owners' devices are not this municipality's to
    read; `lorakom_granted_dev_euis()` (migration 0011) tells which of its heard DevEUIs
    they registered, and nothing more. The table owner (no tenant set) reads them directly.
    """
    granting_owners = select(IngestGrant.owner_municipality_id).where(
        IngestGrant.source_municipality_id == municipality_id
    )
    claimed = or_(
        exists().where(
            Device.dev_eui == DeviceActivity.dev_eui,
            or_(Device.municipality_id == municipality_id, Device.municipality_id.in_(granting_owners)),
        ),
        DeviceActivity.dev_eui.in_(select(func.lorakom_granted_dev_euis())),
    )
    query = (
        select(DeviceActivity)
        .where(DeviceActivity.municipality_id == municipality_id, ~claimed)
        .order_by(DeviceActivity.dev_eui)
        .limit(limit + 1)
    )
    if after_dev_eui is not None:
        query = query.where(DeviceActivity.dev_eui > after_dev_eui)
    return list(session.scalars(query))


def was_heard(session: Session, *, municipality_id: int, dev_eui: str) -> bool:
    """Whether a device of this DevEUI in `municipality_id` has stored frames to claim and decode.

    Asked only of the frames it may claim (its own sources' and those of towns that it
    granted ingest), so the answer says nothing about other towns' pools.
    """
    towns = claimable_municipalities(session, municipality_id)
    heard = exists().where(DeviceActivity.dev_eui == dev_eui, DeviceActivity.municipality_id.in_(towns))
    return bool(session.scalar(select(heard)))


def registered_elsewhere(session: Session, municipality_id: int, dev_euis: Sequence[str]) -> set[str]:
    """Which of `dev_euis` another municipality registered.

    Through a database function: a session confined to `municipality_id` (`storage.tenancy`)
    cannot see other municipalities' devices, yet a DevEUI is unique across all of them.
    """
    found = session.execute(
        select(func.lorakom_devices_elsewhere(municipality_id, cast(list(dev_euis), ARRAY(Text))))
    )
    return set(found.scalars())


def count_stored_frames(session: Session, device: Device, since: datetime | None) -> int:
    """Raw frames of a device at or after `since`: what a redecode will go through (as it selects them)."""
    towns = claimable_municipalities(session, device.municipality_id)
    query = (
        select(func.count())
        .select_from(UplinkRow)
        .where(UplinkRow.dev_eui == device.dev_eui, UplinkRow.municipality_id.in_(towns))
    )
    if since is not None:
        query = query.where(UplinkRow.received_at >= since)
    return int(session.scalar(query) or 0)
