"""Devices: CRUD, CSV import and export, unclaimed devices and claiming."""

from __future__ import annotations

import csv
import io
import time

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from api.app_services import services_of
from services.device_import import import_devices
from tests.api.data import (
    RegisteredHooks,
    Tenant,
    add_activity,
    device_body,
    device_id,
    new_dev_eui,
    register,
)


def given(metadata: dict[str, object]) -> dict[str, object]:
    return {name: value for name, value in metadata.items() if value is not None}


def test_register_normalises_the_dev_eui(client: TestClient, tenant: Tenant) -> None:
    compact = new_dev_eui()
    spelled = ":".join(compact[i : i + 2] for i in range(0, 16, 2)).upper()
    created = register(client, tenant, dev_eui=spelled)
    assert created["dev_eui"] == compact
    fetched = client.get(tenant.url(f"/devices/{spelled}"), headers=tenant.headers("viewer"))
    assert fetched.status_code == 200
    assert fetched.json() == created
    assert given(created["metadata"]) == {"bin_depth_mm": 1200.0, "sensor_offset_mm": 50.0}


@pytest.mark.parametrize(
    "overrides",
    [
        {"dev_eui": "70b3d57ed00012"},
        {"dev_eui": "zz00000000000000"},
        {"name": ""},
        {"use_case": "lighting"},
        {"latitude": 91.0},
        {"latitude": 48.0, "longitude": None},
        {"metadata": {"bin_depth_mm": -1}},
        {"metadata": {"expected_interval_s": "hourly"}},
        {"decoder_source": "magic"},
        {"name": "tab\there"},
    ],
)
def test_invalid_devices_answer_422_with_the_field(
    client: TestClient, tenant: Tenant, overrides: dict[str, object]
) -> None:
    response = client.post(
        tenant.url("/devices"), json=device_body(**overrides), headers=tenant.headers("editor")
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


def test_a_towns_own_metadata_keys_are_kept(client: TestClient, tenant: Tenant) -> None:
    body = device_body(metadata={"bin_depth_mm": 1200, "asset_number": "AW-2231", "planted_year": 2019})
    created = client.post(tenant.url("/devices"), json=body, headers=tenant.headers("editor"))
    assert created.status_code == 201, created.text
    fetched = client.get(
        tenant.url(f"/devices/{created.json()['dev_eui']}"), headers=tenant.headers("viewer")
    )
    metadata = fetched.json()["metadata"]
    assert metadata["asset_number"] == "AW-2231"
    assert metadata["planted_year"] == 2019
    assert metadata["bin_depth_mm"] == 1200


def test_a_dev_eui_registered_anywhere_is_a_conflict(
    client: TestClient, tenant: Tenant, neighbour: Tenant
) -> None:
    taken = register(client, neighbour)["dev_eui"]
    response = client.post(tenant.url("/devices"), json=device_body(taken), headers=tenant.headers("editor"))
    assert response.status_code == 409
    assert neighbour.slug not in response.text


def test_patch_changes_fields_and_updated_at(client: TestClient, tenant: Tenant) -> None:
    created = register(client, tenant)
    time.sleep(0.01)
    patched = client.patch(
        tenant.url(f"/devices/{created['dev_eui']}"),
        json={"name": "Bin Kirchplatz", "tags": ["kirche"], "metadata": {"bin_depth_mm": 900}},
        headers=tenant.headers("editor"),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["name"] == "Bin Kirchplatz"
    assert body["tags"] == ["kirche"]
    assert given(body["metadata"]) == {"bin_depth_mm": 900.0}
    assert body["codec_id"] == created["codec_id"]
    assert body["updated_at"] > created["updated_at"]


def test_patch_validates_the_result_as_a_whole(client: TestClient, tenant: Tenant) -> None:
    created = register(client, tenant)
    response = client.patch(
        tenant.url(f"/devices/{created['dev_eui']}"),
        json={"latitude": None},
        headers=tenant.headers("editor"),
    )
    assert response.status_code == 422


def test_delete_removes_the_device(client: TestClient, tenant: Tenant) -> None:
    created = register(client, tenant)
    url = tenant.url(f"/devices/{created['dev_eui']}")
    assert client.delete(url, headers=tenant.headers("editor")).status_code == 204
    assert client.get(url, headers=tenant.headers("viewer")).status_code == 404


@pytest.mark.parametrize("role", ["viewer", "technician"])
def test_readers_cannot_change_devices(client: TestClient, tenant: Tenant, role: str) -> None:
    created = register(client, tenant)
    url = tenant.url(f"/devices/{created['dev_eui']}")
    headers = tenant.headers(role)
    assert client.post(tenant.url("/devices"), json=device_body(), headers=headers).status_code == 403
    assert client.patch(url, json={"name": "x"}, headers=headers).status_code == 403
    assert client.delete(url, headers=headers).status_code == 403
    files = {"file": ("d.csv", b"dev_eui,name\n")}
    assert client.post(tenant.url("/devices/import"), files=files, headers=headers).status_code == 403
    assert client.get(url, headers=headers).status_code == 200


def test_list_filters_and_pages(client: TestClient, tenant: Tenant) -> None:
    made = [
        register(client, tenant, use_case="parking" if i % 2 else "waste", tags=[f"t{i % 3}"])
        for i in range(5)
    ]
    headers = tenant.headers("viewer")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(tenant.url("/devices"), params=params, headers=headers).json()
        seen += [item["dev_eui"] for item in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [device["dev_eui"] for device in made]
    parking = client.get(tenant.url("/devices"), params={"use_case": "parking"}, headers=headers).json()
    assert [item["dev_eui"] for item in parking["items"]] == [made[1]["dev_eui"], made[3]["dev_eui"]]
    tagged = client.get(tenant.url("/devices"), params={"tag": "t0"}, headers=headers).json()
    assert [item["dev_eui"] for item in tagged["items"]] == [made[0]["dev_eui"], made[3]["dev_eui"]]


def csv_file(text: str) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("devices.csv", text.encode(), "text/csv")}


def test_import_takes_good_rows_and_reports_bad_ones_by_line(
    client: TestClient, tenant: Tenant, neighbour: Tenant
) -> None:
    foreign = register(client, neighbour)["dev_eui"]
    good = [new_dev_eui() for _ in range(3)]
    text = (
        "dev_eui,name,use_case,latitude,longitude,tags,bin_depth_mm,expected_interval_s\n"
        f"{good[0]},Bin 1,waste,48.1,9.1,a;b,1200,600\n"
        "70b3d57ed00012,Too short,waste,,,,,\n"
        f"{good[1].upper()},Bin 2,waste,,,,,\n"
        f"{foreign},Not ours,waste,,,,,\n"
        f"{good[2]},Bin 3,lighting,,,,,\n"
        f"{good[1]},Bin 2 again,waste,,,,,\n"
        f"{new_dev_eui()},Half a place,waste,48.1,,,,\n"
    )
    response = client.post(
        tenant.url("/devices/import"), files=csv_file(text), headers=tenant.headers("editor")
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rows"] == 7
    assert report["created"] == 2
    assert [error["line"] for error in report["errors"]] == [3, 5, 6, 7, 8]
    assert "another municipality" in report["errors"][1]["message"]
    assert "repeats line 4" in report["errors"][3]["message"]
    device = client.get(tenant.url(f"/devices/{good[0]}"), headers=tenant.headers("viewer")).json()
    assert device["tags"] == ["a", "b"]
    assert given(device["metadata"]) == {"bin_depth_mm": 1200.0, "expected_interval_s": 600}


def test_import_is_idempotent_and_dry_run_writes_nothing(client: TestClient, tenant: Tenant) -> None:
    rows = [f"{new_dev_eui()},Sensor {i},soil,,,,loam" for i in range(25)]
    text = "dev_eui,name,use_case,latitude,longitude,tags,soil_type\n" + "\n".join(rows) + "\n"
    url = tenant.url("/devices/import")
    headers = tenant.headers("editor")
    dry = client.post(url, params={"dry_run": True}, files=csv_file(text), headers=headers).json()
    assert (dry["dry_run"], dry["created"]) == (True, 25)
    assert client.get(tenant.url("/devices"), headers=headers).json()["items"] == []
    first = client.post(url, files=csv_file(text), headers=headers).json()
    assert (first["created"], first["updated"], first["unchanged"]) == (25, 0, 0)
    again = client.post(url, files=csv_file(text), headers=headers).json()
    assert (again["created"], again["updated"], again["unchanged"], again["errors"]) == (0, 0, 25, [])
    changed = client.post(
        url, files=csv_file(text.replace("Sensor 3,", "Sensor drei,")), headers=headers
    ).json()
    assert (changed["created"], changed["updated"], changed["unchanged"]) == (0, 1, 24)


def test_import_reports_a_bad_header_on_line_1(client: TestClient, tenant: Tenant) -> None:
    text = "deveui,name,colour\n0011223344556677,x,red\n"
    report = client.post(
        tenant.url("/devices/import"), files=csv_file(text), headers=tenant.headers("editor")
    ).json()
    assert report["created"] == 0
    assert report["errors"][0]["line"] == 1
    assert "dev_eui" in report["errors"][0]["message"]
    assert "colour" in report["errors"][0]["message"]


def test_import_refuses_binary_and_oversized_files(client: TestClient, tenant: Tenant) -> None:
    headers = tenant.headers("editor")
    binary = {"file": ("x.csv", b"\xff\xfe\x00\x01", "text/csv")}
    assert client.post(tenant.url("/devices/import"), files=binary, headers=headers).status_code == 422
    huge = {"file": ("x.csv", b"a" * (services_of(client.app).settings.max_import_bytes + 1), "text/csv")}
    response = client.post(tenant.url("/devices/import"), files=huge, headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_export_round_trips_through_import(client: TestClient, tenant: Tenant) -> None:
    made = [
        register(client, tenant, tags=["a", "b"], metadata={"tree_id": f"T-{i}", "species": "Tilia"})
        for i in range(9)
    ]
    exported = client.get(tenant.url("/devices/export"), headers=tenant.headers("viewer"))
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["dev_eui"] for row in rows] == [device["dev_eui"] for device in made]
    assert rows[0]["tags"] == "a;b"
    assert rows[4]["tree_id"] == "T-4"
    again = client.post(
        tenant.url("/devices/import"), files=csv_file(exported.text), headers=tenant.headers("editor")
    ).json()
    assert (again["unchanged"], again["errors"]) == (9, [])


def test_formula_cells_are_escaped_in_the_export_and_read_back_by_the_import(
    client: TestClient, tenant: Tenant
) -> None:
    names = ["=1+2", "'=quoted already", "-2+3", "@SUM(A1)", "'plain quote", "-5"]
    for name in names:
        register(client, tenant, name=name, tags=["+tag"], latitude=-33.9, longitude=-70.6)
    exported = client.get(tenant.url("/devices/export"), headers=tenant.headers("viewer")).text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [row["name"] for row in rows] == ["'=1+2", "''=quoted already", "'-2+3", "'@SUM(A1)", *names[4:]]
    assert {(row["tags"], row["latitude"]) for row in rows} == {("'+tag", "-33.9")}
    again = client.post(
        tenant.url("/devices/import"), files=csv_file(exported), headers=tenant.headers("editor")
    ).json()
    assert (again["unchanged"], again["errors"]) == (len(names), [])


def test_an_import_of_100000_rows_goes_in_and_reports_its_bad_rows(
    client: TestClient, tenant: Tenant
) -> None:
    """The documented size: once more than PostgreSQL's 65,535 bind parameters of one statement."""
    bad_lines = {1_000: "not-a-dev-eui,Broken", 50_000: f"{new_dev_eui()},", 100_001: "0011,Short"}
    lines = ["dev_eui,name,use_case,latitude,longitude,tags,bin_depth_mm"]
    for line in range(2, 100_002):
        lines.append(bad_lines.get(line) or f"{new_dev_eui()},Bin {line},waste,48.1,-9.2,a;b,1200")
    text = "\n".join(lines) + "\n"
    url, headers = tenant.url("/devices/import"), tenant.headers("editor")
    report = client.post(url, files=csv_file(text), headers=headers).json()
    assert (report["rows"], report["created"], report["updated"], report["unchanged"]) == (
        100_000,
        99_997,
        0,
        0,
    )
    assert [error["line"] for error in report["errors"]] == sorted(bad_lines)
    dry = client.post(url, params={"dry_run": True}, files=csv_file(text), headers=headers).json()
    assert (dry["dry_run"], dry["created"], dry["updated"], dry["unchanged"]) == (True, 0, 0, 99_997)
    assert dry["errors"] == report["errors"]


def test_a_dry_run_reports_exactly_what_the_import_then_does(
    client: TestClient, tenant: Tenant, neighbour: Tenant
) -> None:
    kept, changed = register(client, tenant), register(client, tenant)
    foreign = register(client, neighbour)["dev_eui"]
    new = new_dev_eui()
    text = (
        "dev_eui,name,codec_id,decoder_source,use_case,latitude,longitude,tags,bin_depth_mm,sensor_offset_mm\n"
        f"{kept['dev_eui']},{kept['name']},{kept['codec_id']},builtin,waste,48.67,9.37,altstadt,1200,50\n"
        f"{changed['dev_eui']},Renamed,{changed['codec_id']},builtin,waste,48.67,9.37,altstadt,1200,50\n"
        f"{foreign},Not ours,,,,,,,,\n"
        f"{new},New bin,,,waste,,,,,\n"
        f"{new},New bin again,,,waste,,,,,\n"
        "zz,Bad,,,,,,,,\n"
    )
    url, headers = tenant.url("/devices/import"), tenant.headers("editor")
    dry = client.post(url, params={"dry_run": True}, files=csv_file(text), headers=headers).json()
    real = client.post(url, files=csv_file(text), headers=headers).json()
    assert (dry["created"], dry["updated"], dry["unchanged"]) == (1, 1, 1)
    assert {**dry, "dry_run": False} == real
    assert [error["line"] for error in real["errors"]] == [4, 6, 7]
    renamed = client.get(tenant.url(f"/devices/{changed['dev_eui']}"), headers=headers).json()
    assert renamed["name"] == "Renamed"


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ('0011223344556677,"' + "x" * 200_000 + '"\n', "longer than 131072 characters"),
        ("0011223344556677," + "x" * 200_000 + "\n", "longer than 131072 characters"),
        ('0011223344556677,"never closed\n0011223344556678,Next\n', "never closed"),
    ],
    ids=["quoted-field-too-long", "field-too-long", "unclosed-quote"],
)
def test_a_file_that_stops_being_csv_is_reported_on_its_line(
    client: TestClient, tenant: Tenant, broken: str, message: str
) -> None:
    good = [new_dev_eui() for _ in range(3)]
    text = (
        "dev_eui,name\n"
        + "".join(f"{dev_eui},Bin\n" for dev_eui in good)
        + broken
        + f"{new_dev_eui()},After\n"
    )
    response = client.post(
        tenant.url("/devices/import"), files=csv_file(text), headers=tenant.headers("editor")
    )
    assert response.status_code == 200, response.text[:300]
    report = response.json()
    assert report["created"] == 3
    assert [(error["line"], message in error["message"]) for error in report["errors"]] == [(5, True)]


def test_bulk_import_for_the_cli_reports_progress(engine: Engine, tenant: Tenant) -> None:
    lines = ["dev_eui,name"] + [f"{new_dev_eui()},Sensor {i}" for i in range(2500)] + ["bad,row"]
    progress: list[int] = []
    with Session(engine) as session:
        report = import_devices(session, municipality_id=tenant.id, lines=lines, progress=progress.append)
        session.commit()
    assert report.created == 2500
    assert [error.line for error in report.errors] == [2502]
    assert sum(progress) == 2501


def test_unclaimed_devices_list_heard_unregistered_dev_euis(
    client: TestClient, tenant: Tenant, neighbour: Tenant, engine: Engine, hook: RegisteredHooks
) -> None:
    heard = new_dev_eui()
    add_activity(engine, tenant.id, heard, uplink_count=12)
    add_activity(engine, neighbour.id, new_dev_eui())
    registered = register(client, tenant)["dev_eui"]
    add_activity(engine, tenant.id, registered)
    listed = client.get(tenant.url("/unclaimed-devices"), headers=tenant.headers("viewer")).json()["items"]
    assert [(item["dev_eui"], item["uplink_count"], item["sample_payload_hex"]) for item in listed] == [
        (heard, 12, "0bb80d01")
    ]
    assert client.get(tenant.url("/unclaimed-devices"), headers=tenant.headers("viewer")).status_code == 200
    claimed = register(client, tenant, dev_eui=heard)
    assert device_id(engine, claimed["dev_eui"]) in hook.calls
    assert device_id(engine, registered) not in hook.calls
    assert (
        client.get(tenant.url("/unclaimed-devices"), headers=tenant.headers("viewer")).json()["items"] == []
    )


def test_importing_a_heard_device_calls_the_hook(
    client: TestClient, tenant: Tenant, engine: Engine, hook: RegisteredHooks
) -> None:
    heard = new_dev_eui()
    add_activity(engine, tenant.id, heard)
    text = f"dev_eui,name\n{heard},Claimed by import\n{new_dev_eui()},Never heard\n"
    client.post(tenant.url("/devices/import"), files=csv_file(text), headers=tenant.headers("editor"))
    assert device_id(engine, heard) in hook.calls
