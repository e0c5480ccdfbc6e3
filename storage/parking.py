"""Parking spots and zones as stored: devices with `parking_zone` metadata, and entered capacities.

The debounced states and occupancy built on them are `services.parking`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from storage.models import Device
from storage.models_usecases import ParkingZone


def parking_devices(session: Session, municipality_id: int, zone: str | None = None) -> list[Device]:
    zone_column = Device.metadata_["parking_zone"].astext
    query = select(Device).where(Device.municipality_id == municipality_id, zone_column.is_not(None))
    if zone is not None:
        query = query.where(zone_column == zone)
    return list(session.scalars(query.order_by(Device.dev_eui)))


def zone_capacities(session: Session, municipality_id: int) -> dict[str, int]:
    """The capacities someone entered, by zone name; zones not entered count their sensors."""
    rows = select(ParkingZone.name, ParkingZone.capacity).where(
        ParkingZone.municipality_id == municipality_id
    )
    return {name: capacity for name, capacity in session.execute(rows)}


def set_capacity(session: Session, municipality_id: int, zone: str, capacity: int) -> None:
    statement = insert(ParkingZone).values(municipality_id=municipality_id, name=zone, capacity=capacity)
    session.execute(
        statement.on_conflict_do_update(
            constraint="uq_parking_zone_municipality_id",
            set_={"capacity": statement.excluded.capacity, "updated_at": statement.excluded.updated_at},
        )
    )
