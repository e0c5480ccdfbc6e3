"""Schemathesis against the OpenAPI schema: generated requests never get a 5xx, and every
answer matches the documented status codes, content types and bodies.

One test per operation, each with a bounded number of generated cases, so the whole
run stays well under a minute. Requests carry a region admin's key and land in a
municipality of their own (the generated `{slug}` is replaced), so they reach the
handlers rather than stopping at 401 or 404.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine
from starlette.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from tests.api.conftest import real_redecode
from tests.api.data import Tenant, auth, register, unique_slug

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 25

OPERATIONS = [
    (operation.method.upper(), operation.path)
    for operation in (
        result.ok()
        for result in schemathesis.openapi.from_dict(create_app(ApiSettings()).openapi()).get_all_operations()
    )
]


@pytest.fixture(scope="module")
def fuzz_target(client: TestClient, region_key: str) -> str:
    """A municipality for the generated requests to land in, with one device."""
    slug = unique_slug("fuzz")
    client.post("/v1/municipalities", json={"slug": slug, "name": "Fuzz"}, headers=auth(region_key))
    register(client, Tenant(id=0, slug=slug, keys={"editor": region_key}))
    return slug


@pytest.fixture(scope="module")
def live_schema(settings: ApiSettings, engine: Engine) -> Any:
    """The app as a deployment composes it: with redecoding, so the admin action is served, not refused."""
    return schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(settings, engine=engine, redecode=real_redecode)
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_generated_requests_are_answered_as_documented(
    live_schema: Any, fuzz_target: str, region_key: str, method: str, path: str
) -> None:
    operation = live_schema.find_operation_by_path(method, path)

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
    def answered_as_documented(case: Any) -> None:
        if case.path_parameters and "slug" in case.path_parameters:
            case.path_parameters["slug"] = fuzz_target
        case.call_and_validate(headers=auth(region_key), checks=CHECKS)

    answered_as_documented()
