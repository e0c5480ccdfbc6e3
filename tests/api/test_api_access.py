"""Authentication, API keys and municipalities."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from domain.errors import InvalidIdentifier
from storage.api_keys import create_api_key
from storage.models import ApiKey
from tests.api.data import MUNICIPAL_ROLES, Tenant, auth, unique_slug


def test_without_a_key_the_answer_is_401_problem(client: TestClient, tenant: Tenant) -> None:
    response = client.get(tenant.url("/devices"))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem = response.json()
    assert problem["type"] == "urn:lorakom:problem:unauthorized"
    assert problem["status"] == 401
    assert problem["instance"] == tenant.url("/devices")


@pytest.mark.parametrize("key", ["", "lk_", "lk_abc", "nope", "lk_000000000000_wrong-secret", "Basic x"])
def test_malformed_or_unknown_keys_answer_401(client: TestClient, tenant: Tenant, key: str) -> None:
    assert client.get(tenant.url(), headers={"X-API-Key": key}).status_code == 401


def test_a_wrong_secret_with_a_real_prefix_answers_401(client: TestClient, tenant: Tenant) -> None:
    prefix = tenant.keys["viewer"].split("_")[1]
    assert client.get(tenant.url(), headers=auth(f"lk_{prefix}_guessed")).status_code == 401


def test_the_key_is_judged_before_the_municipality_is_looked_up(client: TestClient, tenant: Tenant) -> None:
    """Key and municipality are read in one statement; a stranger must still learn nothing of
    which municipalities exist, and a known key learns only that one does not."""
    prefix = tenant.keys["viewer"].split("_")[1]
    missing = "/v1/municipalities/" + unique_slug() + "/devices"
    for stranger in (f"lk_{prefix}_guessed", "lk_000000000000_wrong-secret"):
        assert client.get(missing, headers=auth(stranger)).status_code == 401
        assert client.get(tenant.url("/devices"), headers=auth(stranger)).status_code == 401
    assert client.get(missing, headers=tenant.headers("viewer")).status_code == 404
    assert client.get(tenant.url("/devices"), headers=tenant.headers("viewer")).status_code == 200


def test_bearer_and_x_api_key_both_authenticate(client: TestClient, tenant: Tenant) -> None:
    key = tenant.keys["viewer"]
    assert client.get(tenant.url(), headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get(tenant.url(), headers={"X-API-Key": key}).status_code == 200


def test_me_names_the_key(client: TestClient, tenant: Tenant) -> None:
    me = client.get("/v1/me", headers=tenant.headers("technician")).json()
    assert me["role"] == "technician"
    assert me["municipality"] == tenant.slug
    assert me["prefix"] == tenant.keys["technician"].split("_")[1]
    assert "key" not in me


def test_admin_creates_a_key_shown_once_and_stored_hashed(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    created = client.post(
        tenant.url("/api-keys"), json={"name": "Grafana", "role": "viewer"}, headers=tenant.headers("admin")
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret_text = body["key"]
    assert secret_text.startswith(f"lk_{body['prefix']}_")
    assert client.get(tenant.url(), headers=auth(secret_text)).status_code == 200
    listed = client.get(tenant.url("/api-keys"), headers=tenant.headers("admin")).json()["items"]
    assert body["prefix"] in {item["prefix"] for item in listed}
    assert all("key" not in item for item in listed)
    with Session(engine) as session:
        stored = session.scalars(select(ApiKey).where(ApiKey.prefix == body["prefix"])).one()
        assert secret_text.split("_", 2)[2] not in stored.secret_hash
        assert stored.last_used_at is not None


def test_revoked_keys_stop_working_at_once(client: TestClient, tenant: Tenant) -> None:
    created = client.post(
        tenant.url("/api-keys"), json={"name": "temp", "role": "editor"}, headers=tenant.headers("admin")
    ).json()
    assert client.get(tenant.url(), headers=auth(created["key"])).status_code == 200
    revoked = client.delete(tenant.url(f"/api-keys/{created['id']}"), headers=tenant.headers("admin"))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert client.get(tenant.url(), headers=auth(created["key"])).status_code == 401


@pytest.mark.parametrize("role", ["editor", "viewer", "technician"])
def test_only_admins_manage_keys(client: TestClient, tenant: Tenant, role: str) -> None:
    headers = tenant.headers(role)
    assert client.get(tenant.url("/api-keys"), headers=headers).status_code == 403
    body = {"name": "x", "role": "viewer"}
    assert client.post(tenant.url("/api-keys"), json=body, headers=headers).status_code == 403
    assert client.delete(tenant.url("/api-keys/1"), headers=headers).status_code == 403


def test_region_admin_keys_are_not_made_over_http(client: TestClient, tenant: Tenant) -> None:
    body = {"name": "escalate", "role": "region-admin"}
    response = client.post(tenant.url("/api-keys"), json=body, headers=tenant.headers("admin"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"][-1] == "role"


def test_revoking_a_foreign_key_is_not_found(client: TestClient, tenant: Tenant, neighbour: Tenant) -> None:
    theirs = client.get(neighbour.url("/api-keys"), headers=neighbour.headers("admin")).json()["items"][0]
    response = client.delete(tenant.url(f"/api-keys/{theirs['id']}"), headers=tenant.headers("admin"))
    assert response.status_code == 404
    assert client.get(neighbour.url(), headers=auth(neighbour.keys[theirs["role"]])).status_code == 200


def test_create_api_key_for_the_cli(engine: Engine, tenant: Tenant) -> None:
    with Session(engine) as session:
        text, key = create_api_key(session, municipality_slug=tenant.slug, role="admin", name="bootstrap")
        session.commit()
        assert key.role == "admin"
        assert key.municipality_id == tenant.id
    with Session(engine) as session, pytest.raises(InvalidIdentifier):
        create_api_key(session, municipality_slug=tenant.slug, role="region-admin", name="x")
    with Session(engine) as session, pytest.raises(InvalidIdentifier):
        create_api_key(session, municipality_slug=tenant.slug, role="owner", name="x")
    assert text.startswith("lk_")


def test_region_admin_creates_municipalities(client: TestClient, region_key: str) -> None:
    slug = unique_slug("neustadt")
    body = {"slug": slug, "name": "Neustadt", "district": "Esslingen"}
    created = client.post("/v1/municipalities", json=body, headers=auth(region_key))
    assert created.status_code == 201, created.text
    assert created.json()["slug"] == slug
    again = client.post("/v1/municipalities", json=body, headers=auth(region_key))
    assert again.status_code == 409
    assert client.get(f"/v1/municipalities/{slug}", headers=auth(region_key)).json()["name"] == "Neustadt"


@pytest.mark.parametrize("role", MUNICIPAL_ROLES)
def test_municipal_keys_cannot_create_municipalities(client: TestClient, tenant: Tenant, role: str) -> None:
    body = {"slug": unique_slug(), "name": "Neustadt"}
    assert client.post("/v1/municipalities", json=body, headers=tenant.headers(role)).status_code == 403


@pytest.mark.parametrize("role", MUNICIPAL_ROLES)
def test_municipal_keys_list_only_their_own_municipality(
    client: TestClient, tenant: Tenant, neighbour: Tenant, role: str
) -> None:
    listed = client.get("/v1/municipalities", headers=tenant.headers(role)).json()
    assert [item["slug"] for item in listed["items"]] == [tenant.slug]
    assert listed["next_cursor"] is None


def test_region_admin_pages_through_all_municipalities(
    client: TestClient, tenant: Tenant, neighbour: Tenant, region_key: str
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/municipalities", params=params, headers=auth(region_key)).json()
        seen += [item["slug"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert {tenant.slug, neighbour.slug} <= set(seen)
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("cursor", ["not-a-cursor", "W10", "WyJhIl0", "eyJ4IjoxfQ"])
def test_foreign_cursors_answer_422(client: TestClient, tenant: Tenant, cursor: str) -> None:
    response = client.get(tenant.url("/devices"), params={"cursor": cursor}, headers=tenant.headers("viewer"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
