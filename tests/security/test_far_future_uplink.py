"""A network server's time is not taken on its word.

An uplink claiming to be received on 9999-12-31 used to be stored at that time, and
every summary that only moves forward (latest values, bin levels, link health,
gateway last-seen and last-heard) stood still on it for good. Now a time more than a
few minutes ahead of the bridge's clock is replaced by the bridge's receive time, the
claim is kept beside the frame (`uplink.claimed_received_at`), and later uplinks move
everything on as usual. By webhook and by MQTT.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from domain.uplink import DEFAULT_MAX_FUTURE
from ingest.metrics import Outcome
from services.alerts import evaluate_rule
from storage.alerts import RuleKind, create_rule
from storage.models_usecases import AlertRule
from tests.api.data import Tenant, TenantFactory, add_gateway, device_id, register
from tests.conftest import Broker
from tests.ingest.harness import publish, start_bridge, wait_until
from tests.ingest.messages import Traffic
from tests.security.town_ingest import rows, town_source, tts_uplink

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

END_OF_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def bin_uplink(traffic: Traffic, n: int, at: datetime, distance_mm: float) -> tuple[str, bytes]:
    """A bin sensor's uplink whose network-decoded distance gives its fill level."""
    topic, body = tts_uplink(traffic, n, device=1, at=at)
    message = json.loads(body)
    message["uplink_message"]["decoded_payload"] = {"distance": distance_mm}
    return topic, json.dumps(message).encode()


def setup_bin(client: TestClient, engine: Engine, town: Tenant, traffic: Traffic) -> tuple[int, str, int]:
    """A waste bin of `town` (1200 mm deep), its gateway, and a rule for a bin over 90 %."""
    dev_eui = traffic.dev_eui(1)
    register(client, town, dev_eui=dev_eui, codec_id=None, decoder_source="network", use_case="waste")
    gateway = add_gateway(engine, town.id, gateway_id=f"00{traffic.tag:0>14}")
    with Session(engine) as session:
        rule = create_rule(session, town.id, name="full", kind=RuleKind.BIN_ABOVE.value, threshold=90.0)
        session.commit()
        rule_id = rule.id
    return device_id(engine, dev_eui), gateway, rule_id


def assert_nothing_frozen(
    client: TestClient,
    engine: Engine,
    town: Tenant,
    traffic: Traffic,
    setup: tuple[int, str, int],
    last_at: datetime,
    refused_between: tuple[datetime, datetime],
) -> None:
    device, gateway, rule_id = setup
    dev_eui = traffic.dev_eui(1)
    # The later, believable uplink is the latest of everything.
    assert rows(
        engine, "SELECT quantity, time FROM device_state WHERE device_id = :d ORDER BY 1", d=device
    ) == [
        ("distance", last_at),
        ("fill_level", last_at),
    ]
    horizon = datetime.now(UTC) + DEFAULT_MAX_FUTURE
    activity = "SELECT last_seen_at FROM device_activity WHERE municipality_id = :m AND dev_eui = :e"
    assert rows(engine, activity, m=town.id, e=dev_eui) == [(last_at,)]
    ((last_seen, last_uplink),) = rows(
        engine, "SELECT last_seen_at, last_uplink_at FROM gateway WHERE gateway_id = :g", g=gateway
    )
    assert last_seen <= horizon
    assert last_uplink <= horizon
    ((last_heard,),) = rows(
        engine, "SELECT last_heard_at FROM gateway_heard WHERE gateway_id = :g", g=gateway
    )
    assert last_heard <= horizon
    assert rows(
        engine, "SELECT count(*) FROM reading WHERE device_id = :d AND time > :h", d=device, h=horizon
    ) == [(0,)]
    # The bin reads as the last uplink left it (nearly empty), and no alert holds it full.
    bins = client.get(town.url("/waste/bins"), headers=town.headers("viewer"))
    assert bins.status_code == 200, bins.text
    (item,) = bins.json()["items"]
    assert item["fill_percent"] < 20, item
    with Session(engine) as session:
        rule = session.get(AlertRule, rule_id)
        assert rule is not None
        assert evaluate_rule(session, rule, datetime.now(UTC)) == (0, 0)
        session.rollback()

    # The refused frame is kept raw, under the bridge's time, with what was claimed.
    refused = rows(
        engine,
        "SELECT received_at, claimed_received_at FROM uplink "
        "WHERE dev_eui = :e AND claimed_received_at IS NOT NULL",
        e=dev_eui,
    )
    assert len(refused) == 1
    stored_at, claimed = refused[0]
    assert claimed.year == 9999
    assert refused_between[0] <= stored_at <= refused_between[1]


def test_a_far_future_webhook_uplink_freezes_nothing(
    client: TestClient,
    engine: Engine,
    migrated_db_url: str,
    make_tenant: TenantFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    town, traffic = make_tenant(), Traffic()
    setup = setup_bin(client, engine, town, traffic)
    with town_source(monkeypatch, migrated_db_url, engine, town.slug, f"t-{traffic.tag}") as source:
        earlier = bin_uplink(traffic, 0, datetime.now(UTC) - timedelta(minutes=2), 1000)[1]
        assert source.post(earlier).status_code == 200
        far = bin_uplink(traffic, 1, END_OF_TIME, 60)[1]
        before = datetime.now(UTC)
        answer = source.post(far)
        after = datetime.now(UTC)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "stored"
        # A redelivery of the refused frame (a network server's retry) is recognised by its key.
        assert source.post(far).json()["outcome"] == "duplicate"
        last_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        assert source.post(bin_uplink(traffic, 2, last_at, 1050)[1]).status_code == 200
        counted = source.ingest.counters.snapshot()[source.name]
    assert_nothing_frozen(client, engine, town, traffic, setup, last_at, (before, after))
    assert rows(engine, "SELECT count(*) FROM uplink WHERE dev_eui = :e", e=traffic.dev_eui(1)) == [(3,)]
    assert counted[Outcome.FUTURE_TIME] == 2


def test_a_far_future_mqtt_uplink_freezes_nothing(
    client: TestClient,
    engine: Engine,
    migrated_db_url: str,
    make_tenant: TenantFactory,
    broker: Broker,
    tmp_path: Path,
) -> None:
    town, traffic = make_tenant(), Traffic()
    setup = setup_bin(client, engine, town, traffic)
    dev_eui = traffic.dev_eui(1)

    def stored(count: int) -> Callable[[], bool]:
        return lambda: rows(engine, "SELECT count(*) FROM uplink WHERE dev_eui = :e", e=dev_eui) == [(count,)]

    bridge = start_bridge(
        migrated_db_url,
        traffic.sources_toml(broker.host, broker.port, town.slug),
        tmp_path,
        instance="future",
    )
    try:
        before = datetime.now(UTC)
        publish(
            broker.host,
            broker.port,
            [
                bin_uplink(traffic, 0, datetime.now(UTC) - timedelta(minutes=2), 1000),
                bin_uplink(traffic, 1, END_OF_TIME, 60),
            ],
        )
        assert wait_until(stored(2), 60)
        after = datetime.now(UTC)
        last_at = after.replace(microsecond=0) + timedelta(seconds=1)
        publish(broker.host, broker.port, [bin_uplink(traffic, 2, last_at, 1050)])
        assert wait_until(stored(3), 60)
    finally:
        bridge.stop()
    assert bridge.counters.snapshot()[traffic.source_names[0]][Outcome.FUTURE_TIME] == 1
    assert_nothing_frozen(client, engine, town, traffic, setup, last_at, (before, after))
