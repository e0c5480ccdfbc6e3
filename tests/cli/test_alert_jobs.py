"""Alerts are evaluated on ingest: a committed batch with new readings wakes the evaluation."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg

from cli.jobs import AlertJobs
from decoders import CodecRegistry
from ingest.bridge import Bridge
from ingest.config import IngestSettings, load_sources
from storage.database import create_database_engine
from tests.conftest import Broker
from tests.ingest.harness import publish, scalar, wait_until
from tests.ingest.messages import Traffic


def test_new_readings_open_an_alert_within_seconds(broker: Broker, fresh_db_url: str, tmp_path: Path) -> None:
    traffic = Traffic()
    with psycopg.connect(fresh_db_url) as conn:
        municipality = conn.execute(
            "INSERT INTO municipality (slug, name) VALUES ('testtown', 'Testtown') RETURNING id"
        ).fetchone()
        assert municipality is not None
        conn.execute(
            "INSERT INTO device (municipality_id, dev_eui, name, decoder_source) "
            "VALUES (%s, %s, 'Klima', 'network')",
            (municipality[0], traffic.dev_eui(1)),
        )
        conn.execute(
            "INSERT INTO alert_rule (municipality_id, name, kind, quantity, threshold, duration_s) "
            "VALUES (%s, 'too warm', 'quantity_above', 'temperature', 15, 0)",
            (municipality[0],),
        )
    engine = create_database_engine(fresh_db_url, pool_size=1)
    stop = threading.Event()
    # The periodic evaluation is an hour away: only the bridge's nudge can open the event in time.
    jobs = AlertJobs(engine, stop, evaluate_every_s=3600, min_gap_s=0.5).start()
    assert wait_until(lambda: jobs.evaluations == 1, timeout=10)  # the first, periodic one
    config = tmp_path / "sources.toml"
    config.write_text(traffic.sources_toml(broker.host, broker.port))
    settings = IngestSettings(batch_size=50, flush_interval_ms=50, instance="alerts")
    bridge = Bridge(load_sources(config), fresh_db_url, settings, CodecRegistry(), on_committed=jobs.nudge)
    bridge.start()
    try:
        assert bridge.wait_connected(10)
        publish(broker.host, broker.port, [traffic.tts_uplink(n, device=1) for n in range(3)])
        assert wait_until(lambda: scalar(fresh_db_url, "SELECT count(*) FROM alert_event") == 1, timeout=15)
    finally:
        bridge.stop()
        stop.set()
        engine.dispose()
    assert jobs.evaluations >= 2


def test_nudges_within_the_gap_do_not_keep_the_thread_busy(fresh_db_url: str) -> None:
    """Ingest nudges after every commit; between evaluations the thread must sleep, not spin."""
    engine = create_database_engine(fresh_db_url, pool_size=1)
    stop = threading.Event()
    jobs = AlertJobs(engine, stop, evaluate_every_s=3600, min_gap_s=30).start()
    try:
        jobs.nudge()
        wait_until(lambda: jobs.evaluations == 1, timeout=10)
        cpu_before = time.process_time()
        for _ in range(150):  # nudged every 10 ms for 1.5 s, all within the 30 s gap
            jobs.nudge()
            time.sleep(0.01)
        cpu_s = time.process_time() - cpu_before
        assert jobs.evaluations == 1
        assert cpu_s < 0.5, f"the process used {cpu_s:.2f} s of CPU in 1.5 s while only nudged"
    finally:
        stop.set()
        engine.dispose()
