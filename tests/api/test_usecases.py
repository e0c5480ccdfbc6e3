"""Parking, waste, soil and environment through HTTP, and the isolation matrix of every
use-case, health and alert route: each role in its own municipality, and a foreign
municipality answering 404 without a byte of its data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from api.access import ACTIONS_BY_ROLE, Action
from api.app_services import services_of
from services.waste import HINTS
from services.webhook_delivery import create_subscription
from services.webhook_targets import WebhookSettings
from storage.alerts import create_rule
from storage.api_keys import Role
from storage.models_usecases import AlertEvent
from storage.secret_box import SecretBox
from storage.soil import set_thresholds
from tests.api.data import MUNICIPAL_ROLES, Tenant, add_gateway, add_readings, auth, device_id, register

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def fresh_now() -> None:
    """Readings are placed relative to NOW, taken afresh for each test: a NOW from collection
    goes stale when the suite before this module runs for minutes, and the parking debounce
    (a change must hold five minutes) then counts a two-minute-old change as settled."""
    global NOW
    NOW = datetime.now(UTC)


def readings_of(engine: Engine, dev_eui: str, quantity: str, points: list[tuple[timedelta, float]]) -> None:
    """Readings at `NOW - age`, as the ingest writer would leave them."""
    device = device_id(engine, dev_eui)
    add_readings(engine, [(NOW - age, device, quantity, value) for age, value in points])


def parking_spot(client: TestClient, tenant: Tenant, zone: str, spot: str, **extra: Any) -> str:
    body = {
        "use_case": "parking",
        "name": f"Stellplatz {spot}",
        "metadata": {"parking_zone": zone, "parking_spot": spot},
    }
    return str(register(client, tenant, **(body | extra))["dev_eui"])


def test_parking_zone_counts_debounced_spots(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    parked = parking_spot(client, tenant, "Markt", "1")
    flicker = parking_spot(client, tenant, "Markt", "2")
    parking_spot(client, tenant, "Markt", "3")  # never reported
    readings_of(engine, parked, "occupied", [(timedelta(hours=2), 1.0)])
    readings_of(engine, flicker, "occupied", [(timedelta(hours=3), 0.0), (timedelta(minutes=2), 1.0)])
    viewer = tenant.headers("viewer")

    zones = client.get(tenant.url("/parking/zones"), headers=viewer).json()["items"]
    assert zones == [
        {
            "zone": "Markt",
            "capacity": 3,
            "capacity_entered": False,
            "sensors": 3,
            "occupied": 1,
            "free": 1,
            "unknown": 1,
        }
    ]
    spots = {
        spot["spot"]: spot
        for spot in client.get(tenant.url("/parking/zones/Markt/spots"), headers=viewer).json()["items"]
    }
    assert spots["1"]["occupied"] is True
    assert datetime.fromisoformat(spots["1"]["since"]) == pytest.approx(
        NOW - timedelta(hours=2), abs=timedelta(seconds=1)
    )
    assert spots["2"]["occupied"] is False  # the car of two minutes ago has not held five minutes yet
    assert spots["3"]["occupied"] is None
    quick = client.get(
        tenant.url("/parking/zones/Markt/spots"), params={"hold_minutes": 1}, headers=viewer
    ).json()
    assert {spot["spot"]: spot["occupied"] for spot in quick["items"]}["2"] is True

    assert (
        client.put(
            tenant.url("/parking/zones/Markt/capacity"), json={"capacity": 10}, headers=viewer
        ).status_code
        == 403
    )
    entered = client.put(
        tenant.url("/parking/zones/Markt/capacity"), json={"capacity": 10}, headers=tenant.headers("editor")
    )
    assert entered.status_code == 200
    assert entered.json()["free"] == 10 - 1 - 1

    history = client.get(
        tenant.url("/parking/zones/Markt/occupancy"),
        params={"start": (NOW - timedelta(hours=4)).isoformat(), "bucket": "1h"},
        headers=viewer,
    ).json()
    assert len(history) == 5
    assert history[0]["gap"] is True  # nothing known before the first report, 3 h ago
    assert history[1]["gap"] is False
    assert history[-2]["occupied"] == pytest.approx(1.0)
    week = client.get(
        tenant.url("/parking/zones/Markt/typical-week"), params={"weeks": 1}, headers=viewer
    ).json()
    assert len(week) == 168
    assert any(hour["occupancy_percent"] for hour in week)
    assert client.get(tenant.url("/parking/zones/Nirgendwo"), headers=viewer).status_code == 404


def test_zone_occupancy_days_begin_at_the_towns_midnight(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    spot = parking_spot(client, tenant, "Bahnhof", "1")
    readings_of(engine, spot, "occupied", [(timedelta(days=4), 1.0)])
    berlin = ZoneInfo("Europe/Berlin")
    params = {"start": (NOW - timedelta(days=3)).isoformat(), "bucket": "1d"}

    def day_starts(extra: dict[str, str]) -> list[datetime]:
        response = client.get(
            tenant.url("/parking/zones/Bahnhof/occupancy"),
            params=params | extra,
            headers=tenant.headers("viewer"),
        )
        assert response.status_code == 200, response.text
        assert all(bucket["occupied"] == pytest.approx(1.0) for bucket in response.json())
        return [datetime.fromisoformat(bucket["time"]) for bucket in response.json()]

    local = day_starts({"tz": "Europe/Berlin"})
    assert [moment.astimezone(berlin).time() for moment in local] == [time(0)] * 4
    assert local[0].astimezone(berlin).date() == (NOW - timedelta(days=3)).astimezone(berlin).date()
    assert [moment.time() for moment in day_starts({})] == [time(0)] * 4  # UTC without a zone


def test_waste_forecast_and_collection_list(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    filling = register(client, tenant, name="Bin Markt")["dev_eui"]
    full = register(client, tenant, name="Bin Bahnhof")["dev_eui"]
    idle = register(client, tenant, name="Bin Friedhof")["dev_eui"]
    before = [(timedelta(hours=hours), 80.0 + (100 - hours) * 0.1) for hours in range(100, 50, -1)]
    since = [(timedelta(hours=hours), 10.0 + (50 - hours) * 1.0) for hours in range(50, -1, -1)]
    readings_of(engine, filling, "fill_level", before + since)
    readings_of(engine, full, "fill_level", [(timedelta(hours=hours), 95.0) for hours in range(5, -1, -1)])
    readings_of(engine, idle, "fill_level", [(timedelta(hours=hours), 20.0) for hours in range(5, -1, -1)])
    viewer = tenant.headers("viewer")

    bins = {
        row["dev_eui"]: row for row in client.get(tenant.url("/waste/bins"), headers=viewer).json()["items"]
    }
    assert bins[filling]["fill_rate_percent_per_day"] == pytest.approx(24.0, rel=0.05)
    assert datetime.fromisoformat(bins[filling]["last_emptied_at"]) == pytest.approx(
        NOW - timedelta(hours=50), abs=timedelta(seconds=1)
    )
    full_at = datetime.fromisoformat(bins[filling]["full_at"])
    assert full_at - NOW == pytest.approx(timedelta(hours=30), abs=timedelta(hours=1))
    assert bins[idle]["full_at"] is None

    due = client.get(tenant.url("/waste/collection"), params={"within_hours": 48}, headers=viewer).json()[
        "items"
    ]
    assert [row["dev_eui"] for row in due] == [full, filling]
    soon = client.get(tenant.url("/waste/collection"), params={"within_hours": 12}, headers=viewer).json()[
        "items"
    ]
    assert [row["dev_eui"] for row in soon] == [full]
    paged = client.get(
        tenant.url("/waste/collection"), params={"within_hours": 48, "limit": 1}, headers=viewer
    ).json()
    rest = client.get(
        tenant.url("/waste/collection"),
        params={"within_hours": 48, "limit": 1, "cursor": paged["next_cursor"]},
        headers=viewer,
    ).json()
    assert [row["dev_eui"] for row in paged["items"] + rest["items"]] == [full, filling]

    emptied = client.get(tenant.url(f"/waste/bins/{filling}/emptyings"), headers=viewer).json()
    assert len(emptied) == 1
    assert emptied[0]["before_percent"] == pytest.approx(85.0, abs=0.2)


def test_bins_read_from_the_last_emptying_answer_as_the_whole_window(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    filling = register(client, tenant, name="Bin Kirchplatz")["dev_eui"]
    before = [(timedelta(hours=hours), 80.0 + (100 - hours) * 0.1) for hours in range(100, 50, -1)]
    since = [(timedelta(hours=hours), 10.0 + (50 - hours) * 1.0) for hours in range(50, -1, -1)]
    readings_of(engine, filling, "fill_level", before + since)
    viewer = tenant.headers("viewer")

    def bin_now() -> dict[str, Any]:
        rows = client.get(tenant.url("/waste/bins"), headers=viewer).json()["items"]
        return next(row for row in rows if row["dev_eui"] == filling)

    def whole_window() -> dict[str, Any]:
        HINTS._starts.clear()
        return bin_now()

    first = bin_now()
    assert HINTS.usable([device_id(engine, filling)], NOW - timedelta(days=14))  # learned
    assert bin_now() == first == whole_window()

    # The history is decoded anew without the emptying: the hint no longer holds, and the
    # answer is again the one the whole window gives (a fit over all 101 hours).
    whole_window()
    with Session(engine) as session:
        session.execute(
            text("UPDATE reading SET value = 10.0 WHERE device_id = :id AND time < :emptied"),
            {"id": device_id(engine, filling), "emptied": NOW - timedelta(hours=50, minutes=30)},
        )
        session.commit()
    changed = bin_now()
    assert changed["last_emptied_at"] is None
    assert changed == whole_window()


def soil_sensor(client: TestClient, tenant: Tenant, soil: str, tag: str, tree: str) -> str:
    body = {
        "use_case": "soil",
        "name": f"Baum {tree}",
        "tags": [tag],
        "metadata": {"soil_type": soil, "tree_id": tree},
    }
    return str(register(client, tenant, **body)["dev_eui"])


def test_soil_lights_areas_and_watering(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    sandy = soil_sensor(client, tenant, "sand", "bahnhofstrasse", "B-1")
    loamy = soil_sensor(client, tenant, "loam", "bahnhofstrasse", "B-2")
    clayey = soil_sensor(client, tenant, "clay", "stadtpark", "P-1")
    # sand dries 1 %/day towards its red mark at 8 %: 10 % now, two days to go
    readings_of(
        engine,
        sandy,
        "soil_moisture",
        [(timedelta(hours=hours), 10.0 + hours / 24) for hours in range(72, -1, -6)],
    )
    readings_of(engine, loamy, "soil_moisture", [(timedelta(hours=1), 30.0)])
    readings_of(engine, clayey, "soil_moisture", [(timedelta(hours=1), 20.0)])
    viewer = tenant.headers("viewer")

    sensors = {
        row["dev_eui"]: row for row in client.get(tenant.url("/soil/sensors"), headers=viewer).json()["items"]
    }
    assert {key: row["light"] for key, row in sensors.items()} == {
        sandy: "yellow",
        loamy: "green",
        clayey: "red",
    }
    assert sensors[sandy]["drying_percent_per_day"] == pytest.approx(1.0, rel=0.02)
    assert sensors[sandy]["days_until_red"] == pytest.approx(2.0, abs=0.1)
    assert sensors[sandy]["tree_id"] == "B-1"

    water = client.get(tenant.url("/soil/needs-water"), params={"within_days": 3}, headers=viewer).json()[
        "items"
    ]
    assert [row["dev_eui"] for row in water] == [clayey, sandy]
    assert [
        row["dev_eui"]
        for row in client.get(
            tenant.url("/soil/needs-water"), params={"within_days": 1}, headers=viewer
        ).json()["items"]
    ] == [clayey]

    areas = {
        row["area"]: row for row in client.get(tenant.url("/soil/areas"), headers=viewer).json()["items"]
    }
    assert areas["bahnhofstrasse"]["light"] == "yellow"
    assert areas["bahnhofstrasse"]["lights"] == {"green": 1, "yellow": 1, "red": 0}
    assert areas["stadtpark"]["light"] == "red"

    limits = {"yellow_below_percent": 9.0, "red_below_percent": 5.0}
    assert (
        client.put(
            tenant.url("/soil/thresholds/sand"), json=limits, headers=tenant.headers("editor")
        ).status_code
        == 403
    )
    entered = client.put(tenant.url("/soil/thresholds/sand"), json=limits, headers=tenant.headers("admin"))
    assert entered.json() == {"soil_type": "sand", **limits, "entered": True}
    after = {
        row["dev_eui"]: row["light"]
        for row in client.get(tenant.url("/soil/sensors"), headers=viewer).json()["items"]
    }
    assert after[sandy] == "green"
    wrong = client.put(
        tenant.url("/soil/thresholds/sand"),
        json={"yellow_below_percent": 5, "red_below_percent": 9},
        headers=tenant.headers("admin"),
    )
    assert wrong.status_code == 422
    assert (
        client.delete(tenant.url("/soil/thresholds/sand"), headers=tenant.headers("admin")).status_code == 204
    )
    assert (
        client.delete(tenant.url("/soil/thresholds/sand"), headers=tenant.headers("admin")).status_code == 404
    )
    listed = {
        row["soil_type"]: row for row in client.get(tenant.url("/soil/thresholds"), headers=viewer).json()
    }
    assert listed["sand"]["entered"] is False


def test_environment_shows_environmental_quantities_only(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    station = register(client, tenant, use_case="environment", name="Luft Rathaus")["dev_eui"]
    readings_of(engine, station, "pm2_5", [(timedelta(minutes=30), 8.0), (timedelta(minutes=10), 12.0)])
    readings_of(engine, station, "battery", [(timedelta(minutes=10), 88.0)])
    bin_only = register(client, tenant)["dev_eui"]
    readings_of(engine, bin_only, "fill_level", [(timedelta(minutes=10), 50.0)])
    viewer = tenant.headers("viewer")

    latest = client.get(tenant.url("/environment/latest"), headers=viewer).json()["items"]
    assert [(row["dev_eui"], set(row["values"])) for row in latest] == [(station, {"pm2_5"})]
    assert (
        client.get(tenant.url("/environment/latest"), params={"quantity": "co2"}, headers=viewer).json()[
            "items"
        ]
        == []
    )
    history = client.get(
        tenant.url("/environment/history"), params={"dev_eui": station}, headers=viewer
    ).json()
    assert [(point["quantity"], point["value"]) for point in history["items"]] == [
        ("pm2_5", 8.0),
        ("pm2_5", 12.0),
    ]
    narrowed = client.get(
        tenant.url("/environment/history"), params={"dev_eui": station, "quantity": "battery"}, headers=viewer
    )
    assert narrowed.json()["items"] == []
    not_environmental = client.get(
        tenant.url("/environment/history"), params={"dev_eui": bin_only}, headers=viewer
    )
    assert not_environmental.status_code == 404
    assert not_environmental.json()["detail"] == f"no device {bin_only}"
    bucketed = client.get(
        tenant.url("/environment/history"),
        params={"dev_eui": station, "bucket": "1h", "agg": "max"},
        headers=viewer,
    )
    assert max(point["value"] or 0 for point in bucketed.json()["items"]) == 12.0


# --- isolation matrix of the use-case, health and alert routes --------------------------------


@dataclass(frozen=True)
class Resources:
    slug: str
    zone: str
    spot: str
    bin: str
    gateway_id: str
    rule_id: int
    event_id: int
    webhook_id: int
    secret_name: str


def populate(client: TestClient, engine: Engine, tenant: Tenant) -> Resources:
    secret_name = f"secret-{tenant.slug}"
    zone = f"zone-{tenant.slug}"
    spot = parking_spot(client, tenant, zone, "1", name=secret_name)
    readings_of(engine, spot, "occupied", [(timedelta(hours=1), 1.0)])
    bin_eui = register(client, tenant, name=secret_name)["dev_eui"]
    readings_of(engine, bin_eui, "fill_level", [(timedelta(hours=2), 95.0), (timedelta(hours=1), 96.0)])
    gateway_id = add_gateway(engine, tenant.id, name=secret_name)
    with Session(engine) as session:
        rule = create_rule(session, tenant.id, name=secret_name, kind="bin_above")
        event = AlertEvent(
            rule_id=rule.id,
            municipality_id=tenant.id,
            subject_kind="device",
            subject=bin_eui,
            value=96.0,
            message=secret_name,
            opened_at=NOW,
        )
        session.add(event)
        webhook, _ = create_subscription(
            session,
            tenant.id,
            url="http://127.0.0.1:9/hook",
            description=secret_name,
            box=SecretBox.from_settings(services_of(client.app).settings.secrets),
            targets=WebhookSettings(allow_http=True, allowed_private_targets=["127.0.0.1"]),
        )
        set_thresholds(session, tenant.id, zone, yellow_below_percent=20, red_below_percent=10)
        session.commit()
        return Resources(
            tenant.slug, zone, spot, bin_eui, gateway_id, rule.id, event.id, webhook.id, secret_name
        )


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    action: Action
    body: Callable[[Resources], dict[str, Any]] | None = None
    params: dict[str, Any] | None = None
    success: int = 200

    def call(self, client: TestClient, target: Resources, key: str) -> Any:
        url = "/v1/municipalities/" + self.path.format(
            slug=target.slug,
            zone=target.zone,
            soil_type=target.zone,
            dev_eui=target.bin,
            gateway_id=target.gateway_id,
            rule_id=target.rule_id,
            event_id=target.event_id,
            webhook_id=target.webhook_id,
        )
        kwargs: dict[str, Any] = {"headers": auth(key), "params": self.params}
        if self.body is not None:
            kwargs["json"] = self.body(target)
        return client.request(self.method, url, **kwargs)


ROUTES = {
    "zones": Route("GET", "{slug}/parking/zones", Action.READ),
    "zone": Route("GET", "{slug}/parking/zones/{zone}", Action.READ),
    "zone-capacity": Route(
        "PUT", "{slug}/parking/zones/{zone}/capacity", Action.EDIT_DEVICES, body=lambda _: {"capacity": 4}
    ),
    "zone-spots": Route("GET", "{slug}/parking/zones/{zone}/spots", Action.READ),
    "zone-occupancy": Route("GET", "{slug}/parking/zones/{zone}/occupancy", Action.READ),
    "zone-typical": Route(
        "GET", "{slug}/parking/zones/{zone}/typical-week", Action.READ, params={"weeks": 1}
    ),
    "bins": Route("GET", "{slug}/waste/bins", Action.READ),
    "collection": Route("GET", "{slug}/waste/collection", Action.READ),
    "emptyings": Route("GET", "{slug}/waste/bins/{dev_eui}/emptyings", Action.READ),
    "soil-sensors": Route("GET", "{slug}/soil/sensors", Action.READ),
    "soil-areas": Route("GET", "{slug}/soil/areas", Action.READ),
    "soil-water": Route("GET", "{slug}/soil/needs-water", Action.READ),
    "soil-thresholds": Route("GET", "{slug}/soil/thresholds", Action.READ),
    "soil-threshold-put": Route(
        "PUT",
        "{slug}/soil/thresholds/{soil_type}",
        Action.MANAGE_KEYS,
        body=lambda _: {"yellow_below_percent": 40, "red_below_percent": 30},
    ),
    "soil-threshold-delete": Route(
        "DELETE", "{slug}/soil/thresholds/{soil_type}", Action.MANAGE_KEYS, success=204
    ),
    "environment-latest": Route("GET", "{slug}/environment/latest", Action.READ),
    "environment-history": Route(
        "GET", "{slug}/environment/history", Action.READ, params={"dev_eui": "placeholder"}
    ),
    "health-gateways": Route("GET", "{slug}/health/gateways", Action.READ),
    "health-gateway": Route("GET", "{slug}/health/gateways/{gateway_id}", Action.READ),
    "health-devices": Route("GET", "{slug}/health/devices", Action.READ),
    "health-device": Route("GET", "{slug}/health/devices/{dev_eui}", Action.READ),
    "rules": Route("GET", "{slug}/alerts/rules", Action.READ),
    "rule-create": Route(
        "POST",
        "{slug}/alerts/rules",
        Action.MANAGE_KEYS,
        body=lambda _: {"name": "n", "kind": "device_silent"},
        success=201,
    ),
    "rule-delete": Route("DELETE", "{slug}/alerts/rules/{rule_id}", Action.MANAGE_KEYS, success=204),
    "events": Route("GET", "{slug}/alerts/events", Action.READ),
    "event-ack": Route("POST", "{slug}/alerts/events/{event_id}/ack", Action.EDIT_GATEWAYS),
    "webhooks": Route("GET", "{slug}/alerts/webhooks", Action.MANAGE_KEYS),
    "webhook-create": Route(
        "POST",
        "{slug}/alerts/webhooks",
        Action.MANAGE_KEYS,
        body=lambda _: {"url": "https://example.org/h"},
        success=201,
    ),
    "webhook-delete": Route("DELETE", "{slug}/alerts/webhooks/{webhook_id}", Action.MANAGE_KEYS, success=204),
    "webhook-deliveries": Route("GET", "{slug}/alerts/webhooks/{webhook_id}/deliveries", Action.MANAGE_KEYS),
}
ALL_ROLES = (*MUNICIPAL_ROLES, Role.REGION_ADMIN.value)
OWN_PREFIXES = ("/parking", "/waste", "/soil", "/environment", "/health", "/alerts")


def test_every_route_of_these_features_is_in_the_matrix(client: TestClient) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for method in operations
        if path.startswith("/v1/municipalities/{slug}/")
        and path[len("/v1/municipalities/{slug}") :].startswith(OWN_PREFIXES)
    }
    covered = {(route.method, "/v1/municipalities/" + route.path) for route in ROUTES.values()}
    assert documented == covered


def _with_history_device(route: Route, target: Resources, engine: Engine) -> Route:
    if route.params is not None and route.params.get("dev_eui") == "placeholder":
        # The bin measures the air too: the environment history names only such devices.
        readings_of(engine, target.bin, "temperature", [(timedelta(hours=1), 4.0)])
        return Route(
            route.method, route.path, route.action, route.body, {"dev_eui": target.bin}, route.success
        )
    return route


@pytest.mark.parametrize("role", ALL_ROLES)
@pytest.mark.parametrize("name", list(ROUTES))
def test_each_role_in_its_own_municipality(
    client: TestClient, engine: Engine, tenant: Tenant, region_key: str, name: str, role: str
) -> None:
    own = populate(client, engine, tenant)
    route = _with_history_device(ROUTES[name], own, engine)
    key = region_key if role == Role.REGION_ADMIN.value else tenant.keys[role]
    response = route.call(client, own, key)
    allowed = route.action in ACTIONS_BY_ROLE[Role(role)]
    assert response.status_code == (route.success if allowed else 403), response.text
    if not allowed:
        assert response.headers["content-type"] == "application/problem+json"
        assert own.secret_name not in str(without_instance(response.json()))


def without_instance(problem: dict[str, Any]) -> dict[str, Any]:
    """The problem without `instance`, which repeats the request path (and any name it holds)."""
    return {name: value for name, value in problem.items() if name != "instance"}


@pytest.mark.parametrize("role", MUNICIPAL_ROLES)
@pytest.mark.parametrize("name", list(ROUTES))
def test_a_foreign_municipality_is_invisible(
    client: TestClient, engine: Engine, tenant: Tenant, neighbour: Tenant, name: str, role: str
) -> None:
    theirs = populate(client, engine, neighbour)
    route = _with_history_device(ROUTES[name], theirs, engine)
    response = route.call(client, theirs, tenant.keys[role])
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert theirs.secret_name not in str(without_instance(response.json()))
    assert theirs.bin not in str(without_instance(response.json()))


@pytest.mark.parametrize("role", MUNICIPAL_ROLES)
def test_foreign_resources_under_the_own_slug_are_invisible(
    client: TestClient, engine: Engine, tenant: Tenant, neighbour: Tenant, role: str
) -> None:
    own = populate(client, engine, tenant)
    theirs = populate(client, engine, neighbour)
    smuggled = Resources(
        own.slug,
        theirs.zone,
        theirs.spot,
        theirs.bin,
        theirs.gateway_id,
        theirs.rule_id,
        theirs.event_id,
        theirs.webhook_id,
        theirs.secret_name,
    )
    for name, route in ROUTES.items():
        if route.path.count("{") < 2 or name in ("zone-capacity", "soil-threshold-put"):
            continue  # those two name a zone or soil type of the own municipality: nothing foreign
        response = route.call(client, smuggled, tenant.keys[role])
        allowed = route.action in ACTIONS_BY_ROLE[Role(role)]
        assert response.status_code == (404 if allowed else 403), (name, response.text)
        assert theirs.secret_name not in str(without_instance(response.json())), name
    lists = [name for name, route in ROUTES.items() if route.method == "GET" and "{" not in route.path[6:]]
    for name in lists:
        response = ROUTES[name].call(client, own, tenant.keys[role])
        assert theirs.secret_name not in response.text, name
        assert theirs.bin not in response.text, name
        assert theirs.gateway_id not in response.text, name
