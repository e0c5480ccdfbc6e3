"""API key bodies: the secret appears in exactly one response, the one that created it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from domain.text import Name
from storage.models import ApiKey

MunicipalRole = Literal["admin", "editor", "viewer", "technician"]

EXAMPLE: dict[str, JsonValue] = {
    "id": 7,
    "prefix": "3f9a0c1b22de",
    "name": "Grafana dashboard",
    "role": "viewer",
    "municipality": "wendlingen",
    "created_at": "2026-11-26T09:00:00Z",
    "last_used_at": "2026-11-26T09:42:00Z",
    "revoked_at": None,
}


class ApiKeyIn(BaseModel):
    """A new key for this municipality; region-admin keys are made with the CLI only."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Grafana dashboard", "role": "viewer"}]}
    )

    name: Name
    role: MunicipalRole


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    id: int
    prefix: str = Field(description="The public part of the key, `lk_<prefix>_…`, for telling keys apart")
    name: str
    role: str
    municipality: str | None
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey, municipality_slug: str | None) -> ApiKeyOut:
        return cls(
            id=key.id,
            prefix=key.prefix,
            name=key.name,
            role=key.role,
            municipality=municipality_slug,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class CreatedApiKey(ApiKeyOut):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**EXAMPLE, "key": "lk_3f9a0c1b22de_Vq2…", "last_used_at": None}]}
    )

    key: str = Field(description="The whole key. Shown this once: only its hash is stored")
