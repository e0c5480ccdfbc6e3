"""Every route, every role: what a key may do in its own municipality, and that another
municipality's resources answer 404 or 403 without a byte of their data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from api.access import ACTIONS_BY_ROLE, Action
from storage.api_keys import Role
from storage.models import Municipality
from tests.api.data import (
    MUNICIPAL_ROLES,
    Tenant,
    add_gateway,
    add_readings,
    auth,
    device_body,
    device_id,
    register,
)


@dataclass(frozen=True)
class Resources:
    """One of each resource of a municipality, for the routes to point at."""

    slug: str
    dev_eui: str
    gateway_id: str
    key_id: int
    secret_name: str
    grant_id: int
    ingest_grant_id: int = 0


def source_town(engine: Engine, slug: str) -> str:
    """A municipality of its own for ingest grants to name (created here, it has no keys)."""
    with Session(engine) as session:
        session.add(Municipality(slug=slug, name=slug))
        session.commit()
    return slug


def populate(client: TestClient, engine: Engine, tenant: Tenant) -> Resources:
    secret_name = f"secret-{tenant.slug}"
    dev_eui = register(client, tenant, name=secret_name)["dev_eui"]
    add_readings(engine, [(datetime.now(UTC), device_id(engine, dev_eui), "temperature", 21.5)])
    gateway_id = add_gateway(engine, tenant.id, name=secret_name)
    key = client.post(
        tenant.url("/api-keys"), json={"name": secret_name, "role": "viewer"}, headers=tenant.headers("admin")
    ).json()
    grant = client.post(
        tenant.url("/sharing"), json={"use_case": "soil", "grantee": None}, headers=tenant.headers("admin")
    ).json()
    source = source_town(engine, f"{tenant.slug}-nachbar")
    source_town(engine, f"{tenant.slug}-umland")  # for the grant route to name
    ingest_grant = client.post(
        tenant.url("/ingest-grants"), json={"source": source}, headers=tenant.headers("admin")
    ).json()
    return Resources(
        tenant.slug, dev_eui, gateway_id, key["id"], secret_name, grant["id"], ingest_grant["id"]
    )


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    action: Action
    body: Callable[[Resources], dict[str, Any]] | None = None
    csv: bool = False
    params: Callable[[Resources], dict[str, Any]] | None = None
    success: int = 200

    def call(self, client: TestClient, target: Resources, key: str) -> Any:
        url = "/v1/municipalities/" + self.path.format(
            slug=target.slug,
            dev_eui=target.dev_eui,
            gateway_id=target.gateway_id,
            key_id=target.key_id,
            grant_id=target.grant_id,
            ingest_grant_id=target.ingest_grant_id,
        )
        kwargs: dict[str, Any] = {"headers": auth(key)}
        if self.body is not None:
            kwargs["json"] = self.body(target)
        if self.csv:
            kwargs["files"] = {
                "file": ("d.csv", f"dev_eui,name\n{target.dev_eui},renamed\n".encode(), "text/csv")
            }
        if self.params is not None:
            kwargs["params"] = self.params(target)
        return client.request(self.method, url, **kwargs)


def history_params(target: Resources) -> dict[str, Any]:
    return {"dev_eui": target.dev_eui, "bucket": "1h"}


ROUTES = {
    "municipality": Route("GET", "{slug}", Action.READ),
    "keys-list": Route("GET", "{slug}/api-keys", Action.MANAGE_KEYS),
    "keys-create": Route(
        "POST",
        "{slug}/api-keys",
        Action.MANAGE_KEYS,
        body=lambda _: {"name": "n", "role": "viewer"},
        success=201,
    ),
    "keys-revoke": Route("DELETE", "{slug}/api-keys/{key_id}", Action.MANAGE_KEYS),
    "devices-list": Route("GET", "{slug}/devices", Action.READ),
    "devices-create": Route(
        "POST", "{slug}/devices", Action.EDIT_DEVICES, body=lambda _: device_body(), success=201
    ),
    "devices-export": Route("GET", "{slug}/devices/export", Action.READ),
    "devices-import": Route("POST", "{slug}/devices/import", Action.EDIT_DEVICES, csv=True),
    "device-get": Route("GET", "{slug}/devices/{dev_eui}", Action.READ),
    "device-patch": Route(
        "PATCH", "{slug}/devices/{dev_eui}", Action.EDIT_DEVICES, body=lambda _: {"name": "x"}
    ),
    "device-delete": Route("DELETE", "{slug}/devices/{dev_eui}", Action.EDIT_DEVICES, success=204),
    "device-redecode": Route("POST", "{slug}/devices/{dev_eui}/redecode", Action.REDECODE, success=202),
    "unclaimed": Route("GET", "{slug}/unclaimed-devices", Action.READ),
    "gateways-list": Route("GET", "{slug}/gateways", Action.READ),
    "gateway-get": Route("GET", "{slug}/gateways/{gateway_id}", Action.READ),
    "gateway-patch": Route(
        "PATCH", "{slug}/gateways/{gateway_id}", Action.EDIT_GATEWAYS, body=lambda _: {"name": "x"}
    ),
    "latest": Route("GET", "{slug}/readings/latest", Action.READ),
    "latest-export": Route(
        "GET", "{slug}/readings/latest/export", Action.READ, params=lambda _: {"format": "csv"}
    ),
    "history": Route("GET", "{slug}/readings/history", Action.READ, params=history_params),
    "history-export": Route("GET", "{slug}/readings/history/export", Action.READ, params=history_params),
    "sharing-list": Route("GET", "{slug}/sharing", Action.SHARE),
    "sharing-grant": Route(
        "POST", "{slug}/sharing", Action.SHARE, body=lambda _: {"use_case": "parking"}, success=201
    ),
    "sharing-revoke": Route("DELETE", "{slug}/sharing/{grant_id}", Action.SHARE, success=204),
    "ingest-grants-list": Route("GET", "{slug}/ingest-grants", Action.SHARE),
    "ingest-grants-grant": Route(
        "POST",
        "{slug}/ingest-grants",
        Action.SHARE,
        body=lambda target: {"source": f"{target.slug}-umland"},
        success=201,
    ),
    "ingest-grants-revoke": Route(
        "DELETE", "{slug}/ingest-grants/{ingest_grant_id}", Action.SHARE, success=204
    ),
}
ALL_ROLES = (*MUNICIPAL_ROLES, Role.REGION_ADMIN.value)


def test_every_v1_route_is_in_the_matrix(client: TestClient) -> None:
    """A new route must join the matrix, or this fails."""
    documented = {
        (method.upper(), path)
        for path, operations in client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for method in operations
        if path.startswith("/v1/municipalities/{slug}")
    }
    from tests.api.test_usecases import ROUTES as USE_CASE_ROUTES  # the use cases' own matrix

    covered = {
        (route.method, "/v1/municipalities/" + route.path)
        for route in (*ROUTES.values(), *USE_CASE_ROUTES.values())
    }
    assert documented == covered


def key_for(role: str, tenant: Tenant, region_key: str) -> str:
    return region_key if role == Role.REGION_ADMIN.value else tenant.keys[role]


@pytest.mark.parametrize("role", ALL_ROLES)
@pytest.mark.parametrize("name", list(ROUTES))
def test_each_role_in_its_own_municipality(
    client: TestClient, engine: Engine, tenant: Tenant, region_key: str, name: str, role: str
) -> None:
    route = ROUTES[name]
    own = populate(client, engine, tenant)
    response = route.call(client, own, key_for(role, tenant, region_key))
    allowed = route.action in ACTIONS_BY_ROLE[Role(role)]
    assert response.status_code == (route.success if allowed else 403), response.text
    if not allowed:
        assert response.headers["content-type"] == "application/problem+json"
        assert own.secret_name not in response.text


@pytest.mark.parametrize("role", MUNICIPAL_ROLES)
@pytest.mark.parametrize("name", list(ROUTES))
def test_a_foreign_municipality_is_invisible(
    client: TestClient, engine: Engine, tenant: Tenant, neighbour: Tenant, name: str, role: str
) -> None:
    route = ROUTES[name]
    theirs = populate(client, engine, neighbour)
    response = route.call(client, theirs, tenant.keys[role])
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = {name: value for name, value in response.json().items() if name != "instance"}
    assert theirs.secret_name not in str(problem)
    assert theirs.dev_eui not in str(problem)
    unchanged = client.get(neighbour.url(f"/devices/{theirs.dev_eui}"), headers=neighbour.headers("viewer"))
    assert unchanged.json()["name"] == theirs.secret_name


FOREIGN_RESOURCE_ROUTES = [
    name for name, route in ROUTES.items() if "{dev_eui}" in route.path or "{gateway_id}" in route.path
] + ["keys-revoke", "history", "history-export", "sharing-revoke", "ingest-grants-revoke"]


@pytest.mark.parametrize("role", MUNICIPAL_ROLES)
@pytest.mark.parametrize("name", FOREIGN_RESOURCE_ROUTES)
def test_a_foreign_resource_under_the_own_slug_is_invisible(
    client: TestClient, engine: Engine, tenant: Tenant, neighbour: Tenant, name: str, role: str
) -> None:
    route = ROUTES[name]
    own = populate(client, engine, tenant)
    theirs = populate(client, engine, neighbour)
    smuggled = Resources(
        own.slug,
        theirs.dev_eui,
        theirs.gateway_id,
        theirs.key_id,
        theirs.secret_name,
        theirs.grant_id,
        theirs.ingest_grant_id,
    )
    response = route.call(client, smuggled, tenant.keys[role])
    allowed = route.action in ACTIONS_BY_ROLE[Role(role)]
    assert response.status_code == (404 if allowed else 403), response.text
    assert theirs.secret_name not in response.text
    unchanged = client.get(neighbour.url(f"/devices/{theirs.dev_eui}"), headers=neighbour.headers("viewer"))
    assert unchanged.json()["name"] == theirs.secret_name
    keys = client.get(neighbour.url("/api-keys"), headers=neighbour.headers("admin")).json()["items"]
    assert all(key["revoked_at"] is None for key in keys)


@pytest.mark.parametrize("role", MUNICIPAL_ROLES)
def test_lists_never_mix_municipalities(
    client: TestClient, engine: Engine, tenant: Tenant, neighbour: Tenant, role: str
) -> None:
    populate(client, engine, tenant)
    theirs = populate(client, engine, neighbour)
    for name in ("devices-list", "devices-export", "gateways-list", "latest", "latest-export", "unclaimed"):
        own = Resources(tenant.slug, "", "", 0, "", 0)
        response = ROUTES[name].call(client, own, tenant.keys[role])
        assert response.status_code == 200
        assert theirs.dev_eui not in response.text
        assert theirs.secret_name not in response.text
