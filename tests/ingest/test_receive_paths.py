"""The start-up check of the fast packet path: a paho internal missing means the public path, one warning."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from decoders import CodecRegistry
from ingest import mqtt_client
from ingest.bridge import Bridge
from ingest.config import IngestSettings, load_sources
from ingest.mqtt_client import BufferedClient, fast_path_available, missing_private_members
from ingest.mqtt_connection import MqttConnection
from tests.conftest import Broker
from tests.ingest.harness import publish, wait_for_uplinks
from tests.ingest.messages import Traffic


@pytest.fixture
def renamed_internal(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """paho as a later release might be: one attribute the fast path reads is gone."""
    missing = "_in_packet_renamed_in_a_later_release"
    monkeypatch.setattr(mqtt_client, "PRIVATE_STATE", (*mqtt_client.PRIVATE_STATE, missing))
    fast_path_available.cache_clear()
    yield missing
    monkeypatch.undo()
    fast_path_available.cache_clear()


def test_the_installed_paho_has_every_internal_the_fast_path_uses() -> None:
    assert missing_private_members() == []
    assert fast_path_available()


def test_a_missing_internal_is_named(renamed_internal: str) -> None:
    assert missing_private_members() == [renamed_internal]


def test_without_an_internal_the_bridge_takes_the_public_path_with_one_warning(
    renamed_internal: str,
    broker: Broker,
    fresh_db_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    traffic = Traffic()
    config = tmp_path / "sources.toml"
    config.write_text(traffic.sources_toml(broker.host, broker.port))
    settings = IngestSettings(batch_size=50, flush_interval_ms=50, instance="fallback", device_refresh_s=0.2)
    caplog.set_level(logging.WARNING, logger="ingest")
    bridge = Bridge(load_sources(config), fresh_db_url, settings, CodecRegistry())
    bridge.start()
    try:
        assert bridge.wait_connected(10)
        for connection in bridge.connections:
            assert isinstance(connection, MqttConnection)
            assert not connection.fast_path
            assert not isinstance(connection.client, BufferedClient)
        publish(broker.host, broker.port, traffic.mixed(200))
        assert wait_for_uplinks(fresh_db_url, traffic.source_names, 200) == 200
    finally:
        bridge.stop()
    warnings = [record for record in caplog.records if "fast packet path" in record.getMessage()]
    assert len(warnings) == 1, "one warning per process, not one per source"
    assert renamed_internal in warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING
