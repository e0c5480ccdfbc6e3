"""Bodies of sharing grants, and the items of the region views (a use case's item plus the
municipality it belongs to, since a region list mixes municipalities)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from api.schemas.readings import LatestDeviceOut
from api.schemas.usecases import BinOut, SoilSensorOut, ZoneOut
from storage.municipalities import SLUG_PATTERN
from storage.sharing import GrantView, SharedUseCase


class Direction(StrEnum):
    GIVEN = "given"
    RECEIVED = "received"


class GrantIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"use_case": "parking", "grantee": "nachbarstadt"},
                {"use_case": "waste", "grantee": None},
            ]
        },
    )

    use_case: SharedUseCase
    grantee: Annotated[str, Field(pattern=SLUG_PATTERN, max_length=63)] | None = Field(
        default=None, description="The municipality that may read; null shares with the whole region"
    )


class GrantOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "owner": "wendlingen",
                    "use_case": "parking",
                    "grantee": None,
                    "direction": "given",
                    "created_at": "2026-11-26T09:00:00Z",
                    "created_by": "3f9a1c0b7d2e",
                }
            ]
        }
    )

    id: int
    owner: str = Field(description="The municipality whose data is shared")
    use_case: SharedUseCase
    grantee: str | None = Field(description="Who may read it; null for the whole region")
    direction: Direction = Field(description="Whether the listed municipality gave or received it")
    created_at: datetime
    created_by: str = Field(description="Prefix of the key that granted it")

    @classmethod
    def of(cls, view: GrantView, municipality_slug: str) -> GrantOut:
        grant = view.grant
        return cls(
            id=grant.id,
            owner=view.owner_slug,
            use_case=SharedUseCase(grant.use_case),
            grantee=view.grantee_slug,
            direction=Direction.GIVEN if view.owner_slug == municipality_slug else Direction.RECEIVED,
            created_at=grant.created_at,
            created_by=grant.created_by,
        )


def _region_examples(item: type[BaseModel]) -> dict[str, JsonValue]:
    """The per-municipality item's examples, each naming its municipality."""
    extra: Any = item.model_config.get("json_schema_extra")
    examples = extra.get("examples", []) if isinstance(extra, dict) else []
    return {"examples": [{"municipality": "wendlingen", **example} for example in examples]}


OF_MUNICIPALITY = "Slug of the municipality the item belongs to"


class RegionZoneOut(ZoneOut):
    model_config = ConfigDict(json_schema_extra=_region_examples(ZoneOut))

    municipality: str = Field(description=OF_MUNICIPALITY)


class RegionBinOut(BinOut):
    model_config = ConfigDict(json_schema_extra=_region_examples(BinOut))

    municipality: str = Field(description=OF_MUNICIPALITY)


class RegionSoilSensorOut(SoilSensorOut):
    model_config = ConfigDict(json_schema_extra=_region_examples(SoilSensorOut))

    municipality: str = Field(description=OF_MUNICIPALITY)


class RegionLatestDeviceOut(LatestDeviceOut):
    model_config = ConfigDict(json_schema_extra=_region_examples(LatestDeviceOut))

    municipality: str = Field(description=OF_MUNICIPALITY)
