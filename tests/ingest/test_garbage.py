"""Fuzzed topics and bodies: every adapter answers with an event or `MessageRejected`, nothing else.

Random bytes rarely get past the first check, so most examples are captured
messages with one field replaced by a random JSON value, deleted, or (for
protobuf) with bytes flipped or cut: that is where a parser meets types it did
not expect. Events that come out must also hold what storage relies on
(key length, UTC times, value ranges), because a bad value would fail a whole
batch later instead of one message now.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import MessageRejected
from domain.uplink import DeviceStatus, GatewayStatus, Ignored, Join, NetworkEvent, NetworkServer, Uplink
from ingest.adapters import parse_message, parse_webhook

FORMATS = Path(__file__).parent.parent / "fixtures" / "formats"
JSON_FIXTURES = {path.name: json.loads(path.read_bytes()) for path in sorted(FORMATS.glob("*.json"))}
PROTOBUF_FIXTURE = (FORMATS / "chirpstack_v4_up.pb").read_bytes()
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CS3_UP = "application/1/device/0202020202020202/event/up"
TOPICS = [
    "v3/app1@ttn/devices/dev1/up",
    "v3/app1/devices/dev1/join",
    "application/ca739e26/device/1000000000000001/event/up",
    "application/1/device/0202020202020202/event/status",
    "application/1/device/0202020202020202/event/join",
    "application/1/device/0202020202020202/event/log",
    "gateway/0016c001f153a14c/event/stats",
    "eu868/gateway/0016c001f153a14c/state/conn",
    "gateway/0016c001f153a14c/event/up",
    "gateway//state/conn",
    "",
    "/",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["AQID", "0001-01-01T00:00:00Z", "2023-05-18T08:25:26.1Z", "1000000000000001", "=="]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
topics = st.sampled_from(TOPICS) | st.text(max_size=60)
kinds = st.sampled_from(list(NetworkServer))


def paths_in(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_in(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_in(item, (*prefix, index))
    return found


ROUTES: dict[str, tuple[NetworkServer, str]] = {
    "tts_v3_uplink.json": (NetworkServer.TTS, TOPICS[0]),
    "tts_v3_uplink_no_decoded.json": (NetworkServer.TTS, TOPICS[0]),
    "tts_v3_uplink_simulated.json": (NetworkServer.TTS, TOPICS[0]),
    "tts_v3_join.json": (NetworkServer.TTS, TOPICS[1]),
    "chirpstack_v4_up.json": (NetworkServer.CHIRPSTACK_V4, TOPICS[2]),
    "chirpstack_v4_up_real_1gw.json": (NetworkServer.CHIRPSTACK_V4, TOPICS[2]),
    "chirpstack_v4_status.json": (NetworkServer.CHIRPSTACK_V4, TOPICS[3]),
    "chirpstack_v4_join.json": (NetworkServer.CHIRPSTACK_V4, TOPICS[4]),
    "chirpstack_v4_gateway_stats.json": (NetworkServer.CHIRPSTACK_V4, TOPICS[6]),
    "chirpstack_v4_gateway_conn_online.json": (NetworkServer.CHIRPSTACK_V4, TOPICS[7]),
    "chirpstack_v3_up.json": (NetworkServer.CHIRPSTACK_V3, CS3_UP),
    "chirpstack_v3_up_pbjson.json": (
        NetworkServer.CHIRPSTACK_V3,
        CS3_UP,
    ),
}
"""Where each captured message belongs, so that a mutation meets the parser that reads it."""


@st.composite
def mutated_json(draw: st.DrawFn, names: list[str] | None = None) -> bytes:
    name = draw(st.sampled_from(names or sorted(JSON_FIXTURES)))
    message = json.loads(json.dumps(JSON_FIXTURES[name]))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = paths_in(message)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = message
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return json.dumps(message).encode()


@st.composite
def mutated_protobuf(draw: st.DrawFn) -> bytes:
    body = bytearray(PROTOBUF_FIXTURE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(body) - 1))
        body[position] = draw(st.integers(min_value=0, max_value=255))
    return bytes(body[: draw(st.integers(min_value=0, max_value=len(body)))])


bodies = (
    mutated_json()
    | mutated_protobuf()
    | st.binary(max_size=200)
    | json_values.map(lambda value: json.dumps(value).encode())
    | st.sampled_from([b"", b"{", b"{}", b"null", b"[]", b'{"uplink_message": null}', b"\x0a\x00"])
)


@st.composite
def routed_mutations(draw: st.DrawFn) -> tuple[NetworkServer, str, bytes]:
    name = draw(st.sampled_from(sorted(ROUTES)))
    kind, topic = ROUTES[name]
    return kind, topic, draw(mutated_json([name]))


def assert_storable(event: NetworkEvent) -> None:
    """What the writer relies on: bounded keys and ids, aware UTC times, values inside their columns."""
    assert isinstance(event, Uplink | Join | DeviceStatus | GatewayStatus | Ignored)
    if isinstance(event, Uplink):
        assert 0 < len(event.uplink_key) <= 64
        assert event.received_at.tzinfo is UTC
        assert event.f_port is None or 0 <= event.f_port <= 255
        assert event.f_cnt is None or 0 <= event.f_cnt <= 0xFFFFFFFF
        for text in (event.network_device_id, event.application_id):
            assert text is None or (len(text) <= 200 and "\x00" not in text)
        for reception in event.receptions:
            assert 0 < len(reception.gateway_id) <= 128
            assert 0 <= reception.antenna <= 255
            assert reception.received_at is None or reception.received_at.tzinfo is UTC
            assert reception.snr_db is None or math.isfinite(reception.snr_db)
        keys = {(reception.gateway_id, reception.antenna) for reception in event.receptions}
        assert len(keys) == len(event.receptions)
        if event.decoded_by_network is not None:
            assert "\\u0000" not in json.dumps(event.decoded_by_network)
    elif isinstance(event, Join | DeviceStatus):
        assert event.received_at.tzinfo is UTC
    elif isinstance(event, GatewayStatus):
        assert event.observed_at.tzinfo is UTC
        assert 0 < len(event.gateway_id) <= 128


def assert_event_or_reason(parse: Callable[[], NetworkEvent]) -> None:
    try:
        event: NetworkEvent | None = parse()
    except MessageRejected as rejected:
        reason = rejected.reason
        event = None
    if event is None:
        assert reason
    else:
        assert_storable(event)


@FUZZ
@given(kind=kinds, topic=topics, body=bodies)
def test_mqtt_messages_become_events_or_rejections(kind: NetworkServer, topic: str, body: bytes) -> None:
    assert_event_or_reason(lambda: parse_message(kind, topic, body))


@FUZZ
@given(
    kind=kinds,
    body=bodies,
    event_type=st.none() | st.sampled_from(["up", "join", "status", "log", "ack", ""]) | st.text(max_size=10),
    content_type=st.none()
    | st.sampled_from(["application/json", "application/octet-stream", "text/plain; charset=utf-8"])
    | st.text(max_size=20),
)
def test_webhook_posts_become_events_or_rejections(
    kind: NetworkServer, body: bytes, event_type: str | None, content_type: str | None
) -> None:
    assert_event_or_reason(lambda: parse_webhook(kind, body, event=event_type, content_type=content_type))


@FUZZ
@given(routed=routed_mutations())
def test_mutated_messages_on_their_own_topics(routed: tuple[NetworkServer, str, bytes]) -> None:
    kind, topic, body = routed
    assert_event_or_reason(lambda: parse_message(kind, topic, body))


@FUZZ
@given(body=mutated_protobuf())
def test_mutated_protobuf_uplinks(body: bytes) -> None:
    topic = ROUTES["chirpstack_v4_up.json"][1]
    assert_event_or_reason(lambda: parse_message(NetworkServer.CHIRPSTACK_V4, topic, body))
