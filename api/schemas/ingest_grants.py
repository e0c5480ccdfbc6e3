"""Bodies of ingest grants: a municipality lets another one's sources deliver for its devices."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.sharing import Direction
from storage.ingest_grants import IngestGrantView
from storage.municipalities import SLUG_PATTERN


class IngestGrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"source": "nachbarstadt"}]})

    source: Annotated[str, Field(pattern=SLUG_PATTERN, max_length=63)] = Field(
        description="The municipality whose sources may deliver uplinks for this municipality's devices"
    )


class IngestGrantOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "owner": "wendlingen",
                    "source": "nachbarstadt",
                    "direction": "given",
                    "created_at": "2026-12-03T09:00:00Z",
                    "created_by": "3f9a1c0b7d2e",
                }
            ]
        }
    )

    id: int
    owner: str = Field(description="The municipality whose devices the uplinks are for")
    source: str = Field(description="The municipality whose sources may deliver them")
    direction: Direction = Field(description="Whether the listed municipality gave or received it")
    created_at: datetime
    created_by: str = Field(description="Prefix of the key that granted it")

    @classmethod
    def of(cls, view: IngestGrantView, municipality_slug: str) -> IngestGrantOut:
        grant = view.grant
        return cls(
            id=grant.id,
            owner=view.owner_slug,
            source=view.source_slug,
            direction=Direction.GIVEN if view.owner_slug == municipality_slug else Direction.RECEIVED,
            created_at=grant.created_at,
            created_by=grant.created_by,
        )
