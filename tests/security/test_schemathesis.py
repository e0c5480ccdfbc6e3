"""Schemathesis over the app's OpenAPI document, with every check it has.

Per operation, generated requests valid by the schema (positive) and invalid ones
(negative) go to the session's app on the real database, carrying a real key of a
town: its admin's. Path parameters name that town and resources of it (the
security suite's `World`), so requests reach the handlers instead of stopping at
404. Every check runs (server errors, status codes, content types, response
bodies and headers, negative data rejected, positive data accepted, auth not
ignored, …), except `max_response_time`: speed is measured in `bench/`, not here.

Where the app keeps rules that JSON Schema cannot state, the suite says so instead of
weakening a check for everyone: positive query values that break such a rule are
dropped before sending (`within_unstated_rules`), so are bodies with integers wider than 64 bits
(`holds_what_postgresql_cannot_store`), and the few bodies with such rules
are listed, with the rule, in `RULES_BEYOND_THE_SCHEMA`. A rule the schema could
state but does not (a pattern, a nullable field that is not) stays a failure.

The number of examples per operation is bounded and hypothesis has no deadline, so
the run takes a bounded time on a busy machine and never fails by the clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import available_timezones

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks, max_response_time, positive_data_acceptance
from starlette.testclient import TestClient

from api.routers.parking import MAX_BUCKETS
from api.schemas.moments import EARLIEST, LATEST
from domain.buckets import BUCKET_PATTERN, BUCKET_UNITS
from tests.api.data import auth
from tests.security.policy import POLICY, deployed_document
from tests.security.world import World

EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}

load_all_checks()
EVERY_CHECK = [check for check in CHECKS.get_all() if check is not max_response_time]

RULES_BEYOND_THE_SCHEMA = {
    ("POST", "/v1/municipalities/{slug}/alerts/rules"): "a rule's kind decides whether it takes a quantity",
    ("PUT", "/v1/municipalities/{slug}/soil/thresholds/{soil_type}"): "red lies at or below yellow",
    ("POST", "/v1/municipalities/{slug}/sharing"): "a municipality cannot share with itself",
    (
        "POST",
        "/v1/municipalities/{slug}/ingest-grants",
    ): "the source is not the owner itself",
    ("POST", "/v1/municipalities/{slug}/alerts/webhooks"): "the URL's host must resolve to public addresses "
    "only, and be https unless the installation allows http",
    ("POST", "/v1/municipalities/{slug}/devices/import"): "the file must be UTF-8 CSV text without NUL",
    ("POST", "/v1/codec-scripts"): "the script must load in the sandbox",
    ("PUT", "/v1/codec-scripts/{codec_id}"): "the script must load in the sandbox",
    ("POST", "/v1/codec-scripts/{codec_id}/test"): "the script must decode the payload",
}
"""Operations whose bodies obey rules that JSON Schema cannot state: a schema-valid body may
rightly be refused with 422, so `positive_data_acceptance` does not apply to them."""

ZONE_NAMES = frozenset(available_timezones())


def negatable(operation: dict[str, Any]) -> bool:
    """Whether a request to the operation can be made invalid at all, path parameters aside
    (they name real resources): a body, a key, or a parameter that is required or more
    than optional text. An operation without one has no negative cases to generate."""
    if operation.get("requestBody") or operation.get("security"):
        return True
    return any(
        parameter.get("required") or not any_text(parameter.get("schema", {}))
        for parameter in operation.get("parameters", [])
        if parameter["in"] != "path"
    )


def any_text(schema: dict[str, Any]) -> bool:
    """A schema every string (or nothing) satisfies."""
    constraints = {key: value for key, value in schema.items() if key not in ("title", "description")}
    options = constraints.pop("anyOf", [constraints])
    return not (constraints and "anyOf" in schema) and all(
        option in ({"type": "string"}, {"type": "null"}) for option in options
    )


def document_operations() -> list[tuple[str, str, GenerationMode]]:
    """Each operation in both modes, negative where it is `negatable`."""
    document = deployed_document()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            found.append((method.upper(), path, GenerationMode.POSITIVE))
            if negatable(operation):
                found.append((method.upper(), path, GenerationMode.NEGATIVE))
    return found


def _moment(text: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None and EARLIEST <= moment <= LATEST else None


def within_unstated_rules(query: dict[str, Any]) -> None:
    """Drop optional query values that break rules the schema does not state, so that a
    positive case stays one the app must accept: a cursor the API never handed out (it is
    opaque), a time outside 1970 to 2200 or a start not before the end, a zone name that
    is not in the IANA database, a bucket width giving more buckets than the app serves."""
    query.pop("cursor", None)
    if "tz" in query and query["tz"] not in ZONE_NAMES:
        del query["tz"]
    if "since" in query and _moment(query["since"]) is None:
        del query["since"]
    start, end = _moment(query.get("start")), _moment(query.get("end"))
    if (
        ("start" in query and start is None)
        or ("end" in query and end is None)
        or (start is not None and end is not None and start >= end)
    ):
        query.pop("start", None)
        query.pop("end", None)
        start = end = None
    bucket = str(query.get("bucket", "1h"))  # the occupancy's default width
    if re.fullmatch(BUCKET_PATTERN, bucket):
        until = end or datetime.now(UTC)
        span = until - (start or until - timedelta(days=1))
        if span / (int(bucket[:-1]) * BUCKET_UNITS[bucket[-1]]) > MAX_BUCKETS:
            for name in ("bucket", "start", "end"):
                query.pop(name, None)


def only_typed_as_text(case: Any) -> bool:
    """Whether a negative case is a multipart form whose parts merely have another JSON type
    than the schema names: a form part is bytes on the wire whatever its type, so `false`
    as the file arrives as the five bytes of a valid file. Such a case breaks nothing the
    app could see; other faults (a part missing, garbage framing) are still sent."""
    return (
        str(case.media_type or "").startswith("multipart/")
        and isinstance(case.body, dict)
        and "file" in case.body
        and any(not isinstance(value, str | bytes) for value in case.body.values())
    )


def holds_what_postgresql_cannot_store(value: object) -> bool:
    """Whether a body holds an integer literal outside 64 bits, which the app refuses (it
    stores JSON in PostgreSQL's jsonb with its numbers as written). JSON Schema cannot say
    so: its `integer` is any number without a fraction, `1e30` as much as the literal, and
    free JSON such as device metadata has no type to bound. A positive case with one is
    not sent, the rest of the body is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**63
    if isinstance(value, str):
        # PostgreSQL stores no NUL character in text or jsonb, and free JSON has no schema to say so.
        return "\x00" in value
    if isinstance(value, dict):
        if any("\x00" in key for key in value):
            return True
        return any(holds_what_postgresql_cannot_store(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_what_postgresql_cannot_store(item) for item in value)
    return False


OPERATIONS = document_operations()


@pytest.fixture(scope="module")
def live_schema(probe: TestClient) -> Any:
    """The document as the session's app serves it, with requests going to that app."""
    return schemathesis.openapi.from_asgi("/openapi.json", probe.app)


def test_every_check_is_used() -> None:
    """The suite runs what schemathesis checks, so a check added by an upgrade is used too."""
    names = {check.__name__ for check in EVERY_CHECK}
    assert {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "ignored_auth",
    } <= names


@pytest.mark.parametrize(
    ("method", "path", "mode"), OPERATIONS, ids=[f"{m} {p} {mode.value}" for m, p, mode in OPERATIONS]
)
def test_generated_requests_are_answered_as_documented(
    live_schema: Any, world: World, method: str, path: str, mode: GenerationMode
) -> None:
    operation = live_schema.find_operation_by_path(method, path)
    policy = POLICY[(method, path)]
    path_parameters = {
        parameter.name: world.own.slug
        if parameter.name == "slug"
        else world.value(policy.kind_of(parameter.name), world.own)
        for parameter in operation.path_parameters
    }
    key = auth(world.own.keys["admin"])
    checks = EVERY_CHECK
    if (method, path) in RULES_BEYOND_THE_SCHEMA:
        checks = [check for check in EVERY_CHECK if check is not positive_data_acceptance]
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @given(case=strategy)
    @settings(max_examples=EXAMPLES[mode], deadline=None, suppress_health_check=list(HealthCheck))
    def answered_as_documented(case: Any) -> None:
        if mode is GenerationMode.POSITIVE and case.query:
            within_unstated_rules(case.query)
        if mode is GenerationMode.NEGATIVE:
            assume(not only_typed_as_text(case))
        else:
            assume(not holds_what_postgresql_cannot_store(case.body))
        case.call_and_validate(headers=key, checks=checks)

    answered_as_documented()
