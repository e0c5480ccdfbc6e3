"""Test data for the API tests: municipalities with keys, devices, readings, gateways.

Rows the ingest writer fills in production (`reading`, `device_state`,
`device_activity`, `gateway`) are inserted directly here.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from storage.models import Device, DeviceActivity, DeviceState, Gateway, Reading

MUNICIPAL_ROLES = ("admin", "editor", "viewer", "technician")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class RegisteredHooks:
    """Stands in for the redecode function: records the device ids it was called with."""

    calls: list[int] = field(default_factory=list)

    def __call__(self, engine: Engine, device_id: int) -> None:
        self.calls.append(device_id)


@dataclass(frozen=True)
class Tenant:
    """A municipality of one test, with a key for every municipal role."""

    id: int
    slug: str
    keys: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return auth(self.keys[role])

    def url(self, tail: str = "") -> str:
        return f"/v1/municipalities/{self.slug}{tail}"


TenantFactory = Callable[[], Tenant]


def unique_slug(stem: str = "gemeinde") -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def new_dev_eui() -> str:
    return secrets.token_hex(8)


def device_body(dev_eui: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dev_eui": dev_eui or new_dev_eui(),
        "name": "Bin Marktplatz",
        "codec_id": "milesight-iot/em310-udl",
        "decoder_source": "builtin",
        "use_case": "waste",
        "latitude": 48.67,
        "longitude": 9.37,
        "tags": ["altstadt"],
        "metadata": {"bin_depth_mm": 1200.0, "sensor_offset_mm": 50.0},
    }
    return body | overrides


def register(client: TestClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    body = device_body(**overrides)
    response = client.post(tenant.url("/devices"), json=body, headers=tenant.headers("editor"))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def device_id(engine: Engine, dev_eui: str) -> int:
    with Session(engine) as session:
        return session.scalars(select(Device.id).where(Device.dev_eui == dev_eui)).one()


def add_readings(engine: Engine, rows: list[tuple[datetime, int, str, float]]) -> None:
    """Readings and the matching latest state, as the ingest writer would leave them."""
    latest: dict[tuple[int, str], tuple[datetime, float]] = {}
    for moment, device, quantity, value in rows:
        if (device, quantity) not in latest or latest[(device, quantity)][0] < moment:
            latest[(device, quantity)] = (moment, value)
    with Session(engine) as session:
        session.execute(
            insert(Reading),
            [{"time": t, "device_id": d, "quantity": q, "value": v} for t, d, q, v in rows],
        )
        session.execute(
            insert(DeviceState),
            [{"device_id": d, "quantity": q, "time": t, "value": v} for (d, q), (t, v) in latest.items()],
        )
        session.commit()


def add_activity(engine: Engine, municipality_id: int, dev_eui: str, **values: Any) -> None:
    now = datetime.now(UTC)
    row = {
        "dev_eui": dev_eui,
        "municipality_id": municipality_id,
        "source": "tts-test",
        "first_seen_at": now,
        "last_seen_at": now,
        "uplink_count": 3,
        "last_f_port": 2,
        "last_payload": bytes.fromhex("0bb80d01"),
    } | values
    with Session(engine) as session:
        session.execute(insert(DeviceActivity), [row])
        session.commit()


def add_gateway(engine: Engine, municipality_id: int | None, **values: Any) -> str:
    gateway_id = str(values.pop("gateway_id", secrets.token_hex(8)))
    row = {"gateway_id": gateway_id, "municipality_id": municipality_id, "first_seen_at": datetime.now(UTC)}
    with Session(engine) as session:
        session.execute(insert(Gateway), [row | values])
        session.commit()
    return gateway_id
