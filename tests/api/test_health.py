"""Link health through HTTP: gateway status with hysteresis, what only one gateway hears,
uptime, signal percentiles; device silence, frame loss with a counter reset, battery trend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from api.schemas.network_health import GatewayHealthOut
from storage.models import GatewayHeartbeat, Reception, Uplink
from storage.uplinks import gateway_rollup_statements
from tests.api.data import Tenant, add_activity, add_gateway, add_readings, device_id, register

NOW = datetime.now(UTC)


def uplinks(
    engine: Engine, tenant: Tenant, dev_eui: str, frames: list[tuple[timedelta, int]], gateways: list[str]
) -> None:
    """Uplinks at `NOW - age` with frame counter `f_cnt`, each heard by every gateway in `gateways`."""
    uplink_rows = []
    reception_rows = []
    for index, (age, f_cnt) in enumerate(frames):
        key = f"{dev_eui}-{index}"
        moment = NOW - age
        uplink_rows.append(
            {
                "received_at": moment,
                "uplink_key": key,
                "municipality_id": tenant.id,
                "source": "tts-test",
                "network_server": "tts",
                "dev_eui": dev_eui,
                "f_cnt": f_cnt,
                "payload": b"\x01",
                "decode_status": "decoded",
            }
        )
        for number, gateway_id in enumerate(gateways):
            reception_rows.append(
                {
                    "received_at": moment,
                    "uplink_key": key,
                    "gateway_id": gateway_id,
                    "antenna": 0,
                    "dev_eui": dev_eui,
                    "municipality_id": tenant.id,
                    "rssi_dbm": -80.0 - 10 * number - index % 10,
                    "snr_db": 5.0 - number,
                }
            )
    with Session(engine) as session:
        session.execute(insert(Uplink), uplink_rows)
        if reception_rows:
            session.execute(insert(Reception), reception_rows)
        for statement in gateway_rollup_statements():
            session.execute(text(statement))
        session.commit()


def test_gateway_health_status_sole_devices_and_uptime(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    rathaus = add_gateway(engine, tenant.id, name="Rathaus", first_seen_at=NOW - timedelta(days=3))
    schule = add_gateway(engine, tenant.id, name="Schule", first_seen_at=NOW - timedelta(days=3))
    lonely = register(client, tenant, name="Nur Rathaus")["dev_eui"]
    shared = register(client, tenant, name="Beide")["dev_eui"]
    every_five = [(timedelta(minutes=5 * step), step) for step in range(2 * 288, -1, -1)]
    uplinks(engine, tenant, lonely, every_five, [rathaus])
    # the shared device talked from 54 h until 29 h ago, heard by both; then Schule heard nothing
    uplinks(
        engine,
        tenant,
        shared,
        [(age + timedelta(hours=6), f) for age, f in every_five[:300]],
        [rathaus, schule],
    )
    viewer = tenant.headers("technician")

    listed = {
        row["gateway_id"]: row
        for row in client.get(tenant.url("/health/gateways"), headers=viewer).json()["items"]
    }
    # the body is written without the model: it must still read as the documented model writes it
    for row in listed.values():
        assert GatewayHealthOut.model_validate(row).model_dump(mode="json") == row
    assert listed[rathaus]["online"] is True
    assert listed[schule]["online"] is False
    assert datetime.fromisoformat(listed[schule]["status_since"]) < NOW - timedelta(hours=5)
    assert listed[rathaus]["uplinks_per_hour"] == pytest.approx(12.0, abs=0.5)
    # in the last 24 hours Rathaus heard only `lonely`, Schule nothing
    assert (listed[rathaus]["devices_heard"], listed[schule]["devices_heard"]) == (1, 0)
    assert listed[schule]["uplinks_per_hour"] == 0
    offline = client.get(tenant.url("/health/gateways"), params={"offline_only": True}, headers=viewer).json()
    assert [row["gateway_id"] for row in offline["items"]] == [schule]

    detail = client.get(tenant.url(f"/health/gateways/{rathaus}"), headers=viewer).json()
    assert detail["heard_only_by_this"] == [lonely]
    assert sorted(detail["devices_heard_7d"]) == sorted([lonely, shared])
    assert -90.0 <= detail["rssi_dbm"]["p50"] <= -80.0
    # first seen three days ago, heard for the last 54 hours
    assert detail["uptime_7d_percent"] == pytest.approx(100 * 54 / 72, abs=1)
    assert detail["uptime_30d_percent"] == detail["uptime_7d_percent"]
    schule_detail = client.get(tenant.url(f"/health/gateways/{schule}"), headers=viewer).json()
    assert schule_detail["heard_only_by_this"] == []


def test_device_health_silence_loss_and_battery(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    gateway = add_gateway(engine, tenant.id)
    talking = register(client, tenant, name="Sender", metadata={"expected_interval_s": 600})["dev_eui"]
    quiet = register(client, tenant, name="Stumm", metadata={"expected_interval_s": 600})["dev_eui"]
    # 0..9 with 4 and 7 lost, then a rejoin: 0..4, all there
    frames = [0, 1, 2, 3, 5, 6, 8, 9, 0, 1, 2, 3, 4]
    uplinks(
        engine,
        tenant,
        talking,
        [(timedelta(minutes=10 * (len(frames) - i)), f) for i, f in enumerate(frames)],
        [gateway],
    )
    add_activity(
        engine,
        tenant.id,
        talking,
        last_seen_at=NOW - timedelta(minutes=10),
        last_gateway_id=gateway,
        last_rssi_dbm=-97.0,
        last_snr_db=4.5,
        last_spreading_factor=9,
    )
    add_activity(engine, tenant.id, quiet, last_seen_at=NOW - timedelta(minutes=30))
    talking_id = device_id(engine, talking)
    add_readings(
        engine,
        [
            (NOW - timedelta(days=day), talking_id, "battery", 80.0 - 0.5 * (30 - day))
            for day in range(30, -1, -1)
        ],
    )
    viewer = tenant.headers("viewer")

    rows = {
        row["dev_eui"]: row
        for row in client.get(tenant.url("/health/devices"), headers=viewer).json()["items"]
    }
    assert rows[talking]["silent"] is False
    assert rows[quiet]["silent"] is True  # 30 min > 2.5 × 10 min
    assert rows[talking]["frame_loss_percent"] == pytest.approx(100 * 2 / 15, abs=0.01)
    assert rows[talking]["frame_counter_resets"] == 1
    assert rows[talking]["battery_percent_per_week"] == pytest.approx(-3.5, abs=0.1)
    assert rows[talking]["battery_weeks_left"] == pytest.approx((65 - 5) / 3.5, abs=0.5)  # 65 % now
    assert (rows[talking]["best_gateway_id"], rows[talking]["spreading_factor"]) == (gateway, 9)
    silent = client.get(tenant.url("/health/devices"), params={"silent_only": True}, headers=viewer).json()
    assert [row["dev_eui"] for row in silent["items"]] == [quiet]

    detail = client.get(tenant.url(f"/health/devices/{talking}"), headers=viewer).json()
    assert [signal["gateway_id"] for signal in detail["gateways"]] == [gateway]
    assert detail["gateways"][0]["receptions"] == len(frames)


def test_heartbeats_alone_keep_a_gateway_online(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    """A gateway that carries no uplinks but reports itself every 5 minutes is up; one whose
    reports stopped three hours ago is down since then (bins of heartbeats, no receptions)."""
    quiet = add_gateway(engine, tenant.id, name="Funkturm", first_seen_at=NOW - timedelta(days=3))
    stopped = add_gateway(engine, tenant.id, name="Wasserturm", first_seen_at=NOW - timedelta(days=3))
    beats = [
        {"time": NOW - timedelta(minutes=5 * step), "gateway_id": gateway, "online": True}
        for gateway, first_step in ((quiet, 0), (stopped, 36))
        for step in range(first_step, 2 * 288)
    ]
    with Session(engine) as session:
        session.execute(insert(GatewayHeartbeat), beats)
        session.commit()
    listed = {
        row["gateway_id"]: row
        for row in client.get(tenant.url("/health/gateways"), headers=tenant.headers("technician")).json()[
            "items"
        ]
    }
    assert listed[quiet]["online"] is True
    assert listed[stopped]["online"] is False
    since = datetime.fromisoformat(listed[stopped]["status_since"])
    assert NOW - timedelta(hours=3) < since < NOW - timedelta(hours=2)
    assert listed[quiet]["uplinks_per_hour"] == 0
