"""Drives the fleet: decides who sends when, and publishes the messages to an MQTT broker.

Two clocks are at work. Message times (`received_at`, `time`) are wall-clock, so that the
platform stores the demo's uplinks at the time they arrived. The sensors' world runs
`speed` times faster: a device with a one-hour interval sends every 3600 / speed wall
seconds, and the behaviour models see a clock that advances `speed` times faster, so
that at the demo speed of 300 a day passes in under five minutes: bins fill and are
emptied, soil dries over an afternoon, parking spots turn over every few seconds.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cli.simulator.behaviour import DeviceBehaviour, Weather, behaviour_for, text_key
from cli.simulator.encoders import Frame, encode_frame
from cli.simulator.envelopes import EnvelopeWriter, Message, Transmission
from cli.simulator.fleet import DEFAULT_DEVICES_PER_TOWN, DEFAULT_SEED, Fleet, SimulatedDevice, demo_fleet
from cli.simulator.observations import ParkingObservation
from cli.simulator.radio import EU868_CHANNELS_HZ, Hearing, Link, plan_link
from domain.uplink import NetworkServer
from domain.use_case import UseCase

DEMO_SPEED = 300.0
PARKING_POLL_INTERVAL_S = 60.0  # parking sensors report a change within a minute (simulated time)
FIRST_UPLINK_WITHIN_S = 5.0  # wall seconds: in a demo every device speaks up right away
_NS = 1_000_000_000


@dataclass(slots=True)
class _DeviceState:
    device: SimulatedDevice
    behaviour: DeviceBehaviour
    link: Link
    f_cnt: int
    poll_interval_s: float  # simulated seconds between looks at the device
    next_due_ts: float  # wall-clock epoch seconds
    last_sent_sim_ts: float = float("-inf")


@dataclass(slots=True)
class _GatewayCounters:
    by_frequency: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _links(fleet: Fleet) -> dict[str, Link]:
    return {
        device.dev_eui: plan_link(device, fleet.gateways_of(device.municipality, device.network_server))
        for device in fleet.devices
    }


class Simulator:
    """Publishes the fleet's uplinks as they fall due, plus ChirpStack gateway heartbeats."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        speed: float = 1.0,
        seed: int = DEFAULT_SEED,
        start: datetime | None = None,
        gateway_stats_interval_s: float | None = 30.0,
        gateway_topic_prefix: str = "",
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.fleet = fleet
        self.speed = speed
        self._start = start or datetime.now(UTC)
        self._start_ts = self._start.timestamp()
        self._rng = random.Random(seed)
        self._writer = EnvelopeWriter(random.Random(seed + 1), gateway_topic_prefix=gateway_topic_prefix)
        self._stats_interval_s = gateway_stats_interval_s
        self._next_stats_ts = self._start_ts + (gateway_stats_interval_s or 0.0)
        self._gateway_counters = {
            gateway.gateway_eui: _GatewayCounters()
            for gateway in fleet.gateways
            if gateway.network_server is NetworkServer.CHIRPSTACK_V4
        }
        weather = {town.slug: Weather(seed, text_key(town.slug)) for town in fleet.towns}
        links = _links(fleet)
        self._states: list[_DeviceState] = []
        for device in fleet.devices:
            poll = (
                PARKING_POLL_INTERVAL_S
                if device.use_case is UseCase.PARKING
                else float(device.expected_interval_s)
            )
            first_within = min(poll / speed, FIRST_UPLINK_WITHIN_S)
            self._states.append(
                _DeviceState(
                    device=device,
                    behaviour=behaviour_for(
                        device, weather[device.municipality], seed=seed, start=self._start
                    ),
                    link=links[device.dev_eui],
                    f_cnt=self._rng.randint(1, 5000),
                    poll_interval_s=poll,
                    next_due_ts=self._start_ts + self._rng.uniform(0.0, first_within),
                )
            )

    def simulated_time(self, now: datetime) -> datetime:
        """The sensors' clock: it started with the wall clock and runs `speed` times faster."""
        return self._start + (now - self._start) * self.speed

    def _frame_due(self, state: _DeviceState, sim_now: datetime) -> Frame | None:
        observation = state.behaviour.observe(sim_now)
        sim_ts = sim_now.timestamp()
        if (
            isinstance(observation, ParkingObservation)
            and not observation.changed
            and sim_ts - state.last_sent_sim_ts < state.device.expected_interval_s
        ):
            return None  # nothing changed and the heartbeat is not due yet
        state.last_sent_sim_ts = sim_ts
        return encode_frame(state.device.codec_id, observation, dev_eui=state.device.dev_eui)

    def messages_due(self, now: datetime) -> list[Message]:
        """The (topic, body) pairs whose time has come by wall-clock `now`, oldest first."""
        now_ts = now.timestamp()
        now_ns = int(now_ts * _NS)
        sim_now = self.simulated_time(now)
        messages: list[Message] = []
        for state in self._states:
            if state.next_due_ts > now_ts:
                continue
            step = state.poll_interval_s / self.speed
            state.next_due_ts += step * self._rng.uniform(0.9, 1.1)
            if state.next_due_ts <= now_ts:  # fell behind (a paused process): resume, do not flood
                state.next_due_ts = now_ts + step * self._rng.random()
            frame = self._frame_due(state, sim_now)
            if frame is None:
                continue
            messages.append(self._writer.uplink(self._transmission(state, frame, now_ns)))
        messages.extend(self._gateway_stats_due(now_ts))
        return messages

    def _transmission(self, state: _DeviceState, frame: Frame, received_at_ns: int) -> Transmission:
        state.f_cnt += 1
        channel_index = self._rng.randrange(len(EU868_CHANNELS_HZ))
        hearings = tuple(state.link.hear(self._rng))
        for hearing in hearings:
            counters = self._gateway_counters.get(hearing.gateway.gateway_eui)
            if counters is not None:
                counters.by_frequency[EU868_CHANNELS_HZ[channel_index]] += 1
        return Transmission(
            device=state.device,
            frame=frame,
            f_cnt=state.f_cnt,
            received_at_ns=received_at_ns,
            hearings=hearings,
            spreading_factor=state.link.spreading_factor,
            channel_index=channel_index,
        )

    def _gateway_stats_due(self, now_ts: float) -> list[Message]:
        if self._stats_interval_s is None or now_ts < self._next_stats_ts:
            return []
        self._next_stats_ts = max(self._next_stats_ts + self._stats_interval_s, now_ts)
        messages = []
        for gateway in self.fleet.gateways:
            counters = self._gateway_counters.get(gateway.gateway_eui)
            if counters is None:
                continue
            messages.append(self._writer.gateway_stats(gateway, int(now_ts * _NS), counters.by_frequency))
            counters.by_frequency = defaultdict(int)
        return messages

    def gateway_connections(self, *, online: bool) -> list[Message]:
        """The retained `state/conn` messages of the ChirpStack gateways."""
        return [
            self._writer.gateway_connection(gateway, online=online)
            for gateway in self.fleet.gateways
            if gateway.network_server is NetworkServer.CHIRPSTACK_V4
        ]

    def run(
        self,
        host: str,
        port: int,
        *,
        stop_event: threading.Event,
        topic_prefix: str = "",
        on_published: Callable[[str], None] | None = None,
        client_id: str | None = None,
        tick_s: float = 0.1,
        drain_timeout_s: float = 5.0,
    ) -> int:
        """Publish at QoS 1 until `stop_event` is set; returns how many messages the broker acknowledged.

        `topic_prefix` is put in front of every topic (tests use it to keep to themselves).
        `on_published(topic)` is called from the MQTT thread once the broker acknowledged a
        message. ChirpStack gateways are announced ONLINE (retained) at the start and OFFLINE
        when stopping, as the gateway bridge's last will would. Raises OSError when the
        broker cannot be reached at the start; later disconnects are retried by paho.
        """
        tracker = _AcknowledgementTracker(on_published)
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"lorakom-simulator-{os.getpid()}-{threading.get_ident()}",
        )
        client.on_publish = tracker.on_publish
        client.max_queued_messages_set(0)
        client.connect(host, port, keepalive=30)
        client.loop_start()
        try:
            for topic, body in self.gateway_connections(online=True):
                tracker.track(
                    client.publish(topic_prefix + topic, body, qos=1, retain=True), topic_prefix + topic
                )
            while not stop_event.is_set():
                for topic, body in self.messages_due(datetime.now(UTC)):
                    tracker.track(client.publish(topic_prefix + topic, body, qos=1), topic_prefix + topic)
                stop_event.wait(tick_s)
            for topic, body in self.gateway_connections(online=False):
                tracker.track(
                    client.publish(topic_prefix + topic, body, qos=1, retain=True), topic_prefix + topic
                )
            tracker.wait_until_acknowledged(drain_timeout_s)
        finally:
            client.disconnect()
            client.loop_stop()
        return tracker.acknowledged


class _AcknowledgementTracker:
    """Matches PUBACKs to topics without holding a lock while paho holds its own (no deadlock)."""

    def __init__(self, on_published: Callable[[str], None] | None) -> None:
        self._on_published = on_published
        self._lock = threading.Lock()
        self._pending: dict[int, str] = {}
        self._early: set[int] = set()  # acknowledged before `track` saw the message id
        self.acknowledged = 0

    def on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        with self._lock:
            topic = self._pending.pop(mid, None)
            if topic is None:
                self._early.add(mid)
                return
            self.acknowledged += 1
        if self._on_published is not None:
            self._on_published(topic)

    def track(self, info: mqtt.MQTTMessageInfo, topic: str) -> None:
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acknowledged += 1
                early = True
            else:
                self._pending[info.mid] = topic
                early = False
        if early and self._on_published is not None:
            self._on_published(topic)

    def wait_until_acknowledged(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return
            time.sleep(0.02)


def generate(
    n: int,
    seed: int = DEFAULT_SEED,
    *,
    devices_per_town: int = DEFAULT_DEVICES_PER_TOWN,
    start: datetime | None = None,
    spacing: timedelta = timedelta(milliseconds=5),
    frames_per_device: int = 16,
) -> list[Message]:
    """`n` realistic uplinks of the demo fleet, TTS and ChirpStack mixed, for load tests.

    Each device's payloads and receptions are computed once (pools of `frames_per_device`
    frames from its behaviour model at its reporting interval, and of gateway sets with
    their signal) and cycled; what changes per message is what a network server changes:
    frame counter, ids, times, channel.
    Devices take turns in a shuffled order; message k arrives at `start + k * spacing`
    (default: ending now). The same seed and start give the same messages.
    """
    fleet = demo_fleet(seed, devices_per_town)
    rng = random.Random(seed)
    writer = EnvelopeWriter(random.Random(seed + 1))
    first = start or datetime.now(UTC) - spacing * n
    weather = {town.slug: Weather(seed, text_key(town.slug)) for town in fleet.towns}
    links = _links(fleet)
    devices = list(fleet.devices)
    rng.shuffle(devices)
    pools: list[list[Frame]] = []
    receptions: list[list[tuple[Hearing, ...]]] = []
    for device in devices:
        link = links[device.dev_eui]
        receptions.append([tuple(link.hear(rng)) for _ in range(frames_per_device)])
        behaviour = behaviour_for(device, weather[device.municipality], seed=seed, start=first)
        interval = timedelta(seconds=device.expected_interval_s)
        pools.append(
            [
                encode_frame(device.codec_id, behaviour.observe(first + interval * k), dev_eui=device.dev_eui)
                for k in range(frames_per_device)
            ]
        )
    f_cnts = [rng.randint(1, 5000) for _ in devices]
    first_ns = int(first.timestamp() * _NS)
    spacing_ns = int(spacing.total_seconds() * _NS)
    channels = len(EU868_CHANNELS_HZ)
    messages: list[Message] = []
    for index in range(n):
        slot = index % len(devices)
        device = devices[slot]
        f_cnts[slot] += 1
        link = links[device.dev_eui]
        transmission = Transmission(
            device=device,
            frame=pools[slot][f_cnts[slot] % frames_per_device],
            f_cnt=f_cnts[slot],
            received_at_ns=first_ns + index * spacing_ns,
            hearings=receptions[slot][(f_cnts[slot] * 7 + index) % frames_per_device],
            spreading_factor=link.spreading_factor,
            channel_index=int(rng.random() * channels),
        )
        messages.append(writer.uplink(transmission))
    return messages
