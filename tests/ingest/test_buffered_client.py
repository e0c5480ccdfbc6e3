"""The bridge's MQTT client against a real broker: its own PUBLISH fast path must agree with paho.

Payload sizes straddle the 64 KiB read chunk so that packets are cut across reads,
both QoS levels and both protocol versions (with MQTT 5 properties to skip) are
mixed, and the message ids the fast path reads are proven right by acknowledging
them: a reconnect to the persistent session gets back exactly what was not acked.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_client import READ_CHUNK, BufferedClient, Publish
from tests.conftest import Broker

SIZES = [0, 1, 17, 1500, READ_CHUNK - 40, READ_CHUNK, READ_CHUNK + 3, 200_000, 3, 9000]


class Subscriber:
    """A BufferedClient that records what reached it, and by which path."""

    def __init__(
        self, broker: Broker, client_id: str, protocol: int, topic: str, *, ack_at_once: bool = False
    ) -> None:
        self.ack_at_once = ack_at_once  # else the broker's inflight window (20 by default) stops it
        self.received: list[Publish] = []
        self.fast = 0
        self.through_paho = 0
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        if protocol == mqtt.MQTTv5:
            self.client = BufferedClient(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        else:
            self.client = BufferedClient(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, clean_session=False
            )
        self.client.manual_ack_set(True)
        self.client.on_publishes = self._on_publishes
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        if protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 300
            self.client.connect(broker.host, broker.port, clean_start=False, properties=properties)
        else:
            self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "no SUBACK"

    def _on_publishes(self, publishes: list[Publish]) -> None:
        with self.lock:
            self.received.extend(publishes)
            self.fast += len(publishes)
        if self.ack_at_once:
            self.client.ack_many([p.mid for p in publishes if p.qos == 1])

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append(Publish(message.topic, bytes(message.payload), message.mid, message.qos))
            self.through_paho += 1
        if self.ack_at_once:
            self.client.ack(message.mid, message.qos)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Publish]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            return list(self.received)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker: Broker, messages: list[tuple[str, bytes, int]], protocol: int) -> None:
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    publisher.connect(broker.host, broker.port)
    publisher.loop_start()
    infos = []
    for number, (topic, payload, qos) in enumerate(messages):
        properties = None
        if protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = [("sequence", str(number)), ("note", "ä" * (number % 5))]
            properties.ContentType = "application/json"
        infos.append(publisher.publish(topic, payload, qos=qos, properties=properties))
    for info in infos:
        info.wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()


def stream(prefix: str, repeat: int = 6) -> list[tuple[str, bytes, int]]:
    messages = []
    for round_number in range(repeat):
        for index, size in enumerate(SIZES):
            number = round_number * len(SIZES) + index
            body = f"{number:06d}".encode() + bytes((number + i) % 251 for i in range(max(0, size - 6)))
            topic = f"{prefix}/dev-{number % 7}/größe-{size}"
            messages.append((topic, body[: max(size, 6)] if size else b"", number % 2))
    return messages


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["mqtt-3.1.1", "mqtt-5"])
def test_fast_path_receives_exactly_what_paho_would(broker: Broker, protocol: int) -> None:
    prefix = f"lorakom-test/buffered/{uuid.uuid4().hex}"
    subscriber = Subscriber(
        broker, f"buffered-{uuid.uuid4().hex[:12]}", protocol, f"{prefix}/#", ack_at_once=True
    )
    messages = stream(prefix)
    try:
        publish(broker, messages, protocol)
        received = subscriber.wait_for(len(messages))
    finally:
        subscriber.stop()

    assert len(received) == len(messages)
    # MQTT orders messages of one QoS on one subscription; across QoS levels it need not.
    for qos in (0, 1):
        sent = [(topic, payload) for topic, payload, level in messages if level == qos]
        got = [(p.topic, p.payload) for p in received if p.qos == qos]
        assert got == sent
    assert all(p.mid == 0 for p in received if p.qos == 0)
    assert len({p.mid for p in received if p.qos == 1}) == sum(1 for *_, qos in messages if qos == 1)
    # Both paths carried messages: the first packet of a read goes through paho, the rest is cut out.
    assert subscriber.fast > 0
    assert subscriber.through_paho > 0


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["mqtt-3.1.1", "mqtt-5"])
def test_acknowledged_ids_are_the_brokers(broker: Broker, protocol: int) -> None:
    """Ack every other QoS 1 message by the id the fast path read; the session returns exactly the others.

    18 messages: all fit the broker's default inflight window, so all arrive before any ack.
    """
    prefix = f"lorakom-test/buffered-ack/{uuid.uuid4().hex}"
    client_id = f"buffered-ack-{uuid.uuid4().hex[:12]}"
    messages = [(topic, payload, 1) for topic, payload, _ in stream(prefix, repeat=2) if payload]
    subscriber = Subscriber(broker, client_id, protocol, f"{prefix}/#")
    try:
        publish(broker, messages, protocol)
        received = subscriber.wait_for(len(messages))
        assert len(received) == len(messages)
        by_payload = {p.payload: p for p in received}
        acked = [by_payload[payload] for _, payload, _ in messages[::2]]
        subscriber.client.ack_many([p.mid for p in acked])
        time.sleep(0.5)  # the PUBACKs are written by the network thread
    finally:
        subscriber.stop()

    again = Subscriber(broker, client_id, protocol, f"{prefix}/#")
    try:
        expected = {payload for _, payload, _ in messages[1::2]}
        redelivered = again.wait_for(len(expected), timeout=10)
        time.sleep(0.5)  # anything acknowledged that came back would arrive by now
        redelivered = again.wait_for(len(expected) + 1, timeout=0.1)
        again.client.ack_many([p.mid for p in redelivered])
        time.sleep(0.3)
    finally:
        again.stop()
    assert {p.payload for p in redelivered} == expected
    assert len(redelivered) == len(expected)
