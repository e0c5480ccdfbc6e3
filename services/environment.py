"""Environment: the latest climate, air-quality and water-level values of a municipality.

Like `storage.latest.latest_values`, from `device_state` only, but for a set of
quantities at once: a device counts when it measures any of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from domain.latest import LatestDevice
from storage.latest import latest_of_devices


def latest_of_quantities(
    session: Session,
    municipality_id: int,
    quantities: Sequence[str],
    *,
    after_device_id: int | None,
    limit: int,
) -> list[LatestDevice]:
    """Devices with a value of any of `quantities`, by id (at most `limit + 1`), with those values."""
    return latest_of_devices(
        session,
        municipality_id=municipality_id,
        quantities=quantities,
        after_device_id=after_device_id,
        limit=limit,
    )
