"""ChirpStack gateway bridge topics: `stats` heartbeats and the retained `state/conn`.

Gateways publish to `[region prefix/]gateway/{id}/event|state/...` on the same
broker as the application events, in protobuf by default (JSON only when the
bridge's marshaler is set to it), so both encodings are read. The v3 bridge
used the same field numbers with the id as bytes (today's
`gateway_id_legacy`) and base64 in JSON, which is why one parser serves both
generations.

`state/conn` is the bridge's MQTT last will: OFFLINE is enum value 0, which
protobuf-JSON omits, so a body with only `gatewayId` means offline. It carries
no time, and `stats` may lack one, so the moment of parsing stands in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from chirpstack_api import gw

from domain.errors import MessageRejected
from domain.ids import GatewayId
from domain.uplink import GatewayStatus, Ignored, JsonObject, NetworkEvent
from ingest.adapters.chirpstack_protobuf import clean_text, decode, location_field, timestamp
from ingest.adapters.json_fields import (
    UINT32_MAX,
    gateway_id,
    hex_or_base64,
    integer,
    load_object,
    text,
)
from ingest.adapters.receptions import location_in
from ingest.adapters.timestamps import parse_timestamp


@dataclass(frozen=True, slots=True)
class GatewayTopic:
    gateway: str
    channel: str
    """`event` or `state`."""
    name: str


def gateway_topic(topic: str) -> GatewayTopic | None:
    """`[prefix/]gateway/{id}/(event|state)/{name}`, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[-4] != "gateway" or parts[-2] not in ("event", "state"):
        return None
    return GatewayTopic(gateway=parts[-3], channel=parts[-2], name=parts[-1])


def parse_gateway_message(topic: GatewayTopic, body: bytes) -> NetworkEvent:
    if topic.channel == "event" and topic.name == "stats":
        return _stats_json(topic, body) if body[:1] == b"{" else _stats_protobuf(topic, body)
    if topic.channel == "state" and topic.name == "conn":
        return _conn_json(topic, body) if body[:1] == b"{" else _conn_protobuf(topic, body)
    return Ignored(kind=f"chirpstack gateway {topic.channel} {topic.name}")


def _id_from_json(message: JsonObject, topic: GatewayTopic) -> GatewayId:
    given = text(message, "gatewayId", "") or text(message, "gatewayID", "")
    if given:
        return gateway_id(hex_or_base64(given, 8, "gatewayId"), "gatewayId")
    return _id_from_topic(topic)


def _id_from_topic(topic: GatewayTopic) -> GatewayId:
    return gateway_id(topic.gateway, "the topic's gateway id")


def _id_from_protobuf(message: gw.GatewayStats | gw.ConnState, topic: GatewayTopic) -> GatewayId:
    given = clean_text(message.gateway_id, "gatewayId")
    if given:
        return gateway_id(given, "gatewayId")
    legacy = bytes(message.gateway_id_legacy)
    if legacy:
        if len(legacy) != 8:
            raise MessageRejected(f"gatewayId must hold 8 bytes, got {len(legacy)}")
        return gateway_id(legacy.hex(), "gatewayId")
    return _id_from_topic(topic)


def _stats_json(topic: GatewayTopic, body: bytes) -> GatewayStatus:
    message = load_object(body, "ChirpStack gateway stats")
    sent_at = text(message, "time", "")
    received_ok = integer(message, "rxPacketsReceivedOk", "", 0, UINT32_MAX)
    if received_ok is None:
        received_ok = integer(message, "rxPacketsReceivedOK", "", 0, UINT32_MAX)
    return GatewayStatus(
        gateway_id=_id_from_json(message, topic),
        observed_at=parse_timestamp(sent_at, "time") if sent_at else datetime.now(UTC),
        online=True,
        location=location_in(message, "location", ""),
        rx_packets=integer(message, "rxPacketsReceived", "", 0, UINT32_MAX),
        rx_packets_ok=received_ok,
        tx_packets=integer(message, "txPacketsEmitted", "", 0, UINT32_MAX),
    )


def _stats_protobuf(topic: GatewayTopic, body: bytes) -> GatewayStatus:
    stats = decode(gw.GatewayStats, body)
    return GatewayStatus(
        gateway_id=_id_from_protobuf(stats, topic),
        observed_at=timestamp(stats, "time", "time") or datetime.now(UTC),
        online=True,
        location=location_field(stats, "location"),
        rx_packets=stats.rx_packets_received,
        rx_packets_ok=stats.rx_packets_received_ok,
        tx_packets=stats.tx_packets_emitted,
    )


def _conn_json(topic: GatewayTopic, body: bytes) -> GatewayStatus:
    message = load_object(body, "ChirpStack gateway state")
    state = text(message, "state", "") or "OFFLINE"
    if state not in ("ONLINE", "OFFLINE"):
        raise MessageRejected(f"state must be ONLINE or OFFLINE, got {state[:40]!r}")
    return GatewayStatus(
        gateway_id=_id_from_json(message, topic), observed_at=datetime.now(UTC), online=state == "ONLINE"
    )


def _conn_protobuf(topic: GatewayTopic, body: bytes) -> GatewayStatus:
    state = decode(gw.ConnState, body)
    return GatewayStatus(
        gateway_id=_id_from_protobuf(state, topic),
        observed_at=datetime.now(UTC),
        online=state.state == gw.ConnState.ONLINE,
    )
