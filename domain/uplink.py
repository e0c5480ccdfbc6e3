"""One neutral shape for everything a network server tells us.

Adapters in `ingest/` turn TTS v3, ChirpStack v4 and ChirpStack v3 messages
(MQTT or webhook, JSON or protobuf) into these types; nothing after the
adapters knows which server a message came from except through
`network_server`, which is kept for provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from domain.ids import DevEui, GatewayId

# The per-message types (Uplink, Reception, Radio, Location) are frozen: events are
# facts. A frozen dataclass's __init__ pays `object.__setattr__` per field, so the
# adapters build them through `ingest.adapters.construct`, which sets the slots
# directly and checks at import that the field lists still match.

JsonObject = dict[str, Any]


class NetworkServer(StrEnum):
    TTS = "tts"
    CHIRPSTACK_V4 = "chirpstack-v4"
    CHIRPSTACK_V3 = "chirpstack-v3"


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    altitude_m: float | None = None


@dataclass(frozen=True, slots=True)
class Reception:
    """One gateway (antenna) that heard an uplink."""

    gateway_id: GatewayId
    rssi_dbm: float | None = None
    snr_db: float | None = None
    channel: int | None = None
    antenna: int = 0
    received_at: datetime | None = None
    gateway_location: Location | None = None
    gateway_eui: str | None = None


@dataclass(frozen=True, slots=True)
class Radio:
    """How the frame was sent; every field is optional because servers omit defaults."""

    spreading_factor: int | None = None
    bandwidth_hz: int | None = None
    frequency_hz: int | None = None
    coding_rate: str | None = None
    data_rate: int | None = None
    airtime_s: float | None = None


@dataclass(frozen=True, slots=True)
class Uplink:
    """A data uplink, as delivered once per frame after the network server's own dedup.

    `uplink_key` identifies the delivery across redeliveries, bridges, webhooks and
    backfills (see `ingest/adapters` for how each server's key is chosen); together with
    `received_at` it is the primary key of the stored uplink.
    """

    network_server: NetworkServer
    uplink_key: str
    received_at: datetime
    dev_eui: DevEui | None
    payload: bytes
    f_port: int | None = None
    f_cnt: int | None = None
    network_device_id: str | None = None
    application_id: str | None = None
    dev_addr: str | None = None
    decoded_by_network: JsonObject | None = None
    receptions: tuple[Reception, ...] = ()
    radio: Radio = field(default_factory=Radio)
    confirmed: bool = False
    simulated: bool = False
    battery_percent: float | None = None


@dataclass(frozen=True, slots=True)
class Join:
    """A device (re)joined the network (OTAA)."""

    network_server: NetworkServer
    received_at: datetime
    dev_eui: DevEui | None
    network_device_id: str | None = None
    dev_addr: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A DevStatusAns answer: battery and link margin as the network server reports them."""

    network_server: NetworkServer
    received_at: datetime
    dev_eui: DevEui
    battery_percent: float | None = None
    margin_db: int | None = None
    external_power: bool = False


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A gateway's own heartbeat (ChirpStack gateway bridge `stats` or `state/conn`)."""

    gateway_id: GatewayId
    observed_at: datetime
    online: bool
    location: Location | None = None
    rx_packets: int | None = None
    rx_packets_ok: int | None = None
    tx_packets: int | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed message of a kind lorakom does not store (downlink acks, logs, …)."""

    kind: str


NetworkEvent = Uplink | Join | DeviceStatus | GatewayStatus | Ignored


DEFAULT_MAX_FUTURE = timedelta(minutes=5)
"""How far ahead of the receiving clock a network server's time may lie and still be believed.

Gateways and network servers keep time by GPS or NTP, so their times are close to ours;
minutes of slack cover a badly set clock on either side. Every summary only moves
forward in time (latest values, last seen, last heard), so a time far ahead, believed
once, would hold them still until that moment came.
"""


def time_is_believable(claimed: datetime, received: datetime, max_future: timedelta) -> bool:
    """Whether a network server's `claimed` time is at most `max_future` ahead of our `received`."""
    return claimed <= received + max_future
