"""A municipality as the API's routes see it: a plain value, detached from any database session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Municipality:
    """One town of the region; its `id` scopes every row the town owns."""

    id: int
    slug: str
    name: str
    district: str | None
    created_at: datetime
