"""JS codec scripts through HTTP: register, list, read, try, replace, delete; sandbox errors; roles.

The scripts are the project's own, including hostile ones. Codec ids are unique per
test, since the session's database and app are shared.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings
from decoders import CodecRegistry
from decoders.javascript import SandboxLimits
from storage.codec_scripts import ScriptFields, create_script
from tests.api.data import Tenant, auth

THERMOMETER = """\
// A probe sending a signed 16-bit temperature in 0.1 degC, then a battery percentage.
function decodeUplink(input) {
  var b = input.bytes;
  if (b.length < 3) {
    return { errors: ["expected 3 bytes, got " + b.length] };
  }
  var warnings = b[2] < 10 ? ["battery low"] : [];
  return { data: { temperature: ((b[0] << 8 | b[1]) << 16 >> 16) / 10, battery: b[2] }, warnings: warnings };
}
"""

V3_COUNTER = """\
function Decode(fPort, bytes, variables) {
  if (fPort !== 2) {
    throw new Error("unexpected fPort " + fPort);
  }
  return { count: bytes[0] };
}
"""

# Loops for ever on fPort 99 only, so the same codec shows that it recovers afterwards.
HOSTILE = """\
function decodeUplink(input) {
  if (input.fPort === 99) {
    while (true) {}
  }
  return { data: { first: input.bytes[0] } };
}
"""


@pytest.fixture
def new_codec_id(client: TestClient, region_key: str) -> Iterator[Callable[[], str]]:
    """Fresh codec ids; their scripts are deleted afterwards, so no later app of the session
    loads them (and no isolate outlives the test)."""
    made: list[str] = []

    def make() -> str:
        made.append(f"test-{uuid.uuid4().hex[:8]}/probe-codec")
        return made[-1]

    yield make
    for codec_id in made:
        client.delete(f"/v1/codec-scripts/{codec_id}", headers=auth(region_key))


def body(codec_id: str, script: str = THERMOMETER, **overrides: Any) -> dict[str, Any]:
    return {
        "codec_id": codec_id,
        "style": "decodeUplink",
        "script": script,
        "description": "Thermometer",
        "devices": ["TP-1"],
        "use_case": "environment",
    } | overrides


def register(client: TestClient, headers: dict[str, str], codec_id: str, **overrides: Any) -> None:
    response = client.post("/v1/codec-scripts", json=body(codec_id, **overrides), headers=headers)
    assert response.status_code == 201, response.text


def try_payload(client: TestClient, codec_id: str, headers: dict[str, str], f_port: int, hex_: str) -> Any:
    return client.post(
        f"/v1/codec-scripts/{codec_id}/test", json={"f_port": f_port, "payload_hex": hex_}, headers=headers
    )


def sources(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    listed = client.get("/v1/codecs", headers=headers)
    assert listed.status_code == 200
    return {codec["codec_id"]: codec["source"] for codec in listed.json()}


def test_register_list_read_try_replace_delete(
    client: TestClient, tenant: Tenant, neighbour: Tenant, new_codec_id: Callable[[], str]
) -> None:
    codec_id = new_codec_id()
    admin = tenant.headers("admin")
    created = client.post("/v1/codec-scripts", json=body(codec_id), headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/v1/codec-scripts/{codec_id}"
    assert created.json()["owner_municipality"] == tenant.slug
    assert created.json()["script_bytes"] == len(THERMOMETER)
    assert sources(client, neighbour.headers("viewer"))[codec_id] == "javascript"

    mine = {
        s["codec_id"]: s for s in client.get("/v1/codec-scripts", headers=tenant.headers("viewer")).json()
    }
    assert (mine[codec_id]["owner_municipality"], mine[codec_id]["may_change"]) == (tenant.slug, False)
    assert "script" not in mine[codec_id]
    theirs = {
        s["codec_id"]: s for s in client.get("/v1/codec-scripts", headers=neighbour.headers("admin")).json()
    }
    assert (theirs[codec_id]["owner_municipality"], theirs[codec_id]["may_change"]) == (None, False)
    detail = client.get(f"/v1/codec-scripts/{codec_id}", headers=neighbour.headers("viewer")).json()
    assert (detail["script"], detail["devices"], detail["use_case"]) == (THERMOMETER, ["TP-1"], "environment")

    tried = try_payload(client, codec_id, tenant.headers("editor"), 1, "00eb05")
    assert tried.status_code == 200, tried.text
    assert tried.json()["decoded"] == {"temperature": 23.5, "battery": 5}
    assert tried.json()["warnings"] == ["battery low"]
    readings = {r["quantity"]: r for r in tried.json()["readings"]}
    assert readings["temperature"]["value"] == 23.5
    assert readings["temperature"]["quality"] == "good"
    refused = try_payload(client, codec_id, tenant.headers("editor"), 1, "00")
    assert refused.status_code == 422
    assert "expected 3 bytes, got 1" in refused.json()["detail"]

    colder = THERMOMETER.replace("/ 10", "/ 10 - 1")
    replaced = client.put(
        f"/v1/codec-scripts/{codec_id}", json={"script": colder, "use_case": "environment"}, headers=admin
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["devices"] == []
    assert try_payload(client, codec_id, admin, 1, "00eb50").json()["decoded"]["temperature"] == 22.5

    assert client.delete(f"/v1/codec-scripts/{codec_id}", headers=admin).status_code == 204
    assert client.get(f"/v1/codec-scripts/{codec_id}", headers=admin).status_code == 404
    assert try_payload(client, codec_id, admin, 1, "00eb50").status_code == 404
    assert codec_id not in sources(client, admin)
    assert client.delete(f"/v1/codec-scripts/{codec_id}", headers=admin).status_code == 404
    register(client, admin, codec_id)  # the id is free again


def test_a_script_that_does_not_load_is_refused_with_message_and_line(
    client: TestClient, tenant: Tenant, new_codec_id: Callable[[], str]
) -> None:
    codec_id = new_codec_id()
    broken = "function decodeUplink(input) {\n  var x = 1;\n  return { data: { x: x } ;\n}\n"
    response = client.post("/v1/codec-scripts", json=body(codec_id, broken), headers=tenant.headers("admin"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "SyntaxError" in response.json()["detail"]
    assert "(line 3)" in response.json()["detail"]
    thrown = "var table = [1, 2];\nthrow new RangeError('table too short');\n"
    response = client.post("/v1/codec-scripts", json=body(codec_id, thrown), headers=tenant.headers("admin"))
    assert response.status_code == 422
    assert "RangeError: table too short (line 2)" in response.json()["detail"]
    assert client.get(f"/v1/codec-scripts/{codec_id}", headers=tenant.headers("admin")).status_code == 404

    register(client, tenant.headers("admin"), codec_id)
    response = client.put(
        f"/v1/codec-scripts/{codec_id}",
        json={"script": "function decodeUplink( {"},
        headers=tenant.headers("admin"),
    )
    assert response.status_code == 422
    assert "SyntaxError" in response.json()["detail"]
    # The stored script is the one that loaded.
    assert try_payload(client, codec_id, tenant.headers("admin"), 1, "00eb05").status_code == 200


def test_a_chirpstack_v3_script_and_its_exceptions(
    client: TestClient, tenant: Tenant, new_codec_id: Callable[[], str]
) -> None:
    codec_id = new_codec_id()
    register(
        client, tenant.headers("admin"), codec_id, script=V3_COUNTER, style="Decode", use_case="counting"
    )
    assert try_payload(client, codec_id, tenant.headers("editor"), 2, "07").json()["decoded"] == {"count": 7}
    failed = try_payload(client, codec_id, tenant.headers("editor"), 3, "07")
    assert failed.status_code == 422
    assert "Error: unexpected fPort 3 (line 3)" in failed.json()["detail"]


def test_a_script_of_256_kb_and_the_size_limit(
    client: TestClient, tenant: Tenant, new_codec_id: Callable[[], str]
) -> None:
    table = ",".join(str(n * 7919 % 1000) for n in range(70_000))
    lookup = "function decodeUplink(input) { return { data: { v: TABLE[input.bytes[0]] } }; }\n"
    big = f"var TABLE = [{table}];\n{lookup}"
    assert len(big) >= 256 * 1024
    codec_id = new_codec_id()
    register(client, tenant.headers("admin"), codec_id, script=big)
    assert try_payload(client, codec_id, tenant.headers("editor"), 1, "03").json()["decoded"] == {"v": 757}
    assert (
        client.get(f"/v1/codec-scripts/{codec_id}", headers=tenant.headers("viewer")).json()["script"] == big
    )

    too_big = "//" + "x" * (2 * 1024 * 1024) + "\n" + THERMOMETER
    response = client.post(
        "/v1/codec-scripts", json=body(new_codec_id(), too_big), headers=tenant.headers("admin")
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "script"]


def test_an_endless_script_hits_the_time_limit_and_the_api_stays_responsive(
    settings: ApiSettings, engine: Engine, tenant: Tenant, new_codec_id: Callable[[], str]
) -> None:
    """Other requests are answered while a script loops: shown by order, not by the clock. The app
    gets a time limit long enough that a loaded machine still answers five listings within it."""
    limits = SandboxLimits(call_time_limit_s=5.0)
    with TestClient(
        create_app(settings, engine=engine, codecs=CodecRegistry(sandbox_limits=limits))
    ) as client:
        codec_id = new_codec_id()
        register(client, tenant.headers("admin"), codec_id, script=HOSTILE)
        answers: list[Any] = []
        worker = threading.Thread(
            target=lambda: answers.append(try_payload(client, codec_id, tenant.headers("editor"), 99, "01"))
        )
        worker.start()
        time.sleep(0.2)
        for _ in range(5):
            assert client.get("/v1/codec-scripts", headers=tenant.headers("viewer")).status_code == 200
            assert worker.is_alive(), "a listing waited for the endless script"
        worker.join(timeout=60)
        assert answers[0].status_code == 422
        assert "time limit" in answers[0].json()["detail"]
        # A fresh isolate serves the next call.
        assert try_payload(client, codec_id, tenant.headers("editor"), 1, "2a").json()["decoded"] == {
            "first": 42
        }


def test_who_may_register_change_and_delete(
    client: TestClient, tenant: Tenant, neighbour: Tenant, region_key: str, new_codec_id: Callable[[], str]
) -> None:
    codec_id = new_codec_id()
    for role in ("viewer", "editor", "technician"):
        response = client.post("/v1/codec-scripts", json=body(codec_id), headers=tenant.headers(role))
        assert response.status_code == 403, role
    assert client.post("/v1/codec-scripts", json=body(codec_id)).status_code == 401
    register(client, tenant.headers("admin"), codec_id)

    replacement = {"script": THERMOMETER}
    for headers in (neighbour.headers("admin"), tenant.headers("editor")):
        assert (
            client.put(f"/v1/codec-scripts/{codec_id}", json=replacement, headers=headers).status_code == 403
        )
        assert client.delete(f"/v1/codec-scripts/{codec_id}", headers=headers).status_code == 403
    region = auth(region_key)
    listed = {s["codec_id"]: s for s in client.get("/v1/codec-scripts", headers=region).json()}
    assert (listed[codec_id]["owner_municipality"], listed[codec_id]["may_change"]) == (tenant.slug, True)
    assert client.put(f"/v1/codec-scripts/{codec_id}", json=replacement, headers=region).status_code == 200
    assert client.delete(f"/v1/codec-scripts/{codec_id}", headers=region).status_code == 204

    regional = new_codec_id()
    register(client, region, regional)
    assert client.get(f"/v1/codec-scripts/{regional}", headers=region).json()["owner_municipality"] is None
    assert client.delete(f"/v1/codec-scripts/{regional}", headers=tenant.headers("admin")).status_code == 403


def test_ids_that_collide_or_are_malformed(
    client: TestClient, tenant: Tenant, new_codec_id: Callable[[], str]
) -> None:
    admin = tenant.headers("admin")
    builtin = client.post("/v1/codec-scripts", json=body("milesight-iot/em500-udl-codec"), headers=admin)
    assert builtin.status_code == 409
    assert "built-in" in builtin.json()["detail"]
    codec_id = new_codec_id()
    register(client, admin, codec_id)
    assert client.post("/v1/codec-scripts", json=body(codec_id), headers=admin).status_code == 409
    for malformed in ("no-slash", "Upper/Case", "a/b/c", "vendor/"):
        assert client.post("/v1/codec-scripts", json=body(malformed), headers=admin).status_code == 422, (
            malformed
        )
    assert client.get("/v1/codec-scripts/no-slash", headers=admin).status_code == 422


def test_a_device_that_uses_a_script_keeps_it(
    client: TestClient, tenant: Tenant, new_codec_id: Callable[[], str]
) -> None:
    codec_id = new_codec_id()
    register(client, tenant.headers("admin"), codec_id)
    device = {
        "dev_eui": uuid.uuid4().hex[:16],
        "name": "Probe",
        "codec_id": codec_id,
        "decoder_source": "javascript",
    }
    assert (
        client.post(tenant.url("/devices"), json=device, headers=tenant.headers("editor")).status_code == 201
    )
    response = client.delete(f"/v1/codec-scripts/{codec_id}", headers=tenant.headers("admin"))
    assert response.status_code == 409
    assert "1 device" in response.json()["detail"]
    client.delete(tenant.url(f"/devices/{device['dev_eui']}"), headers=tenant.headers("editor"))
    assert client.delete(f"/v1/codec-scripts/{codec_id}", headers=tenant.headers("admin")).status_code == 204


def test_stored_scripts_are_loaded_at_start_and_followed(
    client: TestClient, tenant: Tenant, engine: Engine, settings: ApiSettings, new_codec_id: Callable[[], str]
) -> None:
    codec_id = new_codec_id()
    register(client, tenant.headers("admin"), codec_id)
    registry = CodecRegistry()
    with TestClient(create_app(settings, engine=engine, codecs=registry)) as other:
        assert registry.knows(codec_id)  # loaded by the lifespan, before any request
        # A script another process registers is seen without a restart.
        later = new_codec_id()
        with Session(engine) as session:
            create_script(session, later, ScriptFields("decodeUplink", HOSTILE), owner_municipality_id=None)
            session.commit()
        assert sources(other, tenant.headers("viewer"))[later] == "javascript"
        assert try_payload(other, later, tenant.headers("editor"), 1, "05").json()["decoded"] == {"first": 5}
    registry.close()


# A The Things Network v2 codec as vendors ship it: Decoder(bytes, port) returns the object.
TTN_V2_PROBE = """\
function Decoder(bytes, port) {
  var decoded = {};
  if (port === 1) {
    decoded.temperature = ((bytes[0] << 24 >> 16) | bytes[1]) / 10;
    decoded.battery = bytes[2];
  }
  return decoded;
}
"""


@pytest.mark.parametrize("style", ["Decoder", "decodeUplink"])
def test_a_legacy_ttn_v2_codec_registers_and_runs(
    client: TestClient, tenant: Tenant, new_codec_id: Callable[[], str], style: str
) -> None:
    codec_id = new_codec_id()
    register(client, tenant.headers("admin"), codec_id, script=TTN_V2_PROBE, style=style)
    tried = try_payload(client, codec_id, tenant.headers("editor"), 1, "00eb5a")
    assert tried.status_code == 200, tried.text
    assert tried.json()["decoded"] == {"temperature": 23.5, "battery": 90}
    assert {r["quantity"] for r in tried.json()["readings"]} >= {"temperature", "battery"}


def test_a_script_without_the_function_its_style_calls_is_refused_at_upload(
    client: TestClient, tenant: Tenant, new_codec_id: Callable[[], str]
) -> None:
    codec_id = new_codec_id()
    refused = client.post(
        "/v1/codec-scripts",
        json=body(codec_id, "function decode(bytes) { return {}; }"),
        headers=tenant.headers("admin"),
    )
    assert refused.status_code == 422
    assert "script defines no function decodeUplink(input)" in refused.json()["detail"]
    mismatched = client.post(
        "/v1/codec-scripts",
        json=body(codec_id, TTN_V2_PROBE, style="Decode"),
        headers=tenant.headers("admin"),
    )
    assert mismatched.status_code == 422
    assert "register it in the style Decoder" in mismatched.json()["detail"]
