"""Messages published to a real Mosquitto end up exactly once in a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Broker
from tests.ingest.harness import BOTH_RECEIVE_PATHS, publish, scalar, start_bridge, wait_for_uplinks
from tests.ingest.messages import Traffic


def register_devices(database_url: str, traffic: Traffic, devices: range) -> None:
    import psycopg

    with psycopg.connect(database_url) as conn:
        municipality = conn.execute(
            "INSERT INTO municipality (slug, name) VALUES ('testtown', 'Testtown') "
            "ON CONFLICT (slug) DO UPDATE SET slug = excluded.slug RETURNING id"
        ).fetchone()
        assert municipality is not None
        for device in devices:
            conn.execute(
                "INSERT INTO device (municipality_id, dev_eui, name, decoder_source) "
                "VALUES (%s, %s, %s, 'network')",
                (municipality[0], traffic.dev_eui(device), f"Sensor {device}"),
            )


@BOTH_RECEIVE_PATHS
def test_every_message_is_stored_once_with_receptions(
    broker: Broker, fresh_db_url: str, tmp_path: Path, fast_path: bool
) -> None:
    traffic = Traffic()
    register_devices(fresh_db_url, traffic, range(1, 4))  # the TTS devices; ChirpStack ones stay unclaimed
    bridge = start_bridge(
        fresh_db_url,
        traffic.sources_toml(broker.host, broker.port),
        tmp_path,
        instance="e2e",
        fast_path=fast_path,
    )
    try:
        messages = traffic.mixed(600)
        publish(broker.host, broker.port, messages)
        sources = traffic.source_names
        assert wait_for_uplinks(fresh_db_url, sources, 600) == 600
    finally:
        bridge.stop()
    expected_receptions = sum(1 + n % 3 if n % 2 == 0 else 1 + n % 2 for n in range(600))
    assert scalar(fresh_db_url, "SELECT count(*) FROM reception") == expected_receptions
    assert scalar(fresh_db_url, "SELECT count(*) FROM uplink WHERE decode_status = 'unclaimed'") == 300
    assert scalar(fresh_db_url, "SELECT count(*) FROM uplink WHERE decode_status = 'decoded'") == 300
    # Each registered TTS uplink carries temperature and humidity in its network-decoded object.
    assert scalar(fresh_db_url, "SELECT count(*) FROM reading") == 600
    assert scalar(fresh_db_url, "SELECT count(*) FROM device_state") == 6
    assert scalar(fresh_db_url, "SELECT count(DISTINCT dev_eui) FROM device_activity") == 5
    assert scalar(fresh_db_url, "SELECT count(*) FROM rejected_message") == 0
    counters = bridge.counters.snapshot()
    assert sum(t.get("stored", 0) for t in counters.values()) == 600  # type: ignore[call-overload]


@BOTH_RECEIVE_PATHS
def test_the_same_messages_twice_are_stored_once(
    broker: Broker, fresh_db_url: str, tmp_path: Path, fast_path: bool
) -> None:
    traffic = Traffic()
    bridge = start_bridge(
        fresh_db_url,
        traffic.sources_toml(broker.host, broker.port),
        tmp_path,
        instance="dup",
        fast_path=fast_path,
    )
    try:
        messages = traffic.mixed(300)
        publish(broker.host, broker.port, messages)
        publish(broker.host, broker.port, messages[::-1])
        sources = traffic.source_names
        assert wait_for_uplinks(fresh_db_url, sources, 300) == 300
    finally:
        bridge.stop()
    assert scalar(fresh_db_url, "SELECT count(*) FROM device_activity WHERE uplink_count > 0") == 5
    assert scalar(fresh_db_url, "SELECT sum(uplink_count) FROM device_activity") == 300


def test_two_bridges_on_a_shared_subscription_split_the_stream(
    broker: Broker, fresh_db_url: str, tmp_path: Path
) -> None:
    traffic = Traffic()
    config = traffic.sources_toml(broker.host, broker.port)
    group = f"g{traffic.tag}"
    first = start_bridge(fresh_db_url, config, tmp_path, instance="one", shared_group=group)
    second = start_bridge(fresh_db_url, config, tmp_path, instance="two", shared_group=group)
    try:
        publish(broker.host, broker.port, traffic.mixed(1000))
        sources = traffic.source_names
        assert wait_for_uplinks(fresh_db_url, sources, 1000) == 1000
    finally:
        first.stop()
        second.stop()
    from ingest.metrics import Outcome

    received = [b.counters.total(Outcome.RECEIVED) for b in (first, second)]
    assert sum(received) == 1000, "a shared subscription delivers each message to one member"
    assert min(received) > 0, f"both members should get a share, got {received}"


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'{"uplink_message": {"frm_payload": "***"}}', b"\xff\xfe\x00"],
)
def test_garbage_is_kept_with_its_reason_and_the_bridge_goes_on(
    broker: Broker, fresh_db_url: str, tmp_path: Path, body: bytes
) -> None:
    traffic = Traffic()
    bridge = start_bridge(
        fresh_db_url, traffic.sources_toml(broker.host, broker.port), tmp_path, instance="bad"
    )
    try:
        publish(broker.host, broker.port, [(f"v3/{traffic.tts_app}/devices/x/up", body)])
        publish(broker.host, broker.port, traffic.mixed(10))
        sources = traffic.source_names
        assert wait_for_uplinks(fresh_db_url, sources, 10) == 10
    finally:
        bridge.stop()
    rows = scalar(fresh_db_url, "SELECT array_agg(payload) FROM rejected_message")
    assert rows == [body]
    reason = scalar(fresh_db_url, "SELECT reason FROM rejected_message")
    assert isinstance(reason, str)
    assert len(reason) > 5
