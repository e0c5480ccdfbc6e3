"""Gateway bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from domain.gateway import Gateway
from domain.text import Name
from storage.municipalities import SLUG_PATTERN

EXAMPLE: dict[str, JsonValue] = {
    "gateway_id": "b827ebfffe6c1234",
    "name": "Rathaus Dach",
    "latitude": 48.6731,
    "longitude": 9.3770,
    "altitude_m": 285.0,
    "owner": "wendlingen",
    "first_seen_at": "2026-10-01T07:00:00Z",
    "last_seen_at": "2026-11-26T08:59:00Z",
    "last_uplink_at": "2026-11-26T08:59:00Z",
    "online": True,
    "status_changed_at": "2026-11-20T04:12:00Z",
}


class GatewayOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    gateway_id: str
    name: str | None
    latitude: float | None
    longitude: float | None
    altitude_m: float | None
    owner: str | None = Field(description="Slug of the municipality running it; null while unassigned")
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    last_uplink_at: datetime | None
    online: bool | None
    status_changed_at: datetime | None

    @classmethod
    def of(cls, gateway: Gateway) -> GatewayOut:
        return cls(
            gateway_id=gateway.gateway_id,
            name=gateway.name,
            latitude=gateway.latitude,
            longitude=gateway.longitude,
            altitude_m=gateway.altitude_m,
            owner=gateway.owner_slug,
            first_seen_at=gateway.first_seen_at,
            last_seen_at=gateway.last_seen_at,
            last_uplink_at=gateway.last_uplink_at,
            online=gateway.online,
            status_changed_at=gateway.status_changed_at,
        )


class GatewayPatch(BaseModel):
    """Fields to change; absent fields stay. `owner` takes a slug, or null to release the gateway."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Rathaus Dach", "latitude": 48.6731, "longitude": 9.377}]},
    )

    name: Name | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False, strict=True)
    longitude: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False, strict=True)
    altitude_m: float | None = Field(default=None, ge=-500, le=9000, allow_inf_nan=False, strict=True)
    owner: Annotated[str, Field(pattern=SLUG_PATTERN, max_length=63)] | None = None
