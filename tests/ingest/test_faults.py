"""Faults mid-stream: a killed bridge, a restarted broker, a restarted database.

Nothing lost, nothing doubled.

Every test here starts its own throwaway processes (bridge, broker or database) so
that killing them never disturbs the shared services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from storage.embedded import EmbeddedPostgres
from storage.schema import upgrade_database
from tests.conftest import Broker, free_port, start_mosquitto
from tests.ingest.harness import (
    BOTH_RECEIVE_PATHS,
    publish,
    start_bridge,
    stored_uplinks,
    wait_for_uplinks,
    wait_until,
)
from tests.ingest.messages import Traffic

pytestmark = pytest.mark.fault


@pytest.fixture
def throwaway_broker(tmp_path: Path) -> Iterator[tuple[Broker, Path]]:
    port = free_port()
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    process = start_mosquitto(port, broker_dir)
    try:
        yield Broker("127.0.0.1", port), broker_dir
    finally:
        process.kill()
        process.wait()


class BridgeProcess:
    """`lorakom bridge` as a real process, so that it can be killed with SIGKILL."""

    def __init__(self, config: Path, database_url: str, instance: str, *, fast_path: bool = True) -> None:
        env = {
            **os.environ,
            "LORAKOM_DB_URL": database_url,
            "LORAKOM_INGEST_BATCH_SIZE": "100",
            "LORAKOM_INGEST_STATS_INTERVAL_S": "1",
            "LORAKOM_INGEST_FAST_PATH": "true" if fast_path else "false",
        }
        self.connected = threading.Event()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "bridge", "--config", str(config), "--instance", instance],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        connected_sources = 0
        for line in self.process.stderr:
            self.output.append(line)
            if " connected (session present" in line:
                connected_sources += 1
                if connected_sources >= 2:
                    self.connected.set()
        self.process.stderr.close()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        self.process.terminate()
        self.process.wait(20)


@BOTH_RECEIVE_PATHS
def test_a_bridge_killed_mid_stream_loses_nothing(
    throwaway_broker: tuple[Broker, Path], fresh_db_url: str, tmp_path: Path, fast_path: bool
) -> None:
    # A broker of our own: its queue for the dead bridge must hold more than Mosquitto's
    # default of 1,000 messages, and killing bridges must not disturb the shared one.
    broker, _ = throwaway_broker
    traffic = Traffic()
    config = tmp_path / "sources.toml"
    config.write_text(traffic.sources_toml(broker.host, broker.port))
    sources = traffic.source_names
    first = BridgeProcess(config, fresh_db_url, "crash", fast_path=fast_path)
    assert first.connected.wait(30), "".join(first.output)
    publisher = threading.Thread(target=publish, args=(broker.host, broker.port, traffic.mixed(4000)))
    publisher.start()
    assert wait_until(lambda: stored_uplinks(fresh_db_url, sources) > 300, timeout=60)
    first.kill()
    killed_at = stored_uplinks(fresh_db_url, sources)
    publisher.join(60)
    # The same client id: the broker kept our queue.
    second = BridgeProcess(config, fresh_db_url, "crash", fast_path=fast_path)
    try:
        assert wait_for_uplinks(fresh_db_url, sources, 4000, timeout=90) == 4000
    finally:
        second.terminate()
    assert killed_at < 4000, "the bridge should have been killed mid-stream"
    with psycopg.connect(fresh_db_url) as conn:
        repeated = conn.execute(
            "SELECT count(*) FROM (SELECT uplink_key FROM uplink GROUP BY uplink_key HAVING count(*) > 1) d"
        ).fetchone()
    assert repeated == (0,)


@BOTH_RECEIVE_PATHS
def test_a_broker_restart_mid_stream_loses_nothing(
    fresh_db_url: str, tmp_path: Path, fast_path: bool
) -> None:
    port = free_port()
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    process = start_mosquitto(port, broker_dir, persistence=True)
    traffic = Traffic()
    sources = traffic.source_names
    bridge = start_bridge(
        fresh_db_url,
        traffic.sources_toml("127.0.0.1", port),
        tmp_path,
        instance="restart",
        batch_size=50,
        fast_path=fast_path,
    )
    blocker = psycopg.connect(fresh_db_url)
    try:
        # Hold the bridge's writes back so that it has received, but not acknowledged,
        # the whole first half when the broker goes down.
        blocker.execute("LOCK TABLE uplink IN EXCLUSIVE MODE")
        messages = traffic.mixed(3000)
        publish("127.0.0.1", port, messages[:1500])
        assert wait_until(lambda: sum(c.received for c in bridge.connections) >= 1500, timeout=30)
        process.terminate()  # SIGTERM: mosquitto saves sessions and unacknowledged messages
        process.wait(10)
        restarted_at = stored_uplinks(fresh_db_url, sources)
        blocker.rollback()
        process = start_mosquitto(port, broker_dir, persistence=True)
        assert wait_until(lambda: all(c.generation >= 2 for c in bridge.connections), timeout=30)
        publish("127.0.0.1", port, messages[1500:])
        assert wait_for_uplinks(fresh_db_url, sources, 3000, timeout=90) == 3000
    finally:
        blocker.close()
        bridge.stop()
        process.kill()
        process.wait()
    assert restarted_at == 0, "nothing was committed (so nothing acknowledged) before the restart"


@BOTH_RECEIVE_PATHS
def test_a_database_restart_mid_stream_loses_nothing(broker: Broker, tmp_path: Path, fast_path: bool) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    server_url = server.start()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE faults")
    database_url = server_url.replace("/postgres?", "/faults?")
    upgrade_database(database_url)
    traffic = Traffic()
    sources = traffic.source_names
    bridge = start_bridge(
        database_url,
        traffic.sources_toml(broker.host, broker.port),
        tmp_path,
        instance="dbdown",
        batch_size=50,
        fast_path=fast_path,
    )
    try:
        publisher = threading.Thread(target=publish, args=(broker.host, broker.port, traffic.mixed(3000)))
        publisher.start()
        assert wait_until(lambda: stored_uplinks(database_url, sources) > 100, timeout=60)
        server.stop()
        time.sleep(2)  # the bridge keeps receiving, cannot write, stops acknowledging
        server = EmbeddedPostgres(tmp_path / "pg")
        server.start()
        publisher.join(60)
        assert wait_for_uplinks(database_url, sources, 3000, timeout=90) == 3000
        from ingest.metrics import WRITE_RETRIES

        assert WRITE_RETRIES._value.get() > 0  # the outage was really seen
    finally:
        bridge.stop()
        server.stop()
