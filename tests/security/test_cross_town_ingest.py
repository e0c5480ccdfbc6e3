"""A municipality's network-server source writes for its own town only.

Town A's source sending an uplink of town B's DevEUI must change nothing of B (readings,
latest values, link health, gateway visibility, alerts); the frame is A's own unclaimed
frame, and counted. B registering a DevEUI that A's source heard takes none of A's
frames. Only an ingest grant of B lets A's sources deliver for B's devices.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app_services import services_of
from decoders import CodecRegistry
from ingest.metrics import Outcome
from services.alerts import evaluate_rule
from services.redecoding import redecode_device
from storage.alerts import RuleKind, create_rule
from storage.api_keys import Role, create_api_key
from storage.models_usecases import AlertRule
from tests.api.data import (
    RegisteredHooks,
    Tenant,
    TenantFactory,
    add_gateway,
    auth,
    device_id,
    register,
    unique_slug,
)
from tests.conftest import Broker
from tests.ingest.harness import publish, start_bridge, wait_until
from tests.ingest.messages import Traffic
from tests.security.town_ingest import rows, town_source, tts_uplink

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def register_sensor(client: TestClient, town: Tenant, dev_eui: str) -> None:
    """A sensor whose readings come from the network server's decoded object."""
    register(client, town, dev_eui=dev_eui, codec_id=None, decoder_source="network", use_case="environment")


def nothing_of(engine: Engine, town: Tenant, dev_eui: str) -> dict[str, object]:
    """Everything that A's source must never move for town `town` and this DevEUI."""
    device = device_id(engine, dev_eui)
    return {
        "readings": rows(engine, "SELECT count(*) FROM reading WHERE device_id = :d", d=device),
        "state": rows(engine, "SELECT count(*) FROM device_state WHERE device_id = :d", d=device),
        "activity": rows(
            engine,
            "SELECT count(*) FROM device_activity WHERE municipality_id = :m AND dev_eui = :e",
            m=town.id,
            e=dev_eui,
        ),
        "heard": rows(engine, "SELECT count(*) FROM gateway_heard WHERE municipality_id = :m", m=town.id),
        "receptions": rows(engine, "SELECT count(*) FROM reception WHERE municipality_id = :m", m=town.id),
        "frames": rows(engine, "SELECT count(*) FROM uplink WHERE municipality_id = :m", m=town.id),
        "pairs": rows(engine, "SELECT count(*) FROM gateway_device WHERE dev_eui = :e", e=dev_eui),
    }


NOTHING = {
    name: [(0,)] for name in ("readings", "state", "activity", "heard", "receptions", "frames", "pairs")
}


def test_a_source_stores_another_towns_devEUI_as_its_own_unclaimed_frame(
    client: TestClient,
    engine: Engine,
    migrated_db_url: str,
    make_tenant: TenantFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    town_a, town_b, town_c = make_tenant(), make_tenant(), make_tenant()
    traffic = Traffic()
    theirs = traffic.dev_eui(1)
    register_sensor(client, town_b, theirs)
    c_gateway = add_gateway(engine, town_c.id, gateway_id=f"00{traffic.tag:0>14}", name="secret-of-c")
    with Session(engine) as session:
        silent = create_rule(session, town_b.id, name="silent", kind=RuleKind.DEVICE_SILENT.value)
        hot = create_rule(
            session,
            town_b.id,
            name="hot",
            kind=RuleKind.QUANTITY_ABOVE.value,
            quantity="temperature",
            threshold=0,
        )
        session.commit()
        silent_id, hot_id = silent.id, hot.id

    now = datetime.now(UTC)
    with town_source(monkeypatch, migrated_db_url, engine, town_a.slug, f"a-{traffic.tag}") as source:
        for n in range(3):
            answer = source.post(tts_uplink(traffic, n, device=1, at=now - timedelta(minutes=3 - n))[1])
            assert answer.status_code == 200, answer.text
            assert answer.json()["outcome"] == "stored"
        counted = source.ingest.counters.snapshot()[source.name]

    assert nothing_of(engine, town_b, theirs) == NOTHING
    assert counted[Outcome.FOREIGN] == 3
    # A's own unclaimed frames, with A's receptions: what A's source heard is A's.
    assert (
        rows(
            engine,
            "SELECT municipality_id, device_id, decode_status FROM uplink WHERE dev_eui = :e",
            e=theirs,
        )
        == [(town_a.id, None, "unclaimed")] * 3
    )
    assert rows(engine, "SELECT municipality_id FROM gateway_heard WHERE gateway_id = :g", g=c_gateway) == [
        (town_a.id,)
    ]
    unclaimed = client.get(town_a.url("/unclaimed-devices"), headers=town_a.headers("viewer")).json()
    assert [item["dev_eui"] for item in unclaimed["items"]] == [theirs]
    # B's views: C's gateway is not B's to see, B's device has no link health, B's alerts
    # read B's own silence and no value of A's frames.
    for view in ("/gateways", "/health/gateways", "/health/devices", f"/health/devices/{theirs}"):
        seen = client.get(town_b.url(view), headers=town_b.headers("viewer"))
        assert seen.status_code == 200, seen.text
        assert c_gateway not in seen.text, view
        assert "secret-of-c" not in seen.text, view
    latest = client.get(town_b.url("/readings/latest"), headers=town_b.headers("viewer")).json()
    assert all(not item.get("values") for item in latest["items"]), latest
    with Session(engine) as session:
        for rule_id, expected in ((silent_id, (1, 0)), (hot_id, (0, 0))):
            rule = session.get(AlertRule, rule_id)
            assert rule is not None
            assert evaluate_rule(session, rule, datetime.now(UTC)) == expected
        session.rollback()


def test_registering_a_devEUI_claims_only_frames_of_the_own_towns_sources(
    client: TestClient,
    engine: Engine,
    migrated_db_url: str,
    make_tenant: TenantFactory,
    hook: RegisteredHooks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    town_a, town_b = make_tenant(), make_tenant()
    traffic = Traffic()
    heard_by_a = traffic.dev_eui(2)
    now = datetime.now(UTC)
    with town_source(monkeypatch, migrated_db_url, engine, town_a.slug, f"a-{traffic.tag}") as source:
        for n in range(4):
            assert (
                source.post(tts_uplink(traffic, n, device=2, at=now - timedelta(minutes=n))[1]).status_code
                == 200
            )

    # B's list shows only what B's sources heard; A's pool is not B's to see.
    listed = client.get(town_b.url("/unclaimed-devices"), headers=town_b.headers("viewer")).json()
    assert listed["items"] == []
    calls_before = len(hook.calls)
    register_sensor(client, town_b, heard_by_a)
    b_device = device_id(engine, heard_by_a)
    # Nothing of B's was heard, so there is no history to decode: A's pool is not asked.
    assert hook.calls[calls_before:] == []
    # The admin's redecode (the real one, run after the response) finds no frame of B's.
    redecoded = client.post(town_b.url(f"/devices/{heard_by_a}/redecode"), headers=town_b.headers("admin"))
    assert redecoded.status_code == 202, redecoded.text
    assert redecoded.json()["frames"] == 0
    report = redecode_device(engine, b_device, codecs=CodecRegistry(), only_unclaimed=True)
    assert report.frames == 0
    assert rows(
        engine, "SELECT DISTINCT municipality_id, device_id FROM uplink WHERE dev_eui = :e", e=heard_by_a
    ) == [(town_a.id, None)]
    assert rows(engine, "SELECT count(*) FROM reading WHERE device_id = :d", d=b_device) == [(0,)]
    # Still A's unclaimed frames: B did not grant A's sources, so nothing of A's claims them.
    still = client.get(town_a.url("/unclaimed-devices"), headers=town_a.headers("viewer")).json()
    assert [item["dev_eui"] for item in still["items"]] == [heard_by_a]


def test_an_ingest_grant_lets_the_source_town_deliver_until_revoked(
    client: TestClient,
    engine: Engine,
    migrated_db_url: str,
    make_tenant: TenantFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    town_a, town_b = make_tenant(), make_tenant()
    traffic = Traffic()
    theirs = traffic.dev_eui(3)
    register_sensor(client, town_b, theirs)
    b_device = device_id(engine, theirs)
    now = datetime.now(UTC)
    with town_source(monkeypatch, migrated_db_url, engine, town_a.slug, f"a-{traffic.tag}") as source:
        assert (
            source.post(tts_uplink(traffic, 0, device=3, at=now - timedelta(minutes=9))[1]).status_code == 200
        )
        assert nothing_of(engine, town_b, theirs) == NOTHING

        # Only the owner's admin grants; the source town sees it but cannot grant itself or revoke.
        assert (
            client.post(
                town_a.url("/ingest-grants"), json={"source": town_a.slug}, headers=town_a.headers("admin")
            ).status_code
            == 422
        )
        assert (
            client.post(
                town_b.url("/ingest-grants"), json={"source": town_a.slug}, headers=town_b.headers("editor")
            ).status_code
            == 403
        )
        granted = client.post(
            town_b.url("/ingest-grants"), json={"source": town_a.slug}, headers=town_b.headers("admin")
        )
        assert granted.status_code == 201, granted.text
        grant = granted.json()
        assert (grant["owner"], grant["source"], grant["direction"]) == (town_b.slug, town_a.slug, "given")
        received = client.get(town_a.url("/ingest-grants"), headers=town_a.headers("admin")).json()["items"]
        assert [(item["id"], item["direction"]) for item in received] == [(grant["id"], "received")]
        refused = client.delete(town_a.url(f"/ingest-grants/{grant['id']}"), headers=town_a.headers("admin"))
        assert refused.status_code == 404
        # A's frames of B's device are B's to claim now, so they leave A's unclaimed list.
        listed = client.get(town_a.url("/unclaimed-devices"), headers=town_a.headers("viewer")).json()
        assert listed["items"] == []

        assert (
            source.post(tts_uplink(traffic, 1, device=3, at=now - timedelta(minutes=1))[1]).status_code == 200
        )
        delivered = rows(
            engine,
            "SELECT municipality_id, device_id, decode_status FROM uplink WHERE dev_eui = :e "
            "ORDER BY received_at",
            e=theirs,
        )
        assert delivered == [(town_a.id, None, "unclaimed"), (town_b.id, b_device, "decoded")]
        assert rows(engine, "SELECT count(*) FROM device_state WHERE device_id = :d", d=b_device) == [(2,)]
        # The grant also lets B claim the frame A's source stored before it.
        report = redecode_device(engine, b_device, codecs=CodecRegistry(), only_unclaimed=True)
        assert report.frames == 1
        assert rows(engine, "SELECT DISTINCT municipality_id FROM uplink WHERE dev_eui = :e", e=theirs) == [
            (town_b.id,)
        ]

        revoked = client.delete(town_b.url(f"/ingest-grants/{grant['id']}"), headers=town_b.headers("admin"))
        assert revoked.status_code == 204
        assert source.post(tts_uplink(traffic, 2, device=3, at=now)[1]).status_code == 200
        last = rows(
            engine,
            "SELECT municipality_id, device_id FROM uplink WHERE dev_eui = :e "
            "ORDER BY received_at DESC LIMIT 1",
            e=theirs,
        )
        assert last == [(town_a.id, None)]


def test_an_mqtt_source_keeps_to_its_own_town(
    client: TestClient,
    engine: Engine,
    migrated_db_url: str,
    make_tenant: TenantFactory,
    broker: Broker,
    tmp_path: Path,
) -> None:
    town_a, town_b = make_tenant(), make_tenant()
    traffic = Traffic()
    theirs, ours = traffic.dev_eui(1), traffic.dev_eui(2)
    register_sensor(client, town_b, theirs)
    register_sensor(client, town_a, ours)
    bridge = start_bridge(
        migrated_db_url,
        traffic.sources_toml(broker.host, broker.port, town_a.slug),
        tmp_path,
        instance="towns",
    )
    try:
        publish(broker.host, broker.port, [traffic.tts_uplink(n, device=1 + n % 2) for n in range(10)])
        tts = traffic.source_names[0]
        assert wait_until(
            lambda: rows(engine, "SELECT count(*) FROM uplink WHERE source = :s", s=tts) == [(10,)], 60
        )
        assert wait_until(lambda: bridge.counters.snapshot().get(tts, {}).get(Outcome.FOREIGN) == 5, 10)
    finally:
        bridge.stop()
    assert nothing_of(engine, town_b, theirs) == NOTHING
    assert rows(
        engine, "SELECT count(*) FROM device_state WHERE device_id = :d", d=device_id(engine, ours)
    ) == [(2,)]
    assert rows(
        engine, "SELECT DISTINCT municipality_id, decode_status FROM uplink WHERE dev_eui = :e", e=theirs
    ) == [(town_a.id, "unclaimed")]


def test_an_ingest_grant_to_an_unknown_slug_answers_as_one_to_a_real_town_and_holds_once_it_exists(
    client: TestClient, region_key: str, make_tenant: TenantFactory
) -> None:
    """Refusing a grant to a slug nobody has would tell any admin which towns exist."""
    owner, real = make_tenant(), make_tenant()
    newcomer = unique_slug("neudorf")
    to_real = client.post(
        owner.url("/ingest-grants"), json={"source": real.slug}, headers=owner.headers("admin")
    )
    to_nobody = client.post(
        owner.url("/ingest-grants"), json={"source": newcomer}, headers=owner.headers("admin")
    )
    assert (to_real.status_code, to_nobody.status_code) == (201, 201)
    assert set(to_real.json()) == set(to_nobody.json())
    assert (to_nobody.json()["source"], to_nobody.json()["direction"]) == (newcomer, "given")
    again = client.post(
        owner.url("/ingest-grants"), json={"source": newcomer}, headers=owner.headers("admin")
    )
    assert again.status_code == 409

    created = client.post(
        "/v1/municipalities",
        json={"slug": newcomer, "name": "Neudorf", "district": None},
        headers=auth(region_key),
    )
    assert created.status_code == 201, created.text
    with Session(services_of(client.app).engine) as session:
        newcomer_admin, _ = create_api_key(session, municipality_slug=newcomer, role=Role.ADMIN, name="admin")
        session.commit()
    received = client.get(f"/v1/municipalities/{newcomer}/ingest-grants", headers=auth(newcomer_admin))
    assert [(item["id"], item["owner"], item["direction"]) for item in received.json()["items"]] == [
        (to_nobody.json()["id"], owner.slug, "received")
    ]

    pending = client.post(
        owner.url("/ingest-grants"), json={"source": unique_slug("nirgendwo")}, headers=owner.headers("admin")
    ).json()["id"]
    assert (
        client.delete(real.url(f"/ingest-grants/{pending}"), headers=real.headers("admin")).status_code == 404
    )
    assert (
        client.delete(owner.url(f"/ingest-grants/{pending}"), headers=owner.headers("admin")).status_code
        == 204
    )
    assert (
        client.delete(owner.url(f"/ingest-grants/{pending}"), headers=owner.headers("admin")).status_code
        == 404
    )
