"""The bridge: message sources in, committed rows out, acknowledgements last.

Threads and why:
- each message source receives on its own thread (paho's network thread for MQTT)
  and only appends to the shared `Inbox` (cheap, so it keeps reading its socket);
- one decoder thread takes batches from the inbox, parses and decodes them;
- committer threads, each with its own `StoreWriter`, write a batch in one
  transaction and only then tell the batch's sources to acknowledge it.

A message is acknowledged only after its rows are committed, so a bridge killed at
any moment loses nothing: the broker redelivers what was not acknowledged, and the
store's `ON CONFLICT DO NOTHING` makes the redelivery harmless.

When the database is down the committer keeps its batch and retries with backoff;
the inbox fills up to `max_pending` and then blocks the sources' threads, which stop
reading their sockets: QoS 1 messages wait at the broker, nothing is lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from decoders import CodecRegistry
from domain.errors import ConfigurationError, StorageUnavailable
from domain.uplink import NetworkEvent
from ingest.backfill import backfill_source
from ingest.config import IngestSettings, SourceConfig
from ingest.inbox import Delivery, Inbox
from ingest.message_source import MessageSource, SourceConnector
from ingest.metrics import BATCH_SECONDS, PENDING, WRITE_RETRIES, IngestCounters, Outcome
from ingest.mqtt_connection import MqttConnection
from ingest.pipeline import DeviceCache, Pipeline, ReceivedMessage
from ingest.writer import StoreWriter
from services.codec_following import ScriptFollower
from storage.device_registry import DeviceProfile
from storage.uplinks import BatchResult, IngestBatch, RejectedRecord, UnstorableBatch

log = logging.getLogger(__name__)

Backfill = Callable[[SourceConfig, datetime | None], Iterable[Sequence[NetworkEvent | RejectedRecord]]]
"""Fetches what a source missed since a time (TTS Storage Integration), in chunks."""


class Bridge:
    """All sources of one process, one decoder, a few committers each with its own connection."""

    def __init__(
        self,
        sources: Sequence[SourceConfig],
        database_url: str,
        settings: IngestSettings,
        codecs: CodecRegistry,
        counters: IngestCounters | None = None,
        backfill: Backfill | None = backfill_source,
        on_devices_changed: Callable[[list[DeviceProfile]], None] | None = None,
        on_committed: Callable[[], None] | None = None,
        connect: SourceConnector | None = None,
    ) -> None:
        """`connect` makes each MQTT source's `MessageSource`; by default its broker connection."""
        self.sources = list(sources)
        self.database_url = database_url
        self.settings = settings
        self.codecs = codecs
        self.counters = counters or IngestCounters()
        self.backfill = backfill
        self.on_devices_changed = on_devices_changed
        self.on_committed = on_committed  # e.g. nudge alert evaluation after new readings
        self.stop_event = threading.Event()
        self.connect: SourceConnector = connect or self._mqtt_connection
        self.inbox = Inbox(settings.max_pending, settings.batch_size)
        self.devices = DeviceCache()
        # Vendor JS codecs registered through the API reach this process's registry here.
        self.scripts = ScriptFollower(codecs)
        self.connections: list[MessageSource] = []
        self._writer: threading.Thread | None = None
        self._committers: list[threading.Thread] = []
        # Parsing and decoding batch n+1 overlaps the database's work on batch n.
        self._commits: queue.Queue[tuple[list[Delivery], IngestBatch] | None] = queue.Queue(
            maxsize=settings.writers + 1
        )
        # One connection per committer thread: the database merges batches in parallel.
        self._store_writers = [StoreWriter(database_url) for _ in range(settings.writers)]
        self._last_device_refresh = 0.0
        self.batches_written = 0

    def _mqtt_connection(self, source: SourceConfig) -> MessageSource:
        return MqttConnection(source, self.settings, self.stop_event)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        first = self._store_writers[0]  # the first committer's, before its thread starts
        municipality_ids = first.municipality_ids(self.sources)
        first.refresh(self.devices, self.scripts)
        self._last_device_refresh = time.monotonic()
        self.pipeline = Pipeline(
            self.devices,
            self.codecs,
            municipality_ids,
            self.counters,
            max_future=self.settings.max_future,
        )
        for number, store in enumerate(self._store_writers):
            committer = threading.Thread(
                target=self._commit_loop,
                args=(store, number == 0),
                name=f"lorakom-committer-{number}",
                daemon=True,
            )
            committer.start()
            self._committers.append(committer)
        self._writer = threading.Thread(target=self._write_loop, name="lorakom-decoder", daemon=True)
        self._writer.start()
        for source in self.sources:
            if not source.uses_mqtt:
                continue
            connection = self.connect(source)
            self.connections.append(connection)
            connection.start(self._deliver, self._on_connected(source))

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(c.wait_connected(max(0.0, deadline - time.monotonic())) for c in self.connections)

    def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Stop receiving, write what is pending (ack where still possible), disconnect."""
        deadline = time.monotonic() + drain_timeout_s
        while len(self.inbox) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.stop_event.set()
        if self._writer is not None:
            self._writer.join(timeout=drain_timeout_s + 5)
        for committer in self._committers:
            committer.join(timeout=drain_timeout_s + 5)
        for connection in self.connections:
            connection.stop()
        for store in self._store_writers:
            store.close()

    def _deliver(self, deliveries: list[Delivery]) -> bool:
        return self.inbox.put_many(deliveries, self.stop_event)

    # -- backfill ----------------------------------------------------------------

    def _on_connected(self, source: SourceConfig) -> Callable[[], None]:
        def connected() -> None:
            if self.backfill is None or source.storage_api_url is None:
                return
            threading.Thread(
                target=self._run_backfill, args=(source,), name="lorakom-backfill", daemon=True
            ).start()

        return connected

    def _run_backfill(self, source: SourceConfig) -> None:
        assert self.backfill is not None
        store = StoreWriter(self.database_url)
        try:
            try:
                newest = store.latest_received_at(source.name)
            finally:
                store.close()
            earliest = datetime.now(UTC) - timedelta(hours=source.backfill_max_hours)
            after = max(newest, earliest) if newest is not None else earliest
            for events in self.backfill(source, after):
                self.counters.add(source.name, Outcome.BACKFILLED, len(events))
                self.inbox.put(Delivery(source, "backfill", b"", events=events), self.stop_event)
        except (StorageUnavailable, ConfigurationError) as exc:
            log.warning("source %s: backfill failed, will try again on next reconnect: %s", source.name, exc)

    # -- writing -----------------------------------------------------------------

    def _write_loop(self) -> None:
        """Take batches from the inbox, parse and decode them, hand them to the committers."""
        linger = self.settings.flush_interval_ms / 1000
        while not (self.stop_event.is_set() and not len(self.inbox)):
            deliveries = self.inbox.take(linger)
            PENDING.set(len(self.inbox))
            if deliveries:
                self._commits.put((deliveries, self._build_batch(deliveries)))
        for _ in self._committers:
            self._commits.put(None)

    def _commit_loop(self, store: StoreWriter, refreshes_devices: bool) -> None:
        """Write, commit, then acknowledge, on this thread's own connection.

        Several committers let the database merge batches in parallel; a message is
        acknowledged by whichever committer stored it, and order between batches does
        not matter (the stored state only moves forward, see `storage.uplinks`).
        """
        while True:
            try:
                item = self._commits.get(timeout=self.settings.device_refresh_s)
            except queue.Empty:
                if refreshes_devices:
                    self._refresh_devices_if_due(store)
                continue
            if item is None:
                return
            if refreshes_devices:
                self._refresh_devices_if_due(store)
            self._write_with_retry(store, *item)

    def _refresh_devices_if_due(self, store: StoreWriter) -> None:
        if time.monotonic() - self._last_device_refresh < self.settings.device_refresh_s:
            return
        self._last_device_refresh = time.monotonic()
        try:
            changed = store.refresh(self.devices, self.scripts)
        except StorageUnavailable as exc:
            log.warning("device refresh failed: %s", exc)
            return
        if changed and self.on_devices_changed is not None:
            self.on_devices_changed(changed)

    def _build_batch(self, deliveries: list[Delivery], *, count_received: bool = True) -> IngestBatch:
        builder = self.pipeline.new_batch(counted=count_received)
        received: dict[str, int] = {}
        for delivery in deliveries:
            if delivery.origin is not None:
                received[delivery.source.name] = received.get(delivery.source.name, 0) + 1
            if delivery.events is not None:
                builder.add_events(delivery.source, delivery.events)
            else:
                builder.add_message(ReceivedMessage(delivery.source, delivery.topic, delivery.body))
        if count_received:
            for source_name, count in received.items():
                self.counters.add(source_name, Outcome.RECEIVED, count)
        return builder.finish()

    def _write_with_retry(self, store: StoreWriter, deliveries: list[Delivery], batch: IngestBatch) -> None:
        delay = 0.2
        counted = False
        while True:
            started = time.perf_counter()
            try:
                result = store.write(batch)
                break
            except UnstorableBatch as exc:
                log.warning("batch of %d refused (%s); writing its messages one by one", len(deliveries), exc)
                result = self._write_one_by_one(store, deliveries)  # counts each message it writes
                counted = True
                break
            except StorageUnavailable as exc:  # the store has dropped its connection already
                WRITE_RETRIES.inc()
                if self.stop_event.is_set():
                    # Stopping during an outage: leave the messages unacknowledged; the
                    # broker redelivers them to the next bridge.
                    log.warning("stopping with %d messages unwritten (%s)", len(deliveries), exc)
                    return
                log.warning("batch of %d not written (%s); retrying in %.1fs", len(deliveries), exc, delay)
                self.stop_event.wait(delay)
                delay = min(delay * 2, 10.0)
        BATCH_SECONDS.inc(time.perf_counter() - started)
        self.batches_written += 1
        if self.on_committed is not None and result.readings_new:
            self.on_committed()
        if not counted:
            self._count(batch, result.new_by_source)
        by_origin: dict[int, tuple[MessageSource, list[Delivery]]] = {}
        for delivery in deliveries:
            if delivery.origin is not None:
                by_origin.setdefault(id(delivery.origin), (delivery.origin, []))[1].append(delivery)
        for origin, acknowledged in by_origin.values():
            origin.ack(acknowledged)

    def _write_one_by_one(self, store: StoreWriter, deliveries: list[Delivery]) -> BatchResult:
        """Find the message that spoils a batch; keep it as rejected so the rest goes in.

        Each message is counted as it is written, so the refused one counts as rejected
        only, not also as a duplicate of the batch. Transient errors here propagate to
        the caller's retry loop like any other (messages already written then come again
        as duplicates).
        """
        new_by_source: dict[str, int] = {}
        readings_new = 0
        for delivery in deliveries:
            single = self._build_batch([delivery], count_received=False)
            try:
                outcome = store.write(single)
            except UnstorableBatch as exc:
                topic = (
                    delivery.topic if delivery.events is None else f"{delivery.topic}:{delivery.source.name}"
                )
                body = delivery.body or repr(delivery.events).encode()
                rejected = RejectedRecord(delivery.source.name, topic, f"could not be stored: {exc}", body)
                store.write(IngestBatch(rejected=[rejected]))
                self.counters.add(delivery.source.name, Outcome.REJECTED)
                continue
            self._count(single, outcome.new_by_source)
            readings_new += outcome.readings_new
            for source, count in outcome.new_by_source.items():
                new_by_source[source] = new_by_source.get(source, 0) + count
        return BatchResult(new_by_source=new_by_source, readings_new=readings_new, rejected=0)

    def _count(self, batch: IngestBatch, new_by_source: dict[str, int]) -> None:
        totals: dict[str, list[int]] = {}
        for record in batch.uplinks:
            tally = totals.setdefault(record.source, [0, 0, 0])
            tally[0] += 1
            if record.device_id is None:
                tally[1] += 1
            elif record.decode_error is not None:
                tally[2] += 1
        for source, (total, unclaimed, failed) in totals.items():
            new = new_by_source.get(source, 0)
            self.counters.add(source, Outcome.STORED, new)
            self.counters.add(source, Outcome.DUPLICATE, total - new)
            self.counters.add(source, Outcome.UNCLAIMED, unclaimed)
            self.counters.add(source, Outcome.DECODE_FAILED, failed)
