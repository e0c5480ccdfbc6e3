"""One source's MQTT broker connection, a `MessageSource`: persistent session, QoS 1, manual acks.

paho's network thread only hands received messages to the bridge (cheap, so paho
keeps reading the socket); when the bridge's inbox is full that hand-over blocks,
paho stops reading, and QoS 1 messages wait at the broker. Messages are acknowledged
when the bridge says their rows are committed. After a reconnect the message ids of
the old connection mean nothing to the broker, so acks for them are dropped (their
messages come again and are recognised as duplicates).

Messages arrive by one of two paths. The fast one (`ingest.mqtt_client`) cuts
PUBLISH packets out of large socket reads and acknowledges a batch in one write; it
rests on paho internals and is used only when they are all there. Otherwise, or when
`IngestSettings.fast_path` is off, paho's public `on_message` and `ack` carry them.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.adapters import default_topics
from ingest.config import IngestSettings, SourceConfig
from ingest.inbox import Delivery
from ingest.message_source import Deliver
from ingest.mqtt_client import BufferedClient, Publish, fast_path_available

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # a week of outage before the broker forgets our queue


class MqttConnection:
    """The `MessageSource` of one configured source with an MQTT broker."""

    def __init__(self, source: SourceConfig, settings: IngestSettings, stop: threading.Event) -> None:
        self.source = source
        self.settings = settings
        self.stop_event = stop
        self.generation = 0
        self.received = 0  # written by this connection's paho thread only
        self.connected = threading.Event()
        """Set once the broker has acknowledged the subscriptions: from then on nothing
        published to them is missed (a CONNACK alone comes before the subscriptions exist)."""
        self._subscribe_mid: int | None = None
        self._deliver: Deliver = _not_started
        self._on_connected: Callable[[], None] = _nothing
        instance = settings.instance or socket.gethostname()
        assert source.host is not None, "webhook-only sources have no MQTT connection"
        self.host = source.host
        self.client_id = source.client_id or f"lorakom-{source.name}-{instance}"[:64]
        self.is_v5 = source.effective_mqtt_version == "5"
        self.qos = source.effective_qos
        self.fast_path = settings.fast_path and fast_path_available()
        self.client = self._new_client()
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
        if isinstance(self.client, BufferedClient):
            self.client.on_publishes = self._on_publishes

    def _new_client(self) -> mqtt.Client:
        client_class = BufferedClient if self.fast_path else mqtt.Client
        if self.is_v5:
            return client_class(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        return client_class(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311, clean_session=False
        )

    def subscriptions(self) -> list[str]:
        topics = self.source.topics(default_topics(self.source.kind))
        if self.settings.shared_group:
            return [f"$share/{self.settings.shared_group}/{topic}" for topic in topics]
        return list(topics)

    # -- MessageSource ---------------------------------------------------------

    def start(self, deliver: Deliver, on_connected: Callable[[], None]) -> None:
        self._deliver = deliver
        self._on_connected = on_connected
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

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connected.wait(timeout_s)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge committed messages; ids from an earlier connection mean nothing now."""
        generation = self.generation
        mids = [d.mid for d in deliveries if d.qos == 1 and d.generation == generation]
        if isinstance(self.client, BufferedClient):
            self.client.ack_many(mids)
        else:
            for mid in mids:
                self.client.ack(mid, 1)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (on paho's network thread) -----------------------------

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
        self._on_connected()

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
        if not self.stop_event.is_set():
            log.warning("source %s disconnected (%s); reconnecting", self.source.name, reason)

    def _on_publishes(self, publishes: list[Publish]) -> None:
        """The PUBLISH packets of one socket read (fast path), or one message paho read itself."""
        # The one broad boundary of the bridge (DESIGN §5): whatever goes wrong with one
        # read must not stop paho's network thread and with it every later message.
        try:
            self.received += len(publishes)
            source, generation = self.source, self.generation
            self._deliver(
                [
                    Delivery(source, topic, payload, self, generation, mid, qos)
                    for topic, payload, mid, qos in publishes
                ]
            )
        except Exception:
            log.exception("source %s: %d messages could not be queued", self.source.name, len(publishes))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """A PUBLISH that paho read itself: every one on the public path; QoS 2, a topic alias,
        or one split across reads on the fast path."""
        try:  # the topic is decoded here; a bad one must not stop paho's network thread either
            publish = Publish(message.topic, bytes(message.payload), message.mid, message.qos)
        except Exception:
            log.exception("source %s: a message could not be read", self.source.name)
            return
        self._on_publishes([publish])


def _not_started(deliveries: list[Delivery]) -> bool:
    raise RuntimeError("a message arrived before the connection was started")


def _nothing() -> None:
    return None
