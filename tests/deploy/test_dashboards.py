"""Every Grafana dashboard query runs on a real migrated PostgreSQL.

The SQL is taken from the dashboard JSON as Grafana would send it: the macros
(`$__timeFilter`, `$__interval_ms`, …) and the `$municipality` variable are expanded
the way Grafana's PostgreSQL data source expands them, then executed against a
database holding a few rows of every kind, inside a transaction that is rolled back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli.grafana.settings import DATASOURCE_TYPE as PROVISIONED_DATASOURCE_TYPE
from cli.grafana.settings import DATASOURCE_UID as PROVISIONED_DATASOURCE_UID
from storage.database import libpq_url

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCE_UID = "lorakom-postgres"
NOW = datetime.now(UTC)
TIME_FROM = NOW - timedelta(days=1)
TIME_TO = NOW + timedelta(minutes=5)
INTERVAL_MS = 3_600_000

HOME, FOREIGN = "dash-home", "dash-foreign"


@dataclass(frozen=True)
class Query:
    dashboard: str
    title: str
    sql: str
    format: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.title}"


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def panels(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in document.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def all_queries() -> list[Query]:
    found = []
    for path in DASHBOARDS:
        document = load(path)
        for panel in panels(document):
            for target in panel.get("targets", []):
                found.append(Query(path.stem, panel["title"], target["rawSql"], target["format"]))
        for variable in document["templating"]["list"]:
            if variable["type"] == "query":
                found.append(Query(path.stem, f"${variable['name']}", variable["query"], "table"))
    return found


QUERIES = all_queries()


def grafana_time(moment: datetime) -> str:
    """Grafana renders times in macros as RFC 3339 UTC with milliseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def expand(sql: str, municipalities: list[str]) -> str:
    """The SQL as Grafana's PostgreSQL data source sends it."""
    start, end = f"'{grafana_time(TIME_FROM)}'", f"'{grafana_time(TIME_TO)}'"
    sql = re.sub(
        r"\$__timeFilter\(([^()]+)\)", lambda m: f"{m.group(1).strip()} BETWEEN {start} AND {end}", sql
    )
    sql = sql.replace("$__timeFrom()", start).replace("$__timeTo()", end)
    sql = sql.replace("$__interval_ms", str(INTERVAL_MS)).replace("$__interval", "1h")
    # A multi-value variable becomes a list of quoted values, as Grafana's SQL data sources do.
    sql = sql.replace("$municipality", ",".join(f"'{slug}'" for slug in municipalities))
    leftover = re.findall(r"\$\{?\w+", sql)
    assert not leftover, f"macros or variables this test does not expand: {leftover}"
    return sql


@pytest.fixture(scope="module")
def db(migrated_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection with sample rows of two municipalities, rolled back at the end."""
    with psycopg.connect(libpq_url(migrated_db_url)) as conn:
        insert_sample_rows(conn)
        try:
            yield conn
        finally:
            conn.rollback()


def insert_sample_rows(conn: psycopg.Connection[Any]) -> None:
    def one(sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    home = one("INSERT INTO municipality (slug, name) VALUES (%s, 'Home Town') RETURNING id", (HOME,))
    foreign = one("INSERT INTO municipality (slug, name) VALUES (%s, 'Other Town') RETURNING id", (FOREIGN,))

    def device(eui: str, name: str, use_case: str, metadata: dict[str, Any], town: int = home) -> int:
        return int(
            one(
                "INSERT INTO device (municipality_id, dev_eui, name, use_case, metadata)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (town, eui, name, use_case, json.dumps(metadata)),
            )
        )

    spot = device(
        "d0d0000000000001", "Spot Markt 1", "parking", {"parking_zone": "markt", "parking_spot": "1"}
    )
    spot2 = device(
        "d0d0000000000002", "Spot Markt 2", "parking", {"parking_zone": "markt", "parking_spot": "2"}
    )
    bin_ = device("d0d0000000000003", "Bin Rathaus", "waste", {"bin_depth_mm": 1200})
    soil = device("d0d0000000000004", "Linde 17", "soil", {"tree_id": "17", "soil_type": "loam"})
    air = device("d0d0000000000005", "Air Bahnhof", "environment", {"expected_interval_s": 600})
    device("d0d0000000000006", "Never Heard", "other", {})
    foreign_bin = device("d0d0000000000007", "Foreign Bin", "waste", {}, town=foreign)

    hours = [NOW - timedelta(hours=h) for h in (5, 4, 3, 2, 1)]
    series: dict[tuple[int, str], list[float]] = {
        (spot, "occupied"): [0, 1, 1, 0, 1],
        (spot2, "occupied"): [1, 1, 0, 0, 0],
        (bin_, "fill_level"): [40, 60, 85, 5, 10],  # emptied between the third and fourth
        (foreign_bin, "fill_level"): [90, 2, 4, 6, 8],
        (soil, "soil_moisture"): [20, 18, 16, 14, 12],
        (soil, "soil_temperature"): [11, 11, 12, 12, 12],
        (air, "temperature"): [8, 9, 10, 11, 12],
        (air, "relative_humidity"): [80, 78, 75, 70, 68],
        (air, "co2"): [420, 430, 440, 450, 460],
        (air, "pm2_5"): [5, 6, 7, 8, 9],
        (air, "pm10"): [9, 10, 11, 12, 13],
        (air, "water_level"): [1.1, 1.2, 1.2, 1.3, 1.3],
        (spot, "battery"): [99, 99, 99, 99, 98],
        (bin_, "battery"): [90, 90, 90, 90, 90],
    }
    for (device_id, quantity), values in series.items():
        for moment, value in zip(hours, values, strict=True):
            conn.execute(
                "INSERT INTO reading (device_id, quantity, time, value) VALUES (%s, %s, %s, %s)",
                (device_id, quantity, moment, value),
            )
        conn.execute(
            "INSERT INTO device_state (device_id, quantity, time, value) VALUES (%s, %s, %s, %s)",
            (device_id, quantity, hours[-1], values[-1]),
        )

    conn.execute(
        "INSERT INTO gateway (gateway_id, municipality_id, name, first_seen_at, last_seen_at,"
        " last_uplink_at, online) VALUES ('gw-rathaus', %s, 'Rathaus Dach', %s, %s, %s, true),"
        " ('gw-kirche', NULL, NULL, %s, %s, %s, NULL)",
        (home, hours[0], hours[-1], hours[-1], hours[0], hours[-2], hours[-2]),
    )
    uplinks = [
        ("k1", home, "d0d0000000000003", bin_, "decoded", "gw-rathaus", hours[0]),
        ("k2", home, "d0d0000000000005", air, "decoded", "gw-kirche", hours[1]),
        ("k3", home, "d0d0000000000005", air, "failed", "gw-rathaus", hours[2]),
        ("k4", home, "a0a0000000000001", None, "unclaimed", "gw-rathaus", hours[3]),
        ("k5", foreign, "b0b0000000000001", None, "unclaimed", "gw-rathaus", hours[4]),
        ("k6", home, "d0d0000000000003", bin_, "decoded", "gw-rathaus", hours[4]),
    ]
    for key, town, eui, device_id, status, gateway, moment in uplinks:
        conn.execute(
            "INSERT INTO uplink (received_at, uplink_key, municipality_id, source, network_server, dev_eui,"
            " device_id, f_cnt, f_port, payload, decode_status, codec_id, decode_error, gateway_count)"
            " VALUES (%s, %s, %s, 'test-source', 'chirpstack-v4', %s, %s, 1, 2, '\\x0102', %s,"
            " 'vendor/codec', %s, 1)",
            (moment, key, town, eui, device_id, status, "bad length" if status == "failed" else None),
        )
        conn.execute(
            "INSERT INTO reception (received_at, uplink_key, gateway_id, antenna, dev_eui, municipality_id,"
            " rssi_dbm, snr_db) VALUES (%s, %s, %s, 0, %s, %s, -101.5, 4.25)",
            (moment, key, gateway, eui, town),
        )
        conn.execute(
            "INSERT INTO device_activity (dev_eui, municipality_id, source, first_seen_at, last_seen_at,"
            " uplink_count, last_payload, last_gateway_id)"
            " VALUES (%s, %s, 'test-source', %s, %s, 1, '\\x0102', %s)"
            " ON CONFLICT (municipality_id, dev_eui) DO UPDATE SET last_seen_at = excluded.last_seen_at,"
            " uplink_count = device_activity.uplink_count + 1",
            (eui, town, moment, moment, gateway),
        )
    conn.execute(
        "INSERT INTO rejected_message (received_at, source, topic, reason, payload)"
        " VALUES (%s, 'test-source', 'application/x/device/y/event/up', 'not JSON', '\\x7b')",
        (hours[2],),
    )


def run(
    conn: psycopg.Connection[Any], query: Query, municipalities: list[str]
) -> tuple[list[str], list[Any]]:
    with conn.transaction(), conn.cursor() as cursor:  # a savepoint: a failing query spoils nothing
        cursor.execute(expand(query.sql, municipalities))  # type: ignore[arg-type]
        assert cursor.description is not None
        return [column.name for column in cursor.description], cursor.fetchall()


def query_named(dashboard: str, title: str) -> Query:
    matches = [query for query in QUERIES if query.dashboard == dashboard and query.title == title]
    assert len(matches) == 1, f"{dashboard}: no single panel titled {title!r}"
    return matches[0]


def test_every_dashboard_is_found() -> None:
    assert {path.stem for path in DASHBOARDS} >= {
        "overview",
        "parking",
        "waste",
        "soil",
        "environment",
        "gateways",
    }


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.id)
def test_query_runs_and_answers(db: psycopg.Connection[Any], query: Query) -> None:
    columns, rows = run(db, query, [HOME])
    assert rows, f"{query.id} answered no rows on the sample data"
    if query.format == "time_series":
        assert columns[:3] == ["time", "metric", "value"], columns
        times = [row[0] for row in rows]
        assert times == sorted(times), "Grafana wants time series ordered by time"
        assert all(TIME_FROM - timedelta(hours=1) <= moment <= TIME_TO for moment in times)


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.id)
def test_query_runs_for_all_municipalities(db: psycopg.Connection[Any], query: Query) -> None:
    """The variable's "All" expands to every slug."""
    run(db, query, [HOME, FOREIGN])


def test_municipality_variable_lists_slugs(db: psycopg.Connection[Any]) -> None:
    columns, rows = run(db, query_named("overview", "$municipality"), [HOME])
    assert columns == ["__value", "__text"]
    assert (HOME, "Home Town") in rows


def test_unclaimed_devices_stay_in_their_municipality(db: psycopg.Connection[Any]) -> None:
    columns, rows = run(db, query_named("overview", "Unclaimed devices, last heard first"), [HOME])
    euis = {row[columns.index("dev_eui")] for row in rows}
    assert "a0a0000000000001" in euis
    assert "b0b0000000000001" not in euis


def test_silent_devices_name_the_never_heard_one(db: psycopg.Connection[Any]) -> None:
    columns, rows = run(db, query_named("overview", "Silent devices, longest silent first"), [HOME])
    names = {row[columns.index("name")] for row in rows}
    assert "Never Heard" in names
    assert "Air Bahnhof" in names  # last heard four hours ago, expected every ten minutes
    assert "Bin Rathaus" not in names  # no expected interval: silent only after a day


def test_emptying_is_detected(db: psycopg.Connection[Any]) -> None:
    columns, rows = run(db, query_named("waste", "Emptyings"), [HOME])
    assert [row[columns.index("bin")] for row in rows] == ["Bin Rathaus"]
    assert float(rows[0][columns.index("fill_before")]) == 85.0


def test_parking_zone_counts(db: psycopg.Connection[Any]) -> None:
    columns, rows = run(db, query_named("parking", "Zones now"), [HOME])
    assert [dict(zip(columns, row, strict=True)) for row in rows] == [
        {"zone": "markt", "spots": 2, "occupied": 1, "free": 1, "occupancy_percent": 50}
    ]


def test_gateways_include_neighbours_that_heard_our_devices(db: psycopg.Connection[Any]) -> None:
    columns, rows = run(db, query_named("gateways", "Gateways"), [HOME])
    by_id = {row[columns.index("gateway_id")]: dict(zip(columns, row, strict=True)) for row in rows}
    assert by_id["gw-rathaus"]["status"] == "online"
    assert by_id["gw-kirche"]["status"] == "unknown"
    _, foreign_rows = run(db, query_named("gateways", "Gateways"), [FOREIGN])
    assert [row[0] for row in foreign_rows] == ["gw-rathaus"]  # it heard a foreign unclaimed device


def test_devices_heard_by_one_gateway(db: psycopg.Connection[Any]) -> None:
    columns, rows = run(db, query_named("gateways", "Devices heard by one gateway only"), [HOME])
    assert {row[columns.index("dev_eui")] for row in rows} == {"d0d0000000000003", "a0a0000000000001"}


def test_panels_use_the_provisioned_datasource() -> None:
    """`lorakom grafana provision` gives every organisation this data source (cli/grafana/provisioner.py)."""
    datasource = {"uid": PROVISIONED_DATASOURCE_UID, "type": PROVISIONED_DATASOURCE_TYPE}
    assert datasource["uid"] == DATASOURCE_UID
    uids = set()
    for path in DASHBOARDS:
        document = load(path)
        assert document["uid"] not in uids
        uids.add(document["uid"])
        ids = [panel["id"] for panel in panels(document)]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        titles = [panel["title"] for panel in panels(document)]
        assert len(titles) == len(set(titles)), f"{path.name}: panel titles repeat"
        variables = {variable["name"]: variable for variable in document["templating"]["list"]}
        assert "FROM municipality" in variables["municipality"]["query"]
        for panel in panels(document):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == DATASOURCE_UID, f"{path.name}: {panel['title']}"
            assert panel["datasource"]["type"] == datasource["type"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID
                assert target["rawQuery"] is True
                assert "$municipality" in target["rawSql"] or "rejected_message" in target["rawSql"], (
                    f"{path.name}: {panel['title']} ignores the municipality variable"
                )
