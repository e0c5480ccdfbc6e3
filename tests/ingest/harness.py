"""Running bridges, publishing and counting rows for the end-to-end and fault tests."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from decoders import CodecRegistry
from ingest.bridge import Bridge
from ingest.config import IngestSettings, load_sources
from ingest.mqtt_connection import MqttConnection

BOTH_RECEIVE_PATHS = pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "public-path"])
"""Runs a test through the fast packet path and through paho's public `on_message` + `ack` path."""


def publish_tls(port: int, ca_file: Path, messages: Iterable[tuple[str, bytes]]) -> int:
    """Publish over TLS, verifying the broker against `ca_file`."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.tls_set_context(ssl.create_default_context(cafile=str(ca_file)))
    return publish("127.0.0.1", port, messages, client=client)


def publish(
    host: str,
    port: int,
    messages: Iterable[tuple[str, bytes]],
    *,
    qos: int = 1,
    client: mqtt.Client | None = None,
) -> int:
    """Publish at QoS 1 and wait until the broker has acknowledged every message."""
    client = client or mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    infos = [client.publish(topic, body, qos=qos) for topic, body in messages]
    for info in infos:
        info.wait_for_publish(timeout=60)
    client.disconnect()
    client.loop_stop()
    return len(infos)


def start_bridge(
    database_url: str,
    config_text: str,
    tmp_path: Path,
    *,
    instance: str,
    shared_group: str | None = None,
    batch_size: int = 200,
    fast_path: bool = True,
) -> Bridge:
    config = tmp_path / f"sources-{instance}.toml"
    config.write_text(config_text)
    settings = IngestSettings(
        batch_size=batch_size,
        flush_interval_ms=50,
        instance=instance,
        shared_group=shared_group,
        device_refresh_s=0.2,
        fast_path=fast_path,
    )
    bridge = Bridge(load_sources(config), database_url, settings, CodecRegistry())
    bridge.start()
    assert bridge.wait_connected(10), "bridge did not connect to the broker"
    for connection in bridge.connections:
        assert isinstance(connection, MqttConnection)
        assert connection.fast_path is fast_path, "the bridge is not on the path this test asked for"
    return bridge


def scalar(database_url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def stored_uplinks(database_url: str, sources: tuple[str, ...]) -> int:
    return int(scalar(database_url, "SELECT count(*) FROM uplink WHERE source = ANY(%s)", list(sources)))


def wait_for_uplinks(
    database_url: str, sources: tuple[str, ...], expected: int, timeout: float = 60.0
) -> int:
    """Wait for `expected` rows, then a little longer to catch anything stored twice or late."""
    wait_until(lambda: stored_uplinks(database_url, sources) >= expected, timeout)
    time.sleep(0.5)
    return stored_uplinks(database_url, sources)
