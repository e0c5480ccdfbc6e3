"""Network-server messages → `NetworkEvent`: the only place that knows TTS or ChirpStack wire formats.

Entry points: `parse_message` for MQTT (kind, topic, body), `parse_webhook` for
the HTTP integrations, `default_topics` for what a bridge subscribes to. Every
failure is a `MessageRejected` with a reason naming the field, so the bridge can
keep the raw bytes beside the reason and carry on.

Dedup keys (`Uplink.uplink_key`, at most 64 characters)
--------------------------------------------------------
The key must be equal for every delivery of one frame through any path
(QoS 1 redelivery, two bridges, webhook and MQTT, a Storage Integration
backfill), and differ between frames.

* ChirpStack v4: `deduplicationId`. ChirpStack assigns it once per frame after
  merging the gateways, and the MQTT and HTTP integrations send the same event.
* TTS: a hash of (device id, else DevEUI; f_cnt; session_key_id;
  `uplink_message.received_at` to the microsecond). TTS also has an `as:up:`
  correlation id per uplink, but the Storage Integration's documented responses
  carry no `correlation_ids`, so a backfilled copy could never match the MQTT
  copy by it; every field of the hash is present in MQTT, webhook and storage
  alike. A simulated uplink's inner time is year 1, so its envelope time is used.
* ChirpStack v3: a hash of (DevEUI, f_cnt, the first gateway's `uplinkID` as
  UUID text, else the earliest gateway time). Both JSON marshalers yield the
  same key because the uplink id is normalised from either spelling.

LoRaWAN retransmissions (NbTrans > 1, or a confirmed uplink repeated because
its ack was lost) reuse the f_cnt but are separate radio transmissions that the
network server delivers separately, with new correlation ids and a new receive
time. They get distinct keys on purpose: each one is a real reception with its
own gateways and signal levels, and the key's job is to drop copies of one
delivery, not to judge which transmissions are redundant. ChirpStack already
turns them into a `log` event; on TTS they show as two uplinks with one
(device, f_cnt), which a query can collapse if it wants to.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.uplink import NetworkEvent, NetworkServer
from ingest.adapters import chirpstack, chirpstack_v3, tts

__all__ = ["default_topics", "parse_message", "parse_webhook"]

_TOPICS: dict[NetworkServer, tuple[str, ...]] = {
    NetworkServer.TTS: ("v3/+/devices/+/up", "v3/+/devices/+/join"),
    NetworkServer.CHIRPSTACK_V4: (
        "application/+/device/+/event/up",
        "application/+/device/+/event/join",
        "application/+/device/+/event/status",
        "gateway/+/event/stats",
        "gateway/+/state/conn",
        "+/gateway/+/event/stats",
        "+/gateway/+/state/conn",
    ),
    NetworkServer.CHIRPSTACK_V3: (
        "application/+/device/+/event/up",
        "application/+/device/+/event/join",
        "application/+/device/+/event/status",
        "gateway/+/event/stats",
    ),
}

_MQTT_PARSERS: dict[NetworkServer, Callable[[str, bytes], NetworkEvent]] = {
    NetworkServer.TTS: lambda topic, body: tts.parse_body(body, topic=topic),
    NetworkServer.CHIRPSTACK_V4: chirpstack.parse_mqtt,
    NetworkServer.CHIRPSTACK_V3: chirpstack_v3.parse_mqtt,
}


def default_topics(kind: NetworkServer) -> tuple[str, ...]:
    """The MQTT topic filters that carry everything lorakom stores from one server of `kind`."""
    return _TOPICS[kind]


def parse_message(kind: NetworkServer, topic: str, body: bytes) -> NetworkEvent:
    """One MQTT message as an event; raises only `MessageRejected`."""
    return _MQTT_PARSERS[kind](topic, body)


def parse_webhook(
    kind: NetworkServer, body: bytes, *, event: str | None, content_type: str | None
) -> NetworkEvent:
    """One HTTP integration POST as an event; raises only `MessageRejected`.

    `event` is ChirpStack's `?event=` query parameter (TTS ignores it: its body
    names its own kind). `content_type` decides JSON or protobuf where given,
    else the body is sniffed.
    """
    if kind is NetworkServer.TTS:
        return tts.parse_webhook(body, content_type=content_type)
    if kind is NetworkServer.CHIRPSTACK_V4:
        return chirpstack.parse_http(body, event=event, content_type=content_type)
    return chirpstack_v3.parse_http(body, event=event, content_type=content_type)
