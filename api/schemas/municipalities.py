"""Municipality bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from domain.municipality import Municipality
from domain.text import Name
from storage.models import Municipality as MunicipalityRow
from storage.municipalities import SLUG_PATTERN

EXAMPLE: dict[str, JsonValue] = {
    "slug": "wendlingen",
    "name": "Stadt Wendlingen am Neckar",
    "district": "Esslingen",
}


class MunicipalityIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    slug: Annotated[str, Field(pattern=SLUG_PATTERN, max_length=63)]
    name: Name
    district: Name | None = None


class MunicipalityOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**EXAMPLE, "created_at": "2026-11-26T09:00:00Z"}]}
    )

    slug: str
    name: str
    district: str | None
    created_at: datetime

    @classmethod
    def of(cls, municipality: Municipality | MunicipalityRow) -> MunicipalityOut:
        return cls(
            slug=municipality.slug,
            name=municipality.name,
            district=municipality.district,
            created_at=municipality.created_at,
        )
