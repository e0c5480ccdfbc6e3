"""Sharing grants through HTTP: a municipality opens one use case, read-only, to another
municipality or to the region; everything else of it stays a 404 for other keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from api.app_services import services_of
from storage.api_keys import Role, create_api_key
from storage.models import Base
from tests.api.data import MUNICIPAL_ROLES, Tenant, TenantFactory, auth, new_dev_eui, register, unique_slug
from tests.api.test_usecases import Resources, populate, readings_of, soil_sensor


@dataclass(frozen=True)
class Town:
    """A municipality with something of every use case: the use-case matrix's resources
    (all named after a secret) plus a soil sensor and an air station."""

    tenant: Tenant
    resources: Resources
    tree: str
    station: str

    @property
    def slug(self) -> str:
        return self.tenant.slug

    @property
    def secret(self) -> str:
        return self.resources.secret_name

    @property
    def zone(self) -> str:
        return self.resources.zone

    @property
    def bin(self) -> str:
        return self.resources.bin

    def url(self, tail: str) -> str:
        return self.tenant.url(tail)


def furnish(client: TestClient, engine: Engine, tenant: Tenant) -> Town:
    resources = populate(client, engine, tenant)
    tree = soil_sensor(client, tenant, "loam", "park", "T-1")
    readings_of(engine, tree, "soil_moisture", [(timedelta(hours=1), 30.0)])
    station = register(client, tenant, use_case="environment", name=resources.secret_name)["dev_eui"]
    readings_of(engine, station, "pm2_5", [(timedelta(minutes=10), 9.0)])
    return Town(tenant, resources, tree, station)


def share(client: TestClient, owner: Town, use_case: str, grantee: Town | None) -> int:
    body = {"use_case": use_case, "grantee": grantee.slug if grantee is not None else None}
    response = client.post(owner.url("/sharing"), json=body, headers=owner.tenant.headers("admin"))
    assert response.status_code == 201, response.text
    grant_id: int = response.json()["id"]
    return grant_id


def reads(town: Town) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """Every read route of each use case of `town`, by use case."""
    return {
        "parking": (
            town.url("/parking/zones"),
            None,
        ),
        "parking-zone": (town.url(f"/parking/zones/{town.zone}"), None),
        "parking-spots": (town.url(f"/parking/zones/{town.zone}/spots"), None),
        "parking-occupancy": (town.url(f"/parking/zones/{town.zone}/occupancy"), None),
        "parking-typical": (town.url(f"/parking/zones/{town.zone}/typical-week"), {"weeks": 1}),
        "waste": (town.url("/waste/bins"), None),
        "waste-collection": (town.url("/waste/collection"), None),
        "waste-emptyings": (town.url(f"/waste/bins/{town.bin}/emptyings"), None),
        "soil": (town.url("/soil/sensors"), None),
        "soil-areas": (town.url("/soil/areas"), None),
        "soil-water": (town.url("/soil/needs-water"), None),
        "soil-thresholds": (town.url("/soil/thresholds"), None),
        "environment": (town.url("/environment/latest"), None),
        "environment-history": (town.url("/environment/history"), {"dev_eui": town.station}),
    }


def unshared(town: Town) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Routes of `town` that no grant ever opens: everything outside the use cases, and writes."""
    return [
        ("GET", town.url(""), None),
        ("GET", town.url("/devices"), None),
        ("GET", town.url(f"/devices/{town.bin}"), None),
        ("GET", town.url("/api-keys"), None),
        ("GET", town.url("/gateways"), None),
        ("GET", town.url(f"/gateways/{town.resources.gateway_id}"), None),
        ("GET", town.url("/alerts/rules"), None),
        ("GET", town.url("/alerts/events"), None),
        ("GET", town.url("/health/devices"), None),
        ("GET", town.url("/readings/latest"), None),
        ("GET", town.url("/readings/history"), None),
        ("GET", town.url("/sharing"), None),
        ("PUT", town.url(f"/parking/zones/{town.zone}/capacity"), {"capacity": 1}),
        ("PUT", town.url("/soil/thresholds/loam"), {"yellow_below_percent": 40, "red_below_percent": 30}),
        ("DELETE", town.url("/soil/thresholds/loam"), None),
        ("PATCH", town.url(f"/devices/{town.bin}"), {"name": "taken"}),
        ("POST", town.url("/sharing"), {"use_case": "waste"}),
    ]


def assert_invisible(response: Any, town: Town) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = {name: value for name, value in response.json().items() if name != "instance"}
    assert town.secret not in str(problem)
    assert town.bin not in str(problem)


@pytest.fixture
def towns(client: TestClient, engine: Engine, make_tenant: TenantFactory) -> tuple[Town, Town, Town]:
    """A owns the data, B is the neighbour it may share with, C a third that is never named."""
    return (
        furnish(client, engine, make_tenant()),
        furnish(client, engine, make_tenant()),
        furnish(client, engine, make_tenant()),
    )


@pytest.mark.parametrize("role", MUNICIPAL_ROLES)
def test_without_a_grant_every_use_case_route_answers_404(
    client: TestClient, towns: tuple[Town, Town, Town], role: str
) -> None:
    a, b, _ = towns
    for url, params in reads(a).values():
        assert_invisible(client.get(url, params=params, headers=b.tenant.headers(role)), a)


@pytest.mark.parametrize("role", MUNICIPAL_ROLES)
def test_a_grant_opens_that_use_case_to_the_grantee_only(
    client: TestClient, towns: tuple[Town, Town, Town], role: str
) -> None:
    a, b, c = towns
    share(client, a, "parking", b)
    headers = b.tenant.headers(role)

    for name, (url, params) in reads(a).items():
        response = client.get(url, params=params, headers=headers)
        if name.startswith("parking"):
            assert response.status_code == 200, (name, response.text)
        else:
            assert_invisible(response, a)
    zones = client.get(a.url("/parking/zones"), headers=headers).json()["items"]
    assert [zone["zone"] for zone in zones] == [a.zone]
    spots = client.get(a.url(f"/parking/zones/{a.zone}/spots"), headers=headers).json()["items"]
    assert [spot["occupied"] for spot in spots] == [True]

    for method, url, body in unshared(a):
        assert_invisible(client.request(method, url, json=body, headers=headers), a)
    # A third municipality was not named, and B's own data did not become A's to read.
    assert_invisible(client.get(a.url("/parking/zones"), headers=c.tenant.headers(role)), a)
    assert_invisible(client.get(b.url("/parking/zones"), headers=a.tenant.headers(role)), b)
    unchanged = client.get(a.url(f"/devices/{a.bin}"), headers=a.tenant.headers("viewer")).json()
    assert unchanged["name"] == a.secret


def test_the_environment_history_is_shared_but_not_the_readings_history(
    client: TestClient, towns: tuple[Town, Town, Town]
) -> None:
    a, b, _ = towns
    share(client, a, "environment", b)
    headers = b.tenant.headers("viewer")

    history = client.get(a.url("/environment/history"), params={"dev_eui": a.station}, headers=headers)
    assert [point["value"] for point in history.json()["items"]] == [9.0]
    raw = client.get(a.url("/readings/history"), params={"dev_eui": a.station}, headers=headers)
    assert_invisible(raw, a)


def test_a_device_outside_a_shared_use_case_answers_like_a_missing_one(
    client: TestClient, towns: tuple[Town, Town, Town]
) -> None:
    """A grantee of waste and environment names A's other devices: each answer is the one
    for a DevEUI that does not exist, so a grant reveals no device beyond its use case."""
    a, b, _ = towns
    share(client, a, "waste", b)
    share(client, a, "environment", b)
    headers = b.tenant.headers("viewer")

    def emptyings(dev_eui: str) -> Any:
        return client.get(a.url(f"/waste/bins/{dev_eui}/emptyings"), headers=headers)

    def environment_history(dev_eui: str) -> Any:
        return client.get(a.url("/environment/history"), params={"dev_eui": dev_eui}, headers=headers)

    def answer(response: Any, dev_eui: str) -> tuple[int, str]:
        return response.status_code, response.json()["detail"].replace(dev_eui, "<dev_eui>")

    unknown = new_dev_eui()
    for read, members, others in (
        (emptyings, [a.bin], [a.tree, a.station]),
        (environment_history, [a.station], [a.tree, a.bin]),
    ):
        for member in members:
            assert read(member).status_code == 200
        missing = answer(read(unknown), unknown)
        assert missing[0] == 404
        for other in others:
            assert answer(read(other), other) == missing


def test_a_grant_to_the_region_shows_in_region_views_until_revoked(
    client: TestClient, towns: tuple[Town, Town, Town]
) -> None:
    a, b, c = towns
    grants = {
        use_case: share(client, a, use_case, None) for use_case in ("parking", "waste", "soil", "environment")
    }
    views = {
        "parking": ("/v1/region/parking/zones", "zone", a.zone),
        "waste": ("/v1/region/waste/bins", "dev_eui", a.bin),
        "soil": ("/v1/region/soil/sensors", "dev_eui", a.tree),
        "environment": ("/v1/region/environment/latest", "dev_eui", a.station),
    }

    for town in (a, b, c):
        for role in MUNICIPAL_ROLES:
            for path, field, expected in views.values():
                items = client.get(path, headers=town.tenant.headers(role)).json()["items"]
                mine = [item for item in items if item["municipality"] == a.slug]
                assert [item[field] for item in mine] == [expected], (path, role)
                assert not [item for item in items if item["municipality"] in (b.slug, c.slug)]
    # A region grant is a grant to every member for the municipal routes, too.
    assert client.get(a.url("/waste/bins"), headers=c.tenant.headers("viewer")).status_code == 200

    revoked = client.delete(a.url(f"/sharing/{grants['waste']}"), headers=a.tenant.headers("admin"))
    assert revoked.status_code == 204
    items = client.get("/v1/region/waste/bins", headers=b.tenant.headers("viewer")).json()["items"]
    assert a.slug not in {item["municipality"] for item in items}
    assert a.bin not in str(items)
    assert_invisible(client.get(a.url("/waste/bins"), headers=c.tenant.headers("viewer")), a)
    parking = client.get("/v1/region/parking/zones", headers=b.tenant.headers("viewer")).json()["items"]
    assert a.slug in {item["municipality"] for item in parking}


def test_a_region_admin_sees_every_municipality_in_region_views(
    client: TestClient, towns: tuple[Town, Town, Town], region_key: str
) -> None:
    a, b, _ = towns
    share(client, a, "parking", None)
    everyone = client.get("/v1/region/parking/zones", params={"limit": 1000}, headers=auth(region_key))
    assert {a.slug, b.slug} <= {item["municipality"] for item in everyone.json()["items"]}
    member = client.get(
        "/v1/region/parking/zones", params={"limit": 1000}, headers=b.tenant.headers("viewer")
    )
    shown = {item["municipality"] for item in member.json()["items"]}
    assert a.slug in shown
    assert b.slug not in shown


def test_region_views_page_across_municipalities(client: TestClient, towns: tuple[Town, Town, Town]) -> None:
    a, b, c = towns
    for town in (a, b, c):
        share(client, town, "waste", None)
        share(client, town, "parking", None)
    headers = c.tenant.headers("viewer")
    for path, field in (("/v1/region/waste/bins", "dev_eui"), ("/v1/region/parking/zones", "zone")):
        seen: list[tuple[str, str]] = []
        cursor = None
        for _ in range(1000):
            params = {"limit": 1} | ({"cursor": cursor} if cursor is not None else {})
            response = client.get(path, params=params, headers=headers)
            assert response.status_code == 200, response.text
            page = response.json()
            seen += [(item["municipality"], item[field]) for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), path
        expected = {(a.slug, a.bin), (b.slug, b.bin), (c.slug, c.bin)}
        if field == "zone":
            expected = {(town.slug, town.zone) for town in (a, b, c)}
        assert expected <= set(seen), path
    bad = client.get("/v1/region/parking/zones", params={"cursor": "bm9wZQ"}, headers=headers)
    assert bad.status_code == 422


def test_only_the_owners_admin_or_a_region_admin_grants(
    client: TestClient, towns: tuple[Town, Town, Town], region_key: str
) -> None:
    a, b, _ = towns
    body = {"use_case": "parking", "grantee": b.slug}
    for role in ("editor", "viewer", "technician"):
        denied = client.post(a.url("/sharing"), json=body, headers=a.tenant.headers(role))
        assert denied.status_code == 403, role
        assert client.get(a.url("/sharing"), headers=a.tenant.headers(role)).status_code == 403
    for role in MUNICIPAL_ROLES:
        assert_invisible(client.post(a.url("/sharing"), json=body, headers=b.tenant.headers(role)), a)

    given = client.post(a.url("/sharing"), json=body, headers=a.tenant.headers("admin"))
    assert given.status_code == 201
    assert given.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "owner": a.slug,
        "use_case": "parking",
        "grantee": b.slug,
        "direction": "given",
        "created_at": "",
        "created_by": given.json()["created_by"],
    }
    assert len(given.json()["created_by"]) == 12
    assert client.post(a.url("/sharing"), json=body, headers=a.tenant.headers("admin")).status_code == 409
    by_region = client.post(a.url("/sharing"), json={"use_case": "soil"}, headers=auth(region_key))
    assert by_region.status_code == 201
    assert by_region.json()["grantee"] is None
    again = client.post(
        a.url("/sharing"), json={"use_case": "soil", "grantee": None}, headers=auth(region_key)
    )
    assert again.status_code == 409
    assert (
        client.post(
            a.url("/sharing"),
            json={"use_case": "waste", "grantee": a.slug},
            headers=a.tenant.headers("admin"),
        ).status_code
        == 422
    )
    assert (
        client.post(
            a.url("/sharing"), json={"use_case": "other"}, headers=a.tenant.headers("admin")
        ).status_code
        == 422
    )

    mine = {
        (grant["use_case"], grant["grantee"], grant["direction"])
        for grant in all_grants(client, a)
        if grant["owner"] == a.slug
    }
    assert mine == {("parking", b.slug, "given"), ("soil", None, "given")}
    received = {
        (grant["owner"], grant["use_case"], grant["direction"])
        for grant in all_grants(client, b)
        if grant["owner"] == a.slug
    }
    assert received == {(a.slug, "parking", "received"), (a.slug, "soil", "received")}

    # The grantee cannot withdraw what it received; only the owner (or a region admin) can.
    grant_id = given.json()["id"]
    assert client.delete(b.url(f"/sharing/{grant_id}"), headers=b.tenant.headers("admin")).status_code == 404
    assert_invisible(client.delete(a.url(f"/sharing/{grant_id}"), headers=b.tenant.headers("admin")), a)
    assert client.delete(a.url(f"/sharing/{grant_id}"), headers=auth(region_key)).status_code == 204
    assert client.delete(a.url(f"/sharing/{grant_id}"), headers=a.tenant.headers("admin")).status_code == 404
    assert_invisible(client.get(a.url("/parking/zones"), headers=b.tenant.headers("viewer")), a)


def test_a_grant_to_an_unknown_slug_answers_as_one_to_a_real_town_and_opens_once_it_exists(
    client: TestClient, towns: tuple[Town, Town, Town], region_key: str, make_tenant: TenantFactory
) -> None:
    """Refusing a grant to a slug nobody has would tell any admin which towns exist."""
    a, b, _ = towns
    newcomer_slug = unique_slug("neustadt")
    to_real = client.post(
        a.url("/sharing"), json={"use_case": "waste", "grantee": b.slug}, headers=a.tenant.headers("admin")
    )
    to_nobody = client.post(
        a.url("/sharing"),
        json={"use_case": "waste", "grantee": newcomer_slug},
        headers=a.tenant.headers("admin"),
    )
    assert (to_real.status_code, to_nobody.status_code) == (201, 201)
    assert set(to_real.json()) == set(to_nobody.json())
    assert to_nobody.json()["grantee"] == newcomer_slug
    assert to_nobody.json()["direction"] == "given"
    again = client.post(
        a.url("/sharing"),
        json={"use_case": "waste", "grantee": newcomer_slug},
        headers=a.tenant.headers("admin"),
    )
    assert again.status_code == 409  # as a real town's repeated grant
    listed = {grant["id"]: grant for grant in all_grants(client, a)}
    assert listed[to_nobody.json()["id"]]["grantee"] == newcomer_slug
    assert to_nobody.json()["id"] != to_real.json()["id"]

    # The town that slug names, created later, receives the grant: its keys read a's bins.
    created = client.post(
        "/v1/municipalities",
        json={"slug": newcomer_slug, "name": "Neustadt", "district": None},
        headers=auth(region_key),
    )
    assert created.status_code == 201, created.text
    with Session(services_of(client.app).engine) as session:
        newcomer_key, _ = create_api_key(
            session, municipality_slug=newcomer_slug, role=Role.ADMIN, name="admin"
        )
        session.commit()
    bins = client.get(a.url("/waste/bins"), headers=auth(newcomer_key))
    assert bins.status_code == 200, bins.text
    received = [
        grant for grant in all_grants_as(client, newcomer_slug, newcomer_key) if grant["owner"] == a.slug
    ]
    assert [(grant["id"], grant["direction"]) for grant in received] == [(to_nobody.json()["id"], "received")]

    # A pending grant is withdrawn like any other, and then nobody can withdraw it again.
    pending = client.post(
        a.url("/sharing"),
        json={"use_case": "soil", "grantee": unique_slug("nirgendwo")},
        headers=a.tenant.headers("admin"),
    ).json()["id"]
    assert_invisible(client.delete(a.url(f"/sharing/{pending}"), headers=b.tenant.headers("admin")), a)
    assert client.delete(a.url(f"/sharing/{pending}"), headers=a.tenant.headers("admin")).status_code == 204
    assert client.delete(a.url(f"/sharing/{pending}"), headers=a.tenant.headers("admin")).status_code == 404


def all_grants_as(client: TestClient, slug: str, key: str) -> list[dict[str, Any]]:
    """Every page of `slug`'s grant list: the session's other tests leave region-wide grants in it."""
    grants: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = client.get(f"/v1/municipalities/{slug}/sharing", params=params, headers=auth(key))
        assert page.status_code == 200, page.text
        grants += page.json()["items"]
        if page.json()["next_cursor"] is None:
            return grants
        params["cursor"] = page.json()["next_cursor"]


def all_grants(client: TestClient, town: Town) -> list[dict[str, Any]]:
    """Every page of the town's grant list: it holds every region-wide grant of the region too."""
    grants: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 50}
    while True:
        page = client.get(town.url("/sharing"), params=params, headers=town.tenant.headers("admin")).json()
        grants += page["items"]
        if page["next_cursor"] is None:
            return grants
        params["cursor"] = page["next_cursor"]


def test_the_migration_matches_the_model(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in differences if "sharing_grant" in repr(d)] == []
