"""Latest values, history (raw and bucketed with gaps) and streamed exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from api.app import create_app
from api.responses import JSON_OPTIONS
from api.schemas.readings import LatestDeviceOut
from api.settings import ApiSettings
from domain.buckets import Aggregate
from domain.history import HistoryQuery
from domain.latest import BoundingBox
from storage.buckets import (
    AGGREGATE_COLUMNS,
    aggregate_history_sql,
    bucket_expression,
    date_bin_bucket,
    raw_aggregate_sql,
)
from storage.latest import LatestRequest, latest_values
from storage.readings import history_page
from storage.timescale import scoped_view_statements
from tests.api.data import Tenant, add_readings, device_id, register

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def seeded(client: TestClient, engine: Engine, tenant: Tenant) -> tuple[str, str]:
    """A waste bin with fill readings at 10:00, 10:10, 10:20, 11:05, none from 11:15 to 12:00, and
    a parking spot outside the first's area."""
    bin_eui = register(client, tenant, use_case="waste", tags=["altstadt"], latitude=48.67, longitude=9.37)[
        "dev_eui"
    ]
    spot_eui = register(client, tenant, use_case="parking", tags=["bahnhof"], latitude=48.70, longitude=9.40)[
        "dev_eui"
    ]
    bin_id, spot_id = device_id(engine, bin_eui), device_id(engine, spot_eui)
    add_readings(
        engine,
        [
            (T0, bin_id, "fill_percent", 10.0),
            (T0 + timedelta(minutes=10), bin_id, "fill_percent", 20.0),
            (T0 + timedelta(minutes=20), bin_id, "fill_percent", 30.0),
            (T0 + timedelta(minutes=65), bin_id, "fill_percent", 50.0),
            (T0 + timedelta(minutes=65), bin_id, "battery", 90.0),
            (T0, spot_id, "occupied", 1.0),
        ],
    )
    return bin_eui, spot_eui


def test_latest_values_per_device(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    bin_eui, spot_eui = seeded(client, engine, tenant)
    page = client.get(tenant.url("/readings/latest"), headers=tenant.headers("viewer")).json()
    by_eui = {item["dev_eui"]: item for item in page["items"]}
    assert set(by_eui) == {bin_eui, spot_eui}
    assert by_eui[bin_eui]["values"]["fill_percent"]["value"] == 50.0
    assert by_eui[bin_eui]["values"]["battery"]["value"] == 90.0
    assert by_eui[spot_eui]["values"] == {
        "occupied": {"value": 1.0, "time": "2026-11-02T10:00:00Z", "quality": 0}
    }


@pytest.mark.parametrize(
    "params",
    [{}, {"use_case": "waste"}, {"quantity": "battery"}, {"tag": "altstadt"}, {"bbox": "9.3,48.6,9.45,48.7"}],
)
def test_latest_page_written_by_the_database_equals_the_python_one(
    client: TestClient, engine: Engine, tenant: Tenant, params: dict[str, str]
) -> None:
    """The route's JSON comes from PostgreSQL; the export's rows and `LatestDeviceOut.body` from
    Python. Page by page (one device each) they must say the same, down to the time strings."""
    seeded(client, engine, tenant)
    third = register(client, tenant, use_case="waste", tags=["altstadt"], latitude=48.671, longitude=9.371)
    third_id = device_id(engine, third["dev_eui"])
    moment = T0 + timedelta(minutes=7, seconds=3, microseconds=120_500)
    add_readings(
        engine,
        [
            (moment, third_id, "fill_percent", 0.1 + 0.2),
            (moment, third_id, "battery", -1e-7),
            (T0, third_id, "level", 3e300),
        ],
    )
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 1} | ({"cursor": cursor} if cursor else {})
        answer = client.get(tenant.url("/readings/latest"), params=query, headers=tenant.headers("viewer"))
        page = answer.json()
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break

    with Session(engine) as session:
        quantity = params.get("quantity")
        request = LatestRequest(
            municipality_id=tenant.id,
            after_device_id=None,
            limit=1000,
            use_case=params.get("use_case"),
            quantities=None if quantity is None else [quantity],
            tag=params.get("tag"),
            bbox=BoundingBox(*(float(v) for v in params["bbox"].split(","))) if "bbox" in params else None,
        )
        found = latest_values(session, request)
    expected = [json.loads(orjson.dumps(LatestDeviceOut.body(row), option=JSON_OPTIONS)) for row in found]
    assert [item for page in pages for item in page["items"]] == expected
    assert len(pages) == max(len(expected), 1)
    if expected and not params:
        third_item = next(item for item in expected if item["dev_eui"] == third["dev_eui"])
        assert third_item["values"]["fill_percent"]["time"] == "2026-11-02T10:07:03.120500Z"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"use_case": "parking"}, ["spot"]),
        ({"quantity": "battery"}, ["bin"]),
        ({"tag": "altstadt"}, ["bin"]),
        ({"bbox": "9.3,48.6,9.38,48.68"}, ["bin"]),
        ({"bbox": "0,0,1,1"}, []),
    ],
)
def test_latest_filters(
    client: TestClient, engine: Engine, tenant: Tenant, params: dict[str, str], expected: list[str]
) -> None:
    bin_eui, spot_eui = seeded(client, engine, tenant)
    names = {bin_eui: "bin", spot_eui: "spot"}
    page = client.get(tenant.url("/readings/latest"), params=params, headers=tenant.headers("viewer")).json()
    assert [names[item["dev_eui"]] for item in page["items"]] == expected
    if "quantity" in params:
        assert set(page["items"][0]["values"]) == {"battery"}


def test_raw_history_pages_in_time_order(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    bin_eui, _ = seeded(client, engine, tenant)
    params: dict[str, object] = {
        "dev_eui": bin_eui,
        "start": T0.isoformat(),
        "end": (T0 + timedelta(hours=3)).isoformat(),
        "limit": 2,
    }
    points = []
    while True:
        page = client.get(
            tenant.url("/readings/history"), params=params, headers=tenant.headers("viewer")
        ).json()
        points += page["items"]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert [(p["time"][11:16], p["quantity"], p["value"]) for p in points] == [
        ("10:00", "fill_percent", 10.0),
        ("10:10", "fill_percent", 20.0),
        ("10:20", "fill_percent", 30.0),
        ("11:05", "battery", 90.0),
        ("11:05", "fill_percent", 50.0),
    ]


@pytest.mark.parametrize(
    ("agg", "values"),
    [
        ("avg", [20.0, 50.0, None]),
        ("min", [10.0, 50.0, None]),
        ("max", [30.0, 50.0, None]),
        ("sum", [60.0, 50.0, None]),
        ("count", [3.0, 1.0, None]),
        ("last", [30.0, 50.0, None]),
    ],
)
def test_bucketed_history_marks_gaps(
    client: TestClient, engine: Engine, tenant: Tenant, agg: str, values: list[float | None]
) -> None:
    bin_eui, _ = seeded(client, engine, tenant)
    params = {
        "dev_eui": bin_eui,
        "quantity": "fill_percent",
        "start": T0.isoformat(),
        "end": (T0 + timedelta(hours=3)).isoformat(),
        "bucket": "1h",
        "agg": agg,
        "limit": 2,
    }
    points = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        page = client.get(
            tenant.url("/readings/history"), params=query, headers=tenant.headers("viewer")
        ).json()
        points += page["items"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert [p["time"][11:16] for p in points] == ["10:00", "11:00", "12:00"]
    assert [p["value"] for p in points] == values
    assert [p["gap"] for p in points] == [False, False, True]
    assert [p["samples"] for p in points] == [3, 1, 0]


def _all_pages(client: TestClient, tenant: Tenant, params: dict[str, Any]) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        response = client.get(tenant.url("/readings/history"), params=query, headers=tenant.headers("viewer"))
        assert response.status_code == 200, response.text
        points += response.json()["items"]
        if (cursor := response.json()["next_cursor"]) is None:
            return points


def test_day_buckets_begin_at_the_towns_midnight_across_summer_time(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    """Summer time began in Germany on 29 March 2026 at 02:00: that day had 23 hours."""
    eui = register(client, tenant, use_case="environment")["dev_eui"]
    sensor = device_id(engine, eui)
    hourly = [datetime(2026, 3, 27, 0, 30, tzinfo=UTC) + timedelta(hours=step) for step in range(4 * 24)]
    # nothing on 30 March local time (29 March 22:00 to 30 March 22:00 UTC)
    kept = [
        t
        for t in hourly
        if not datetime(2026, 3, 29, 22, tzinfo=UTC) <= t < datetime(2026, 3, 30, 22, tzinfo=UTC)
    ]
    add_readings(engine, [(t, sensor, "temperature", 1.0) for t in kept])
    params = {
        "dev_eui": eui,
        "quantity": "temperature",
        "start": "2026-03-27T00:00:00+01:00",
        "end": "2026-03-31T00:00:00+02:00",
        "bucket": "1d",
        "agg": "count",
        "tz": "Europe/Berlin",
    }
    local = _all_pages(client, tenant, params)
    assert [(p["time"], p["samples"], p["gap"]) for p in local] == [
        ("2026-03-26T23:00:00Z", 23, False),  # 27 March, readings from 00:30 UTC
        ("2026-03-27T23:00:00Z", 24, False),
        ("2026-03-28T23:00:00Z", 23, False),  # the short day
        ("2026-03-29T22:00:00Z", 0, True),  # 30 March, silent
    ]
    # one bucket per page: the cursor steps over the short day the same way
    assert _all_pages(client, tenant, params | {"limit": 1}) == local
    utc = _all_pages(client, tenant, params | {"tz": "UTC"})
    assert [p["time"][11:] for p in utc] == ["00:00:00Z"] * len(utc)
    assert utc == _all_pages(client, tenant, {k: v for k, v in params.items() if k != "tz"})
    # shorter buckets are not moved by the zone
    hours = params | {"bucket": "1h", "start": "2026-03-28T23:00:00Z", "end": "2026-03-29T03:00:00Z"}
    assert _all_pages(client, tenant, hours) == _all_pages(client, tenant, hours | {"tz": "UTC"})


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "Europe", "", "x" * 65])
def test_an_unknown_time_zone_is_a_422_problem(
    client: TestClient, engine: Engine, tenant: Tenant, zone: str
) -> None:
    bin_eui, _ = seeded(client, engine, tenant)
    response = client.get(
        tenant.url("/readings/history"),
        params={"dev_eui": bin_eui, "bucket": "1d", "tz": zone},
        headers=tenant.headers("viewer"),
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_history_of_several_devices_lays_out_every_series(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    bin_eui, spot_eui = seeded(client, engine, tenant)
    params = {
        "dev_eui": [bin_eui, spot_eui],
        "start": T0.isoformat(),
        "end": (T0 + timedelta(hours=2)).isoformat(),
        "bucket": "1h",
        "agg": "max",
    }
    points = client.get(
        tenant.url("/readings/history"), params=params, headers=tenant.headers("viewer")
    ).json()
    series = {(p["dev_eui"], p["quantity"]) for p in points["items"]}
    assert series == {(bin_eui, "fill_percent"), (bin_eui, "battery"), (spot_eui, "occupied")}
    assert len(points["items"]) == 6


@pytest.mark.parametrize(
    "params",
    [
        {"bucket": "0h"},
        {"bucket": "1y"},
        {"agg": "median"},
        {"start": "2026-11-02T10:00:00"},
        {"start": "2026-11-03T00:00:00Z", "end": "2026-11-02T00:00:00Z"},
        {"start": "1900-01-01T00:00:00Z"},
    ],
)
def test_history_rejects_bad_parameters(
    client: TestClient, engine: Engine, tenant: Tenant, params: dict[str, str]
) -> None:
    bin_eui, _ = seeded(client, engine, tenant)
    response = client.get(
        tenant.url("/readings/history"),
        params={"dev_eui": bin_eui} | params,
        headers=tenant.headers("viewer"),
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_history_of_an_unknown_device_is_not_found(client: TestClient, tenant: Tenant) -> None:
    response = client.get(
        tenant.url("/readings/history"),
        params={"dev_eui": "0011223344556677"},
        headers=tenant.headers("viewer"),
    )
    assert response.status_code == 404


def history_export(client: TestClient, tenant: Tenant, dev_eui: str, **extra: object) -> dict[str, object]:
    return {
        "dev_eui": dev_eui,
        "start": T0.isoformat(),
        "end": (T0 + timedelta(hours=4)).isoformat(),
        "bucket": "10m",
        "agg": "last",
    } | extra


def test_history_export_as_csv_streams_every_page(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    bin_eui, _ = seeded(client, engine, tenant)
    params = history_export(client, tenant, bin_eui, format="csv")
    response = client.get(
        tenant.url("/readings/history/export"), params=params, headers=tenant.headers("viewer")
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 24 * 2  # 24 ten-minute buckets for fill_percent and battery, pages of 7
    filled = [row for row in rows if row["quantity"] == "fill_percent" and row["gap"] == "False"]
    assert [row["value"] for row in filled] == ["10.0", "20.0", "30.0", "50.0"]


def test_history_export_by_accept_header_as_geojson(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    bin_eui, _ = seeded(client, engine, tenant)
    headers = tenant.headers("viewer") | {"Accept": "application/geo+json"}
    response = client.get(
        tenant.url("/readings/history/export"),
        params=history_export(client, tenant, bin_eui),
        headers=headers,
    )
    assert response.headers["content-type"] == "application/geo+json"
    collection = json.loads(response.text)
    assert collection["type"] == "FeatureCollection"
    feature = collection["features"][0]
    assert feature["geometry"] == {"type": "Point", "coordinates": [9.37, 48.67]}
    assert feature["properties"]["dev_eui"] == bin_eui


def test_latest_export_as_json_by_default(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    bin_eui, spot_eui = seeded(client, engine, tenant)
    response = client.get(tenant.url("/readings/latest/export"), headers=tenant.headers("viewer"))
    assert response.headers["content-type"] == "application/json"
    rows = json.loads(response.text)
    assert {(row["dev_eui"], row["quantity"]) for row in rows} == {
        (bin_eui, "fill_percent"),
        (bin_eui, "battery"),
        (spot_eui, "occupied"),
    }


def test_an_empty_export_is_still_valid(client: TestClient, tenant: Tenant) -> None:
    for fmt, expected in (("json", []), ("geojson", {"type": "FeatureCollection", "features": []})):
        response = client.get(
            tenant.url("/readings/latest/export"), params={"format": fmt}, headers=tenant.headers("viewer")
        )
        assert json.loads(response.text) == expected


def test_buckets_are_whole_even_when_the_range_is_not(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    """Buckets cover whole periods, as TimescaleDB's continuous aggregates do: a range starting at
    10:15 still gets the 10:00 bucket with all its readings."""
    bin_eui, _ = seeded(client, engine, tenant)
    params = {
        "dev_eui": bin_eui,
        "quantity": "fill_percent",
        "start": (T0 + timedelta(minutes=15)).isoformat(),
        "end": (T0 + timedelta(minutes=70)).isoformat(),
        "bucket": "1h",
        "agg": "count",
    }
    page = client.get(tenant.url("/readings/history"), params=params, headers=tenant.headers("viewer")).json()
    assert [(p["time"][11:16], p["value"]) for p in page["items"]] == [("10:00", 3.0), ("11:00", 1.0)]
    assert page["next_cursor"] is None


def test_the_bucket_expression_is_replaceable(
    settings: ApiSettings, engine: Engine, client: TestClient, tenant: Tenant
) -> None:
    """The composition root swaps in TimescaleDB's `time_bucket`; here a spy around `date_bin`."""
    bin_eui, _ = seeded(client, engine, tenant)
    widths: list[timedelta] = []

    def spy(width: timedelta, column: Any, origin: datetime) -> Any:
        widths.append(width)
        return date_bin_bucket(width, column, origin)

    params = {
        "dev_eui": bin_eui,
        "start": T0.isoformat(),
        "end": (T0 + timedelta(hours=1)).isoformat(),
        "bucket": "15m",
    }
    with TestClient(create_app(settings, engine=engine, bucket_expression=spy)) as own:
        response = own.get(tenant.url("/readings/history"), params=params, headers=tenant.headers("viewer"))
    assert response.status_code == 200
    assert widths == [timedelta(minutes=15)]


@pytest.mark.parametrize("agg", ["avg", "min", "max", "sum", "count", "last"])
def test_hour_buckets_can_be_read_from_a_precomputed_aggregate(
    settings: ApiSettings, engine: Engine, client: TestClient, tenant: Tenant, agg: str
) -> None:
    """On TimescaleDB hour buckets come from the `reading_hourly` continuous aggregate (its SQL is
    checked against real TimescaleDB by `make check-timescale`). Here a plain materialised view
    with the aggregate's columns stands in: the answers match bucketing raw rows, and a reading
    written after the view was filled shows that the view, not `reading`, answered."""
    bin_eui, _ = seeded(client, engine, tenant)
    bin_id = device_id(engine, bin_eui)
    view = f"hourly_{tenant.slug.replace('-', '_')}_{agg}"
    columns = ", ".join(
        f"{raw_aggregate_sql(name, timescale=False)} AS {column}"
        for name, column in AGGREGATE_COLUMNS.items()
    )
    hour = bucket_expression(timedelta(hours=1), "time", timescale=False)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE MATERIALIZED VIEW {view} AS SELECT "
                f"{hour} AS bucket, device_id, quantity, "
                f"{columns}, max(time) AS last_time FROM reading WHERE device_id = {bin_id} GROUP BY 1, 2, 3"
            )
        )
        for statement in scoped_view_statements(view):  # as the API's tenant role reads aggregates
            conn.execute(text(statement))
    served: list[timedelta] = []

    def from_view(width: timedelta, aggregate: str) -> str | None:
        served.append(width)
        found = aggregate_history_sql(width, aggregate)  # type: ignore[arg-type]
        return None if found is None else found.replace("reading_hourly", view)

    params = {
        "dev_eui": bin_eui,
        "start": T0.isoformat(),
        "end": (T0 + timedelta(hours=3)).isoformat(),
        "bucket": "1h",
        "agg": agg,
    }
    viewer = tenant.headers("viewer")
    try:
        with TestClient(create_app(settings, engine=engine, aggregate_source=from_view)) as precomputed:
            answer = precomputed.get(tenant.url("/readings/history"), params=params, headers=viewer).json()
            assert answer == client.get(tenant.url("/readings/history"), params=params, headers=viewer).json()
            assert {item["samples"] for item in answer["items"]} >= {3, 1, 0}
            quarter = precomputed.get(
                tenant.url("/readings/history"), params=params | {"bucket": "15m"}, headers=viewer
            )
            assert quarter.status_code == 200
            assert served == [timedelta(hours=1), timedelta(minutes=15)]
            # aggregates hold UTC days: a town's day is binned from raw rows, its hours are not
            in_berlin = params | {"tz": "Europe/Berlin"}
            for bucket in ("1d", "1h"):
                response = precomputed.get(
                    tenant.url("/readings/history"), params=in_berlin | {"bucket": bucket}, headers=viewer
                )
                assert response.status_code == 200
            assert served == [timedelta(hours=1), timedelta(minutes=15), timedelta(hours=1)]

            with engine.begin() as conn:  # lower min, higher max, later last, more and other values
                conn.execute(
                    text(
                        "INSERT INTO reading (time, device_id, quantity, value) VALUES "
                        "(:early, :id, 'fill_percent', -5.0), (:late, :id, 'fill_percent', 999.0)"
                    ),
                    {"id": bin_id, "early": T0 + timedelta(minutes=30), "late": T0 + timedelta(minutes=40)},
                )
            raw = client.get(tenant.url("/readings/history"), params=params, headers=viewer).json()
            stale = precomputed.get(tenant.url("/readings/history"), params=params, headers=viewer).json()
            assert stale == answer != raw
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP MATERIALIZED VIEW {view} CASCADE"))


@pytest.mark.parametrize("path", ["/readings/history", "/readings/history/export"])
@pytest.mark.parametrize(
    ("params", "limit"),
    [
        ({"bucket": "1s", "start": "1990-01-01T00:00:00Z", "end": "2190-01-01T00:00:00Z"}, "2,000,000"),
        ({"bucket": "1m", "start": "2026-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}, "2,000,000"),
        ({"bucket": "9999w"}, "520w"),
        ({"bucket": "521w"}, "520w"),
    ],
)
def test_history_refuses_more_points_than_its_cap(
    client: TestClient, engine: Engine, tenant: Tenant, path: str, params: dict[str, str], limit: str
) -> None:
    """One-second buckets over two centuries once streamed for as long as they were read, and a
    bucket of 9999 weeks overflowed Python's dates (a 500): both are a 422 naming the limit."""
    bin_eui, _ = seeded(client, engine, tenant)
    response = client.get(
        tenant.url(path),
        params={"dev_eui": bin_eui, "format": "csv"} | params,
        headers=tenant.headers("viewer"),
    )
    assert response.status_code == 422, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert limit in response.json()["detail"]


def test_the_cap_counts_every_series(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    """Points are buckets × series: a range one series may ask for, eight may not."""
    bin_eui, _ = seeded(client, engine, tenant)
    quantities = [f"q{i}" for i in range(8)]
    params: dict[str, Any] = {"dev_eui": bin_eui, "bucket": "1m", "start": "2026-01-01T00:00:00Z"}
    params["end"] = "2029-01-01T00:00:00Z"  # 1,578,241 one-minute buckets
    one = client.get(
        tenant.url("/readings/history"),
        params=params | {"quantity": "q0", "limit": 10},
        headers=tenant.headers("viewer"),
    )
    assert one.status_code == 200
    eight = client.get(
        tenant.url("/readings/history"),
        params=params | {"quantity": quantities},
        headers=tenant.headers("viewer"),
    )
    assert eight.status_code == 422
    assert "12,625,928 points" in eight.json()["detail"]


def test_the_widest_bucket_over_the_whole_range_is_answered(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    bin_eui, _ = seeded(client, engine, tenant)
    params = {"dev_eui": bin_eui, "bucket": "520w", "agg": "count", "quantity": "fill_percent"}
    params |= {"start": "1970-01-01T00:00:00Z", "end": "2200-01-01T00:00:00Z", "format": "csv"}
    response = client.get(
        tenant.url("/readings/history/export"), params=params, headers=tenant.headers("viewer")
    )
    assert response.status_code == 200
    counted = [row["value"] for row in csv.DictReader(io.StringIO(response.text)) if row["gap"] == "False"]
    assert counted == ["4.0"]


def test_a_page_of_very_wide_buckets_does_not_overflow_dates(
    engine: Engine, client: TestClient, tenant: Tenant
) -> None:
    """Storage pages any width it is given: a page's end is never shifted past the range's end."""
    bin_eui, _ = seeded(client, engine, tenant)
    query = HistoryQuery(
        device_ids=[device_id(engine, bin_eui)],
        start=T0,
        end=T0 + timedelta(days=1),
        quantities=["fill_percent"],
        bucket=timedelta(weeks=9999),
        agg=Aggregate.COUNT,
    )
    with Session(engine) as session:
        page = history_page(session, query, cursor=None, limit=5000)
    assert page.next is None
    assert [point.value for point in page.points if not point.gap] == [4.0]
