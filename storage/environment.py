"""Environment: the latest climate, air-quality and water-level values of a municipality.

Like `storage.readings.latest_values`, from `device_state` only, but for a set of
quantities at once: a device counts when it measures any of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Device, DeviceState
from storage.readings import LatestDevice


def latest_of_quantities(
    session: Session,
    municipality_id: int,
    quantities: Sequence[str],
    *,
    after_device_id: int | None,
    limit: int,
) -> list[LatestDevice]:
    """Devices with a value of any of `quantities`, by id (at most `limit + 1`), with those values."""
    measures = (
        select(DeviceState.device_id)
        .where(DeviceState.device_id == Device.id, DeviceState.quantity.in_(quantities))
        .exists()
    )
    devices = select(Device).where(Device.municipality_id == municipality_id, measures)
    if after_device_id is not None:
        devices = devices.where(Device.id > after_device_id)
    found = list(session.scalars(devices.order_by(Device.id).limit(limit + 1)))
    states = (
        select(DeviceState)
        .where(
            DeviceState.device_id.in_([device.id for device in found]), DeviceState.quantity.in_(quantities)
        )
        .order_by(DeviceState.device_id, DeviceState.quantity)
    )
    by_device: dict[int, list[DeviceState]] = {device.id: [] for device in found}
    for state in session.scalars(states):
        by_device[state.device_id].append(state)
    return [LatestDevice(device, by_device[device.id]) for device in found]
