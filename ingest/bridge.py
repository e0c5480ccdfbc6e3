"""The MQTT bridge: network-server brokers in, committed rows out, acknowledgements last.

Threads and why:
- one paho network thread per source receives messages and only appends them to
  the shared `Inbox` (cheap, so paho keeps reading the socket);
- one writer thread takes batches from the inbox, parses and decodes them, writes
  them in one transaction and only then acknowledges them (paho 2 manual ack).

A message is acknowledged only after its rows are committed, so a bridge killed at
any moment loses nothing: the broker redelivers what was not acknowledged, and the
store's `ON CONFLICT DO NOTHING` makes the redelivery harmless. After a reconnect
the message ids of the old connection mean nothing to the broker, so acks for them
are dropped (their messages come again and are recognised as duplicates).

When the database is down the writer keeps its batch and retries with backoff; the
inbox fills up to `max_pending` and then blocks the paho threads, which stops
reading the sockets: QoS 1 messages wait at the broker, nothing is lost.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from decoders import CodecRegistry
from domain.errors import ConfigurationError, StorageUnavailable
from domain.uplink import NetworkEvent
from ingest.adapters import default_topics
from ingest.backfill import backfill_source
from ingest.config import IngestSettings, SourceConfig
from ingest.metrics import BATCH_SECONDS, PENDING, WRITE_RETRIES, IngestCounters, Outcome
from ingest.mqtt_client import BufferedClient, Publish
from ingest.pipeline import DeviceCache, Pipeline, ReceivedMessage
from services.codec_following import ScriptFollower
from storage.device_registry import ensure_municipality
from storage.uplinks import (
    BatchResult,
    IngestBatch,
    RejectedRecord,
    TransientWriteError,
    UnstorableBatch,
    latest_received_at,
    prepare_connection,
    write_batch,
)

log = logging.getLogger(__name__)

Backfill = Callable[[SourceConfig, datetime | None], Iterable[Sequence[NetworkEvent | RejectedRecord]]]
"""Fetches what a source missed since a time (TTS Storage Integration), in chunks."""

SESSION_EXPIRY_S = 7 * 24 * 3600  # a week of outage before the broker forgets our queue
IDLE_FLUSH_S = 0.005  # a quiet inbox for this long means the broker is waiting for our acks


@dataclass(slots=True)
class Delivery:
    """A message waiting to be written; `connection` is None for backfilled events (no ack)."""

    source: SourceConfig
    topic: str
    body: bytes
    connection: MqttConnection | None = None
    generation: int = 0
    mid: int = 0
    qos: int = 0
    events: Sequence[NetworkEvent | RejectedRecord] | None = None


class Inbox:
    """A bounded queue that blocks producers when full: backpressure onto the broker sockets.

    Producers wake the writer only when the queue turns non-empty or reaches a full
    batch; waking it for every message would cost more than the message itself.
    """

    def __init__(self, capacity: int, batch_size: int) -> None:
        self.capacity = capacity
        self.batch_size = batch_size
        self._items: deque[Delivery] = deque()
        self._changed = threading.Condition()
        self._last_put = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, delivery: Delivery, stop: threading.Event) -> bool:
        return self.put_many([delivery], stop)

    def put_many(self, deliveries: list[Delivery], stop: threading.Event) -> bool:
        """All of one socket read at once; a full inbox may overshoot its capacity by one read."""
        with self._changed:
            while len(self._items) >= self.capacity:
                if stop.is_set():
                    return False
                self._changed.wait(0.1)
            before = len(self._items)
            self._items.extend(deliveries)
            self._last_put = time.monotonic()
            if before == 0 or before < self.batch_size <= len(self._items):
                self._changed.notify_all()
        return True

    def take(self, linger_s: float) -> list[Delivery]:
        """Wait for a first item, then up to `linger_s` for a full batch; stop early when input pauses.

        A pause of `IDLE_FLUSH_S` means the broker has sent all it may without our acks
        (its inflight window is full), so waiting longer would only add latency.
        """
        with self._changed:
            if not self._items:
                self._changed.wait(linger_s)
            if not self._items:
                return []
            deadline = time.monotonic() + linger_s
            while len(self._items) < self.batch_size:
                now = time.monotonic()
                if now >= deadline or now - self._last_put >= IDLE_FLUSH_S:
                    break
                self._changed.wait(min(IDLE_FLUSH_S, deadline - now))
            count = min(self.batch_size, len(self._items))
            taken = [self._items.popleft() for _ in range(count)]
            self._changed.notify_all()
            return taken


class MqttConnection:
    """One source's broker connection: persistent session, QoS as the server allows, manual acks."""

    def __init__(
        self,
        source: SourceConfig,
        settings: IngestSettings,
        inbox: Inbox,
        counters: IngestCounters,
        stop: threading.Event,
        on_connected: Callable[[MqttConnection], None] | None = None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.inbox = inbox
        self.counters = counters
        self.stop = stop
        self.on_connected = on_connected
        self.generation = 0
        self.received = 0  # written by this connection's paho thread only
        self.connected = threading.Event()
        """Set once the broker has acknowledged the subscriptions: from then on nothing
        published to them is missed (a CONNACK alone comes before the subscriptions exist)."""
        self._subscribe_mid: int | None = None
        instance = settings.instance or socket.gethostname()
        assert source.host is not None, "webhook-only sources have no MQTT connection"
        self.host = source.host
        self.client_id = source.client_id or f"lorakom-{source.name}-{instance}"[:64]
        self.is_v5 = source.effective_mqtt_version == "5"
        self.qos = source.effective_qos
        if self.is_v5:
            self.client = BufferedClient(
                CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
            )
        else:
            self.client = BufferedClient(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
            )
        self.client.manual_ack_set(True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        if source.username is not None:
            password = source.password()
            self.client.username_pw_set(source.username, password.get_secret_value() if password else None)
        if source.uses_tls:
            context = ssl.create_default_context(cafile=source.ca_file)
            self.client.tls_set_context(context)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_publishes = self._on_publishes

    def subscriptions(self) -> list[str]:
        topics = self.source.topics(default_topics(self.source.kind))
        if self.settings.shared_group:
            return [f"$share/{self.settings.shared_group}/{topic}" for topic in topics]
        return list(topics)

    def start(self) -> None:
        log.info(
            "connecting source %s to %s:%s (tls=%s, qos=%s, mqtt %s, client id %s)",
            self.source.name,
            self.source.host,
            self.source.effective_port,
            self.source.uses_tls,
            self.qos,
            self.source.effective_mqtt_version,
            self.client_id,
        )
        if self.is_v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
            properties.ReceiveMaximum = min(65535, self.settings.max_pending)
            self.client.connect_async(
                self.host,
                self.source.effective_port,
                keepalive=self.source.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        else:
            self.client.connect_async(
                self.host, self.source.effective_port, keepalive=self.source.keepalive_s
            )
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge committed messages; ids from an earlier connection mean nothing now."""
        generation = self.generation
        mids = [d.mid for d in deliveries if d.qos == 1 and d.generation == generation]
        self.client.ack_many(mids)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.warning("source %s: broker refused connection: %s", self.source.name, reason)
            return
        self.generation += 1
        session_present = bool(getattr(flags, "session_present", False))
        log.info("source %s connected (session present: %s)", self.source.name, session_present)
        _, self._subscribe_mid = client.subscribe([(topic, self.qos) for topic in self.subscriptions()])
        if self.on_connected is not None:
            self.on_connected(self)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[Any], properties: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.warning("source %s: broker refused subscriptions: %s", self.source.name, ", ".join(refused))
        self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected.clear()
        if not self.stop.is_set():
            log.warning("source %s disconnected (%s); reconnecting", self.source.name, reason)

    def _on_publishes(self, publishes: list[Publish]) -> None:
        """The PUBLISH packets of one socket read, cut out by `BufferedClient` without paho's work."""
        # The one broad boundary of the bridge (DESIGN §5): whatever goes wrong with one
        # read must not stop paho's network thread and with it every later message.
        try:
            self.received += len(publishes)
            source, generation = self.source, self.generation
            deliveries = [
                Delivery(source, topic, payload, self, generation, mid, qos)
                for topic, payload, mid, qos in publishes
            ]
            self.inbox.put_many(deliveries, self.stop)
        except Exception:
            log.exception("source %s: %d messages could not be queued", self.source.name, len(publishes))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """A PUBLISH that paho read itself (QoS 2, a topic alias, one split across reads)."""
        try:  # the topic is decoded here; a bad one must not stop paho's network thread either
            publish = Publish(message.topic, bytes(message.payload), message.mid, message.qos)
        except Exception:
            log.exception("source %s: a message could not be read", self.source.name)
            return
        self._on_publishes([publish])


class Bridge:
    """All sources of one process, one writer, one database connection."""

    def __init__(
        self,
        sources: Sequence[SourceConfig],
        database_url: str,
        settings: IngestSettings,
        codecs: CodecRegistry,
        counters: IngestCounters | None = None,
        backfill: Backfill | None = backfill_source,
        on_devices_changed: Callable[[list[Any]], None] | None = None,
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        self.sources = list(sources)
        self.database_url = database_url
        self.settings = settings
        self.codecs = codecs
        self.counters = counters or IngestCounters()
        self.backfill = backfill
        self.on_devices_changed = on_devices_changed
        self.on_committed = on_committed  # e.g. nudge alert evaluation after new readings
        self.stop_event = threading.Event()
        self.inbox = Inbox(settings.max_pending, settings.batch_size)
        self.devices = DeviceCache()
        # Vendor JS codecs registered through the API reach this process's registry here.
        self.scripts = ScriptFollower(codecs)
        self.connections: list[MqttConnection] = []
        self._writer: threading.Thread | None = None
        self._committers: list[threading.Thread] = []
        # Parsing and decoding batch n+1 overlaps the database's work on batch n.
        self._commits: queue.Queue[tuple[list[Delivery], IngestBatch] | None] = queue.Queue(
            maxsize=settings.writers + 1
        )
        # One connection per committer thread: the database merges batches in parallel.
        self._connections = threading.local()
        self._all_connections: list[psycopg.Connection[Any]] = []
        self._connections_lock = threading.Lock()
        self._municipality_ids: dict[str, int] = {}
        self._last_device_refresh = 0.0
        self.batches_written = 0

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        conn = self._connection()
        for source in self.sources:
            self._municipality_ids[source.name] = ensure_municipality(
                conn, source.municipality, source.municipality_name
            )
        self.devices.refresh(conn)
        self.scripts.refresh(conn)
        self._last_device_refresh = time.monotonic()
        self.pipeline = Pipeline(
            self.devices,
            self.codecs,
            self._municipality_ids,
            self.counters,
            max_future=self.settings.max_future,
        )
        for number in range(self.settings.writers):
            committer = threading.Thread(
                target=self._commit_loop, args=(number == 0,), name=f"lorakom-committer-{number}", daemon=True
            )
            committer.start()
            self._committers.append(committer)
        self._writer = threading.Thread(target=self._write_loop, name="lorakom-decoder", daemon=True)
        self._writer.start()
        for source in self.sources:
            if not source.uses_mqtt:
                continue
            connection = MqttConnection(
                source, self.settings, self.inbox, self.counters, self.stop_event, self._on_connected
            )
            self.connections.append(connection)
            connection.start()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(c.connected.wait(max(0.0, deadline - time.monotonic())) for c in self.connections)

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
            connection.close()
        with self._connections_lock:
            for conn in self._all_connections:
                conn.close()
            self._all_connections.clear()

    # -- backfill ----------------------------------------------------------------

    def _on_connected(self, connection: MqttConnection) -> None:
        if self.backfill is None or connection.source.storage_api_url is None:
            return
        threading.Thread(
            target=self._run_backfill, args=(connection.source,), name="lorakom-backfill", daemon=True
        ).start()

    def _run_backfill(self, source: SourceConfig) -> None:
        assert self.backfill is not None
        try:
            with psycopg.connect(self.database_url) as conn:
                newest = latest_received_at(conn, source.name)
            earliest = datetime.now(UTC) - timedelta(hours=source.backfill_max_hours)
            after = max(newest, earliest) if newest is not None else earliest
            for events in self.backfill(source, after):
                self.counters.add(source.name, Outcome.BACKFILLED, len(events))
                self.inbox.put(Delivery(source, "backfill", b"", events=events), self.stop_event)
        except (StorageUnavailable, ConfigurationError, psycopg.Error) as exc:
            log.warning("source %s: backfill failed, will try again on next reconnect: %s", source.name, exc)

    # -- writing -----------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._connections, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.database_url, connect_timeout=5)
            prepare_connection(conn)
            self._connections.conn = conn
            with self._connections_lock:
                self._all_connections.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn: psycopg.Connection[Any] | None = getattr(self._connections, "conn", None)
        self._connections.conn = None
        if conn is not None:
            with self._connections_lock:
                if conn in self._all_connections:
                    self._all_connections.remove(conn)
            conn.close()

    def _write_loop(self) -> None:
        """Take batches from the inbox, parse and decode them, hand them to the committer."""
        linger = self.settings.flush_interval_ms / 1000
        while not (self.stop_event.is_set() and not len(self.inbox)):
            deliveries = self.inbox.take(linger)
            PENDING.set(len(self.inbox))
            if deliveries:
                self._commits.put((deliveries, self._build_batch(deliveries)))
        for _ in self._committers:
            self._commits.put(None)

    def _commit_loop(self, refreshes_devices: bool) -> None:
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
                    self._refresh_devices_if_due()
                continue
            if item is None:
                return
            if refreshes_devices:
                self._refresh_devices_if_due()
            self._write_with_retry(*item)

    def _refresh_devices_if_due(self) -> None:
        if time.monotonic() - self._last_device_refresh < self.settings.device_refresh_s:
            return
        self._last_device_refresh = time.monotonic()
        try:
            changed = self.devices.refresh(self._connection())
            self.scripts.refresh(self._connection())
        except psycopg.Error as exc:
            log.warning("device refresh failed: %s", exc)
            self._drop_connection()
            return
        if changed and self.on_devices_changed is not None:
            self.on_devices_changed(changed)

    def _build_batch(self, deliveries: list[Delivery], *, count_received: bool = True) -> IngestBatch:
        builder = self.pipeline.new_batch(counted=count_received)
        received: dict[str, int] = {}
        for delivery in deliveries:
            if delivery.connection is not None:
                received[delivery.source.name] = received.get(delivery.source.name, 0) + 1
            if delivery.events is not None:
                builder.add_events(delivery.source, delivery.events)
            else:
                builder.add_message(ReceivedMessage(delivery.source, delivery.topic, delivery.body))
        if count_received:
            for source_name, count in received.items():
                self.counters.add(source_name, Outcome.RECEIVED, count)
        return builder.finish()

    def _write_with_retry(self, deliveries: list[Delivery], batch: IngestBatch) -> None:
        delay = 0.2
        counted = False
        while True:
            started = time.perf_counter()
            try:
                result = write_batch(self._connection(), batch)
                break
            except UnstorableBatch as exc:
                log.warning("batch of %d refused (%s); writing its messages one by one", len(deliveries), exc)
                result = self._write_one_by_one(deliveries)  # counts each message it writes
                counted = True
                break
            except (TransientWriteError, psycopg.OperationalError) as exc:
                WRITE_RETRIES.inc()
                self._drop_connection()
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
        by_connection: dict[MqttConnection, list[Delivery]] = {}
        for delivery in deliveries:
            if delivery.connection is not None:
                by_connection.setdefault(delivery.connection, []).append(delivery)
        for connection, acknowledged in by_connection.items():
            connection.ack(acknowledged)

    def _write_one_by_one(self, deliveries: list[Delivery]) -> BatchResult:
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
                outcome = write_batch(self._connection(), single)
            except UnstorableBatch as exc:
                topic = (
                    delivery.topic if delivery.events is None else f"{delivery.topic}:{delivery.source.name}"
                )
                body = delivery.body or repr(delivery.events).encode()
                rejected = RejectedRecord(delivery.source.name, topic, f"could not be stored: {exc}", body)
                write_batch(self._connection(), IngestBatch(rejected=[rejected]))
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
