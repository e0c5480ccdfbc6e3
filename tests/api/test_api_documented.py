"""What the OpenAPI document says a request may be is what the app accepts, and every
refusal it documents has the shape it is sent in (application/problem+json)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.data import Tenant
from tests.security.policy import deployed_document

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return deployed_document()


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def allowed(schema: dict[str, Any], text: str) -> bool:
    """Whether a string schema's own pattern and length admit `text`."""
    if "pattern" in schema and re.search(schema["pattern"], text) is None:
        return False
    return len(text) >= schema.get("minLength", 0)


def test_every_documented_error_is_a_problem_document(document: dict[str, Any]) -> None:
    """FastAPI's own 422 and the webhook ingest's errors included."""
    plain = [
        f"{method.upper()} {path} {status}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
        if int(status) >= 400 and list(response.get("content", {})) != [PROBLEM]
    ]
    assert plain == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"name": "\xff\xfe"}'),
        ("multipart/form-data; boundary=x", b"--x\r\nbroken\xe0 header\r\n--x--\r\n"),
    ],
    ids=["json-not-utf8", "broken-multipart"],
)
def test_an_unreadable_body_is_answered_422_as_documented(
    client: TestClient, tenant: Tenant, document: dict[str, Any], content_type: str, body: bytes
) -> None:
    path = "/devices/import" if content_type.startswith("multipart") else "/devices"
    response = client.post(
        tenant.url(path), content=body, headers={**tenant.headers("admin"), "Content-Type": content_type}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["loc"] == ["body"]
    documented = document["paths"]["/v1/municipalities/{slug}" + path]["post"]["responses"]
    assert "422" in documented


@pytest.mark.parametrize(
    ("schema_name", "field", "text"),
    [
        ("DeviceIn", "dev_eui", "0"),
        ("DeviceIn", "name", "\u00a0"),
        ("ApiKeyIn", "name", " \u3000 "),
        ("WebhookIn", "url", "urn:lorakom:problem:"),
    ],
)
def test_the_schema_refuses_the_texts_the_app_refuses(
    client: TestClient, tenant: Tenant, document: dict[str, Any], schema_name: str, field: str, text: str
) -> None:
    bodies = {
        "DeviceIn": ("/devices", {"dev_eui": "70b3d57ed00012ff", "name": "Pegel"}),
        "ApiKeyIn": ("/api-keys", {"name": "Grafana", "role": "viewer"}),
        "WebhookIn": ("/alerts/webhooks", {"url": "https://leitstelle.example.org/"}),
    }
    path, valid = bodies[schema_name]
    response = client.post(tenant.url(path), json={**valid, field: text}, headers=tenant.headers("admin"))
    assert response.status_code == 422
    assert not allowed(component(document, schema_name)["properties"][field], text)


def test_a_history_without_a_dev_eui_is_refused_by_schema_and_app(
    client: TestClient, tenant: Tenant, document: dict[str, Any]
) -> None:
    response = client.get(tenant.url("/readings/history?dev_eui="), headers=tenant.headers("viewer"))
    assert response.status_code == 422
    parameters = document["paths"]["/v1/municipalities/{slug}/readings/history"]["get"]["parameters"]
    (dev_eui,) = [parameter for parameter in parameters if parameter["name"] == "dev_eui"]
    assert not allowed(dev_eui["schema"]["items"], "")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/parking/zones/nord/capacity", {"capacity": True}),
        ("/parking/zones/nord/capacity", {"capacity": "12"}),
        ("/soil/thresholds/lehm", {"yellow_below_percent": 50, "red_below_percent": False}),
    ],
)
def test_numbers_are_json_numbers_not_booleans_or_text(
    client: TestClient, tenant: Tenant, path: str, body: dict[str, object]
) -> None:
    response = client.put(tenant.url(path), json=body, headers=tenant.headers("admin"))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


def test_a_whole_number_written_with_a_point_is_an_integer(client: TestClient, tenant: Tenant) -> None:
    response = client.put(
        tenant.url("/parking/zones/nord/capacity"), json={"capacity": 12.0}, headers=tenant.headers("admin")
    )
    assert response.status_code == 200
    assert response.json()["capacity"] == 12


def test_a_device_patch_offers_null_only_where_it_takes_null(
    client: TestClient, tenant: Tenant, document: dict[str, Any]
) -> None:
    client.post(
        tenant.url("/devices"),
        json={"dev_eui": "70b3d57ed00013aa", "name": "Pegel"},
        headers=tenant.headers("admin"),
    )
    properties = component(document, "DevicePatch")["properties"]
    for field, value in [("tags", None), ("name", None), ("metadata", None), ("use_case", None)]:
        response = client.patch(
            tenant.url("/devices/70b3d57ed00013aa"), json={field: value}, headers=tenant.headers("admin")
        )
        assert response.status_code == 422, field
        assert "anyOf" not in properties[field], field
        assert properties[field].get("type") != "null", field
    cleared = client.patch(
        tenant.url("/devices/70b3d57ed00013aa"), json={"codec_id": None}, headers=tenant.headers("admin")
    )
    assert cleared.status_code == 200


@pytest.mark.parametrize(
    "body", [{"longitude": 9.3}, {"longitude": None}, {"latitude": 48.6, "longitude": None}]
)
def test_a_location_is_changed_as_a_whole(
    client: TestClient, tenant: Tenant, body: dict[str, object]
) -> None:
    """Both coordinates or neither, whatever the device holds now: a rule the schema states."""
    client.post(
        tenant.url("/devices"),
        json={"dev_eui": "70b3d57ed00013ab", "name": "Pegel", "latitude": 48.6, "longitude": 9.3},
        headers=tenant.headers("admin"),
    )
    response = client.patch(
        tenant.url("/devices/70b3d57ed00013ab"), json=body, headers=tenant.headers("admin")
    )
    assert response.status_code == 422
