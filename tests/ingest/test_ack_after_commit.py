"""Ack after commit through the `MessageSource` seam, without a broker: the real PostgreSQL decides.

`ScriptedSource` is the seam's own test double (a message source the test hands
messages to), not a stand-in for something that could run here: the database is the
real one, and what the test watches is the order of commit and acknowledgement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from decoders import CodecRegistry
from ingest.bridge import Bridge
from ingest.config import IngestSettings, SourceConfig, load_sources
from ingest.inbox import Delivery
from ingest.message_source import Deliver, MessageSource
from ingest.metrics import WRITE_RETRIES
from tests.ingest.harness import stored_uplinks, wait_until
from tests.ingest.messages import Traffic


class ScriptedSource:
    """A `MessageSource` whose messages the test sends; every ack notes the rows committed at that moment."""

    def __init__(self, config: SourceConfig, database_url: str) -> None:
        self.config = config
        self.database_url = database_url
        self.acked: list[int] = []
        self.checks: list[tuple[int, int]] = []
        """Per ack call: (messages acknowledged so far, this one included; rows committed then)."""
        self._lock = threading.Lock()
        self._deliver: Deliver | None = None
        self._next_mid = 1

    def start(self, deliver: Deliver, on_connected: Callable[[], None]) -> None:
        self._deliver = deliver
        on_connected()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._deliver is not None

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:  # committers ack from their own threads
            self.acked.extend(delivery.mid for delivery in deliveries)
            # Another connection sees only committed rows.
            self.checks.append((len(self.acked), stored_uplinks(self.database_url, (self.config.name,))))

    def stop(self) -> None:
        self._deliver = None

    def send(self, messages: Sequence[tuple[str, bytes]]) -> list[int]:
        assert self._deliver is not None, "not started"
        mids = list(range(self._next_mid, self._next_mid + len(messages)))
        self._next_mid += len(messages)
        self._deliver(
            [
                Delivery(self.config, topic, body, self, generation=1, mid=mid, qos=1)
                for mid, (topic, body) in zip(mids, messages, strict=True)
            ]
        )
        return mids


@contextmanager
def scripted_bridge(database_url: str, tmp_path: Path) -> Iterator[tuple[Bridge, ScriptedSource, Traffic]]:
    """A bridge whose TTS source is scripted by the test (the ChirpStack one stays silent)."""
    traffic = Traffic()
    config = tmp_path / "sources.toml"
    config.write_text(traffic.sources_toml("127.0.0.1", 1))  # no broker is ever asked
    sources: dict[str, ScriptedSource] = {}

    def connect(source: SourceConfig) -> MessageSource:
        sources[source.name] = ScriptedSource(source, database_url)
        return sources[source.name]

    settings = IngestSettings(batch_size=50, flush_interval_ms=20, instance="seam", device_refresh_s=0.2)
    bridge = Bridge(load_sources(config), database_url, settings, CodecRegistry(), connect=connect)
    bridge.start()
    try:
        assert bridge.wait_connected(5)
        yield bridge, sources[traffic.source_names[0]], traffic
    finally:
        bridge.stop()


def test_messages_are_acknowledged_only_once_their_rows_are_committed(
    fresh_db_url: str, tmp_path: Path
) -> None:
    with (
        scripted_bridge(fresh_db_url, tmp_path) as (_, source, traffic),
        psycopg.connect(fresh_db_url) as blocker,
    ):
        # Hold the writes back: the bridge receives and decodes, but cannot commit.
        blocker.execute("LOCK TABLE uplink IN EXCLUSIVE MODE")
        sent = source.send([traffic.tts_uplink(n) for n in range(120)])
        time.sleep(1.0)
        assert source.acked == [], "acknowledged before anything was committed"
        blocker.rollback()
        assert wait_until(lambda: sorted(source.acked) == sent, timeout=30)
    assert stored_uplinks(fresh_db_url, (source.config.name,)) == 120
    assert len(source.checks) > 1, "the messages should have been written in several batches"
    for acknowledged, committed in source.checks:
        assert committed >= acknowledged, "a message was acknowledged before its row was committed"


def test_a_failed_commit_is_not_acknowledged_and_is_retried(fresh_db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        # A trigger deferred to COMMIT: the batch is written, then the commit itself fails
        # with a serialization failure, which retrying can fix.
        conn.execute(
            """
            CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'commit refused for this test' USING ERRCODE = '40001';
            END $$;
            CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON uplink
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit();
            """
        )
    retries_before = WRITE_RETRIES._value.get()
    with scripted_bridge(fresh_db_url, tmp_path) as (_, source, traffic):
        sent = source.send([traffic.tts_uplink(n) for n in range(30)])
        assert wait_until(lambda: WRITE_RETRIES._value.get() >= retries_before + 2, timeout=30)
        assert source.acked == [], "acknowledged though the commit failed"
        assert stored_uplinks(fresh_db_url, (source.config.name,)) == 0
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER fail_commit ON uplink")
        assert wait_until(lambda: sorted(source.acked) == sent, timeout=30)
        assert source.checks[-1] == (30, 30)
    assert stored_uplinks(fresh_db_url, (source.config.name,)) == 30
