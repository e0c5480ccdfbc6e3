"""Hostile requests: bodies too large to hold, and inputs that used to end in a bare 500.

Body limits are probed twice: through the test client (every answer is a problem
document) and against a real `lorakom api` process over raw sockets, where what the
server reads, and how much memory it takes, can be watched from outside.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings
from cli.backing_services import free_port, port_answers
from storage.api_keys import Role, create_api_key
from storage.database import create_database_engine
from storage.municipalities import create_municipality
from storage.schema import upgrade_database
from tests.api.data import Tenant, auth, device_body, register, unique_slug
from tests.conftest import create_database, drop_database

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"
MIB = 1024 * 1024
HOSTILE_BODY_BYTES = 57 * MIB
"""The size of the body that once took the API from 302 MB to 1,810 MB before its 401."""


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


# --- body limits through the test client ---------------------------------------------------


def test_a_declared_length_over_the_limit_is_refused_with_413(client: TestClient, tenant: Tenant) -> None:
    padded = device_body(name="x" * (100 * 1024))
    response = client.post(tenant.url("/devices"), json=padded, headers=tenant.headers("editor"))
    body = assert_problem(response, 413)
    assert "65536 bytes" in body["detail"]


def test_a_keyless_large_body_is_refused_before_it_is_read(client: TestClient, tenant: Tenant) -> None:
    padded = device_body(name="x" * (100 * 1024))
    assert_problem(client.post(tenant.url("/devices"), json=padded), 413)
    # within the limit, the missing key is what is refused: a 401 before the body is parsed
    assert_problem(client.post(tenant.url("/devices"), content=b"{not json"), 401)
    wrong = client.post(tenant.url("/devices"), content=b"{not json", headers=auth("lk_abc_def"))
    assert_problem(wrong, 401)
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_chunked_body_is_counted_and_cut_at_the_limit(client: TestClient, tenant: Tenant) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(tenant.url("/devices"), content=chunks(), headers=tenant.headers("editor"))
    assert_problem(response, 413)


def test_routes_that_take_files_or_scripts_have_larger_limits(client: TestClient, tenant: Tenant) -> None:
    csv_text = "dev_eui,name\n" + "".join(f"{n:016x},Sensor {n} {'x' * 100}\n" for n in range(1000))
    assert len(csv_text) > 100 * 1024
    imported = client.post(
        tenant.url("/devices/import"),
        params={"dry_run": "true"},
        files={"file": ("devices.csv", csv_text.encode(), "text/csv")},
        headers=tenant.headers("editor"),
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["rows"] == 1000


# --- body limits against a real server ------------------------------------------------------


@dataclass(frozen=True)
class Served:
    port: int
    pid: int
    slug: str
    editor_key: str

    def rss_bytes(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for process {self.pid}")


LORAKOM = "import sys; from cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def served(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`lorakom api` in a process of its own, on a database of its own with one town.

    Not the session's database: other tests leave webhook subscriptions in it sealed under
    keys of their own (one on purpose, a secret no key opens), and `lorakom api` rightly
    refuses to start over secrets it cannot open. Its output is kept, so that a server
    that stops while starting says why.
    """
    url = create_database(postgres_server, prefix="lorakom_served")
    upgrade_database(url)
    slug = unique_slug("served")
    engine = create_database_engine(url, pool_size=1)
    try:
        with Session(engine) as session:
            create_municipality(session, slug=slug, name="Served", district=None)
            editor_key, _ = create_api_key(session, municipality_slug=slug, role=Role.EDITOR, name="editor")
            session.commit()
    finally:
        engine.dispose()
    port = free_port()
    env = os.environ | {"LORAKOM_DB_URL": url}
    output = tmp_path_factory.mktemp("served") / "lorakom-api.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", LORAKOM, "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        started = time.monotonic()
        while not port_answers("127.0.0.1", port):
            if process.poll() is not None:
                pytest.fail(f"lorakom api stopped while starting:\n{output.read_text(errors='replace')}")
            assert time.monotonic() - started < 120, "lorakom api did not start"
            time.sleep(0.1)
        yield Served(port, process.pid, slug, editor_key)
    finally:
        process.terminate()
        process.wait(timeout=30)
        drop_database(postgres_server, url)


def exchange(port: int, head: str, body: Iterable[bytes] = ()) -> tuple[int, bytes]:
    """Send a request by hand (the body from a thread, so that a server answering before it
    has read the body is heard) and return the status and body of the answer."""
    sock = socket.create_connection(("127.0.0.1", port))
    # A guard against hanging forever, not a speed target: a server waiting for a body
    # that is never sent would not answer at all.
    sock.settimeout(120)

    def feed() -> None:
        try:
            sock.sendall(head.encode())
            for chunk in body:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed the connection without reading it all

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        return response.status, response.read()
    finally:
        response.close()
        sock.close()
        feeder.join()


def post_head(path: str, *, length: int | None, key: str | None = None) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    return "\r\n".join(lines) + "\r\n\r\n"


def hostile_json(size: int) -> Iterator[bytes]:
    """A JSON document of `size` bytes that parses into millions of objects."""
    step = b"[0]," * (MIB // 4)
    yield b'{"name": "x", "metadata": {"k": ['
    sent = 33
    while sent + len(step) + 2 <= size:
        yield step
        sent += len(step)
    yield b"0" * (size - sent - 3) + b"]}}"


def chunked(parts: Iterable[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def test_a_real_server_refuses_a_keyless_57_mb_body_without_growing(served: Served) -> None:
    path = f"/v1/municipalities/{served.slug}/devices"
    assert exchange(served.port, post_head(path, length=2) + "{}")[0] == 401  # warm up
    before = served.rss_bytes()
    status, _ = exchange(
        served.port, post_head(path, length=HOSTILE_BODY_BYTES), hostile_json(HOSTILE_BODY_BYTES)
    )
    assert status == 413
    chunked_status, _ = exchange(
        served.port, post_head(path, length=None), chunked(hostile_json(HOSTILE_BODY_BYTES))
    )
    assert chunked_status == 401
    keyed = served.editor_key
    counted, _ = exchange(
        served.port, post_head(path, length=None, key=keyed), chunked(hostile_json(HOSTILE_BODY_BYTES))
    )
    assert counted == 413
    grown = served.rss_bytes("VmHWM") - before
    assert grown < 32 * MIB, f"the API grew by {grown / MIB:.0f} MiB"


def test_a_real_server_checks_the_key_before_reading_the_body(served: Served) -> None:
    """Only the head is sent: a server that waited for the body would never answer."""
    path = f"/v1/municipalities/{served.slug}/devices"
    assert exchange(served.port, post_head(path, length=60_000))[0] == 401
    assert exchange(served.port, post_head(path, length=60_000, key="lk_abc_def"))[0] == 401
    assert exchange(served.port, post_head(path, length=None))[0] == 401
    assert exchange(served.port, post_head(path, length=HOSTILE_BODY_BYTES, key=served.editor_key))[0] == 413


# --- no bare 500s ---------------------------------------------------------------------------


def failing_router() -> APIRouter:
    router = APIRouter()

    @router.get("/failing")
    def fail() -> None:
        raise RuntimeError("connection string postgresql://secret@db/internal")

    return router


def test_an_unforeseen_error_is_a_problem_with_a_correlation_id(
    settings: ApiSettings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, engine=engine, extra_routers=[failing_router()])
    with TestClient(app, raise_server_exceptions=False) as client:
        with caplog.at_level(logging.ERROR, logger="api.problems"):
            echoed = client.get("/v1/failing", headers={"X-Request-ID": "trace-4711"})
        made = client.get("/v1/failing", headers={"X-Request-ID": "no good\tid " + "x" * 80})
    body = assert_problem(echoed, 500)
    assert body["request_id"] == "trace-4711"
    assert "secret" not in echoed.text
    assert "RuntimeError" not in echoed.text
    logged = [record for record in caplog.records if "trace-4711" in record.getMessage()]
    assert logged
    assert logged[0].exc_info is not None
    generated = assert_problem(made, 500)["request_id"]
    assert len(generated) == 32
    assert int(generated, 16) >= 0


def test_every_answer_carries_a_request_id(client: TestClient) -> None:
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "lb-1"}).headers["X-Request-ID"] == "lb-1"
    assert (
        assert_problem(client.get("/v1/nowhere", headers={"X-Request-ID": "lb-2"}), 404)["request_id"]
        == "lb-2"
    )


def test_a_body_that_is_not_json_is_a_problem(client: TestClient, tenant: Tenant) -> None:
    response = client.post(
        tenant.url("/devices"),
        content=json.dumps(device_body())[:-5],
        headers=tenant.headers("editor") | {"Content-Type": "application/json"},
    )
    assert_problem(response, 422)


def cursor_of(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


INTEGER_LISTS = ["/devices", "/sharing", "/api-keys", "/alerts/rules", "/readings/latest", "/soil/sensors"]
BIGINT_LISTS = ["/alerts/events"]
CURSOR_CASES = [
    *((tail, cursor_of(2147483648)) for tail in INTEGER_LISTS),
    *((tail, cursor_of(-2147483649)) for tail in INTEGER_LISTS),
    *((tail, cursor_of(2**63)) for tail in INTEGER_LISTS + BIGINT_LISTS),
    *((tail, cursor_of(0)) for tail in INTEGER_LISTS + BIGINT_LISTS),
]


@pytest.mark.parametrize(("tail", "cursor"), CURSOR_CASES)
def test_a_cursor_out_of_range_is_refused_not_a_500(
    client: TestClient, tenant: Tenant, tail: str, cursor: str
) -> None:
    response = client.get(tenant.url(tail), params={"cursor": cursor}, headers=tenant.headers("admin"))
    assert_problem(response, 422)


def test_a_history_cursor_out_of_range_is_refused_not_a_500(client: TestClient, tenant: Tenant) -> None:
    dev_eui = register(client, tenant)["dev_eui"]
    for cursor in (
        cursor_of("2026-01-01T00:00:00+00:00", 2147483648, "temperature"),
        cursor_of("9999-12-31T23:59:59-14:00"),
    ):
        response = client.get(
            tenant.url("/readings/history"),
            params={"dev_eui": dev_eui, "cursor": cursor},
            headers=tenant.headers("viewer"),
        )
        assert_problem(response, 422)


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"k": 18446744073709551616}, "integers"),
        ({"k": -(2**63) - 1}, "integers"),
        ({"k": "a\u0000b"}, "NUL"),
        ({"a\u0000b": 1}, "NUL"),
        ({"k": ["\ud800"]}, "surrogates"),
        ({"k": "x" * 9000}, "bytes"),
        ({f"k{n}": n for n in range(101)}, "keys"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "levels"),
    ],
)
def test_hostile_metadata_is_a_clear_422(
    client: TestClient, tenant: Tenant, metadata: dict[str, Any], reason: str
) -> None:
    body = device_body(metadata=metadata)
    created = client.post(
        tenant.url("/devices"),
        content=json.dumps(body),  # the standard encoder writes what httpx's refuses (a lone surrogate)
        headers=tenant.headers("editor") | {"Content-Type": "application/json"},
    )
    problem = assert_problem(created, 422)
    assert reason in str(problem["errors"])
    registered = register(client, tenant)
    patched = client.patch(
        tenant.url(f"/devices/{registered['dev_eui']}"),
        content=json.dumps({"metadata": metadata}),
        headers=tenant.headers("editor") | {"Content-Type": "application/json"},
    )
    assert reason in str(assert_problem(patched, 422)["errors"])


def test_ordinary_metadata_is_kept_as_given(client: TestClient, tenant: Tenant) -> None:
    metadata = {"bin_depth_mm": 1200.0, "asset": "A-17", "contract": {"until": 2030, "vendor": ["x", "y"]}}
    shown = register(client, tenant, metadata=metadata)["metadata"]
    assert {name: value for name, value in shown.items() if value is not None} == metadata


def test_readyz_answers_503_at_once_while_the_pool_is_exhausted(
    settings: ApiSettings, migrated_db_url: str
) -> None:
    engine = create_database_engine(migrated_db_url, pool_size=1)  # one pooled, two overflow
    with TestClient(create_app(settings, engine=engine)) as client:
        held = [engine.connect() for _ in range(3)]
        try:
            busy = client.get("/readyz")
        finally:
            for connection in held:
                connection.close()
        ready = client.get("/readyz")
    engine.dispose()
    assert_problem(busy, 503)
    assert "Retry-After" in busy.headers
    assert ready.status_code == 200


def test_an_authorization_header_that_is_no_bearer_is_refused_not_passed_over(
    client: TestClient, tenant: Tenant
) -> None:
    """A malformed Authorization header beside a valid X-API-Key was ignored and the request
    served: contradicting credentials are refused (401), whichever of them is valid."""
    valid = tenant.keys["viewer"]
    for authorization in ("Basic dXNlcjpwdw==", "Bearer", "lk_abc_def"):
        response = client.get(
            tenant.url("/devices"), headers={"Authorization": authorization, "X-API-Key": valid}
        )
        assert_problem(response, 401)
    assert client.get(tenant.url("/devices"), headers={"X-API-Key": valid}).status_code == 200


def test_a_single_valued_query_parameter_given_twice_is_refused(client: TestClient, tenant: Tenant) -> None:
    """`?tag=a&tag=b` was answered as `?tag=b`: the schema allows one value, so two are a 422."""
    headers = tenant.headers("viewer")
    twice = client.get(tenant.url("/devices"), params=[("tag", "a"), ("tag", "b")], headers=headers)
    problem = assert_problem(twice, 422)
    assert problem["errors"][0]["loc"] == ["query", "tag"]
    assert client.get(tenant.url("/devices"), params={"tag": "a"}, headers=headers).status_code == 200
    # Parameters declared as lists keep taking several values.
    many = [("dev_eui", "0000000000000001"), ("quantity", "fill_percent"), ("quantity", "battery")]
    listed = client.get(tenant.url("/readings/history"), params=many, headers=headers)
    assert "repeated" not in listed.text, listed.text
    assert listed.status_code != 422, listed.text


def date_time_query_parameters(client: TestClient) -> list[tuple[str, str, str]]:
    """(method, path, parameter) for every query parameter the API documents as a date-time."""
    found = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                variants = parameter["schema"].get("anyOf", [parameter["schema"]])
                if parameter["in"] == "query" and any(v.get("format") == "date-time" for v in variants):
                    found.append((method, path, parameter["name"]))
    return found


@pytest.mark.parametrize("number", ["0", "1700000000", "1.6541754080441582e-74", "-5"])
def test_a_number_is_no_date_time_on_any_route(client: TestClient, tenant: Tenant, number: str) -> None:
    """`?end=1.6e-74` was read as seconds since 1970 and answered; the schema asks for a date-time."""
    found = date_time_query_parameters(client)
    assert len(found) >= 5, found  # readings, parking, waste and redecode take times
    for method, path, name in found:
        url = path.replace("{slug}", tenant.slug).replace("{dev_eui}", "0000000000000001")
        url = url.replace("{zone}", "zone-a").replace("{device}", "0000000000000001")
        assert "{" not in url, url
        params = {name: number, "dev_eui": "0000000000000001"}
        answer = client.request(method.upper(), url, params=params, headers=tenant.headers("admin"))
        problem = assert_problem(answer, 422)
        assert ["query", name] in [error["loc"] for error in problem["errors"]], (method, url, problem)


def test_a_date_time_with_its_offset_is_taken(client: TestClient, tenant: Tenant) -> None:
    headers = tenant.headers("viewer")
    params = {
        "dev_eui": register(client, tenant)["dev_eui"],
        "start": "2026-05-01T00:00:00Z",
        "end": "2026-05-02T00:00:00+02:00",
    }
    assert client.get(tenant.url("/readings/history"), params=params, headers=headers).status_code == 200
    naive = client.get(
        tenant.url("/readings/history"), params={**params, "end": "2026-05-02T00:00:00"}, headers=headers
    )
    assert ["query", "end"] in [error["loc"] for error in assert_problem(naive, 422)["errors"]]


MISSPELT = {
    "boolean": ["1", "0", "yes", "on", "t", "True"],
    "integer": [" 5", "+5", "5_0", "1.0", "05"],
    "number": [" 5", "+5", "5_0", "5.", "nan"],
}
WELL_SPELT = {"boolean": "true", "integer": "5", "number": "5.5"}


def typed_query_parameters(client: TestClient) -> list[tuple[str, str, str, str]]:
    """(method, path, parameter, JSON type) for every boolean, integer or number in a query."""
    found = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                kind = parameter["schema"].get("type")
                if parameter["in"] == "query" and kind in MISSPELT:
                    found.append((method, path, parameter["name"], kind))
    return found


def test_a_query_value_is_spelt_as_the_schema_types_it_on_every_route(
    client: TestClient, tenant: Tenant
) -> None:
    """Pydantic read `?silent_only=yes` as true and `?limit=+5` as 5; the schema calls both invalid."""
    found = typed_query_parameters(client)
    assert {kind for *_, kind in found} == set(MISSPELT), found
    for method, path, name, kind in found:
        url = path.replace("{slug}", tenant.slug).replace("{zone}", "zone-a")
        if "{" in url:
            continue  # routes under a resource: the same dependency checks them, as the next line shows
        for value in MISSPELT[kind]:
            answer = client.request(
                method.upper(), url, params={name: value}, headers=tenant.headers("admin")
            )
            problem = assert_problem(answer, 422)
            assert ["query", name] in [error["loc"] for error in problem["errors"]], (method, url, value)
        answer = client.request(
            method.upper(), url, params={name: WELL_SPELT[kind]}, headers=tenant.headers("admin")
        )
        if answer.status_code == 422:
            assert ["query", name] not in [error["loc"] for error in answer.json().get("errors", [])], (
                url,
                answer.text,
            )
