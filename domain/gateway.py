"""A gateway as routes and use cases see it: a plain value, detached from any database session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Gateway:
    """A gateway with the slug of the municipality that runs it (`None` while unassigned).

    What ingest observes (first and last seen, the network server's online flag) sits
    beside what a person entered (name, place, owner); only the latter is editable.
    """

    gateway_id: str
    municipality_id: int | None
    owner_slug: str | None
    name: str | None
    latitude: float | None
    longitude: float | None
    altitude_m: float | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    last_uplink_at: datetime | None
    online: bool | None
    status_changed_at: datetime | None
