"""Every CSV export escapes cells a spreadsheet would run as formulas (OWASP, CSV injection).

The routes are found in the OpenAPI document (every GET answering `text/csv`), so that a
new CSV export is probed without a test of its own.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from domain.spreadsheet import FORMULA_TRIGGERS
from storage.models import DeviceState, Reading
from tests.api.data import Tenant, device_id, register

HOSTILE = ["=cmd|' /C calc'!A0", "+SUM(1+1)", "-2+3", "@SUM(A1:A9)", '=HYPERLINK("http://x")']
NEGATIVE_NUMBER = -2.5
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def number(cell: str) -> bool:
    return re.fullmatch(r"-[0-9]+(\.[0-9]+)?", cell) is not None


def csv_export_paths(client: TestClient) -> list[str]:
    schema: dict[str, Any] = client.get("/openapi.json").json()
    return sorted(
        path
        for path, operations in schema["paths"].items()
        if "text/csv" in operations.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
    )


def hostile_device(client: TestClient, engine: Engine, tenant: Tenant) -> str:
    """A device whose every text field a spreadsheet would run, with a negative reading."""
    dev_eui = register(
        client,
        tenant,
        name=HOSTILE[0],
        codec_id=HOSTILE[1],
        use_case="environment",
        latitude=-33.9,
        longitude=-70.6,
        tags=HOSTILE[2:],
        metadata={"tree_id": HOSTILE[3], "species": HOSTILE[4]},
    )["dev_eui"]
    device = device_id(engine, dev_eui)
    with Session(engine) as session:
        for quantity in ("temperature", "-2+3"):
            values = {"device_id": device, "quantity": quantity, "time": T0, "value": NEGATIVE_NUMBER}
            session.execute(insert(Reading), [values])
            session.execute(insert(DeviceState), [values])
        session.commit()
    return str(dev_eui)


def parameters(client: TestClient, path: str, dev_eui: str) -> dict[str, str]:
    """Values for the route's query parameters that need one: CSV, this device, the reading's time."""
    operation = client.get("/openapi.json").json()["paths"][path]["get"]
    names = {parameter["name"] for parameter in operation.get("parameters", ())}
    known = {
        "format": "csv",
        "dev_eui": dev_eui,
        "start": T0.isoformat(),
        "end": T0.replace(hour=11).isoformat(),
    }
    return {name: value for name, value in known.items() if name in names}


def test_the_csv_exports_are_found(client: TestClient) -> None:
    paths = csv_export_paths(client)
    for expected in ("/devices/export", "/readings/latest/export", "/readings/history/export"):
        assert any(path.endswith(expected) for path in paths), (expected, paths)


@pytest.mark.parametrize("raw", [False, True], ids=["bucketed", "raw"])
def test_no_csv_export_writes_a_cell_a_spreadsheet_would_run(
    client: TestClient, engine: Engine, tenant: Tenant, raw: bool
) -> None:
    dev_eui = hostile_device(client, engine, tenant)
    for path in csv_export_paths(client):
        query = parameters(client, path, dev_eui) | ({} if raw else {"bucket": "1h"})
        response = client.get(
            path.replace("{slug}", tenant.slug), params=query, headers=tenant.headers("viewer")
        )
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("text/csv"), path
        cells = [cell for row in csv.reader(io.StringIO(response.text)) for cell in row]
        assert cells, path
        hostile = [cell for cell in cells if cell.startswith(FORMULA_TRIGGERS) and not number(cell)]
        assert hostile == [], path
        # The plain negative number stays a number; the would-be formulas are kept as text.
        if "/readings/" in path:
            assert str(NEGATIVE_NUMBER) in cells, path
            assert "'-2+3" in cells, path
        else:
            assert {"'" + HOSTILE[0], "'" + HOSTILE[1], "-33.9", "-70.6"} <= set(cells), path
            assert "'" + ";".join(HOSTILE[2:]) in cells, path
