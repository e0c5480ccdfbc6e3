"""Network-server messages as The Things Stack v3 and ChirpStack v4 publish them over MQTT.

The shapes follow real messages field for field, quirks included, so that the ingest
adapters see in the demo what they will see in production:

- TTS `…/up`: EUIs upper-case, 64-bit numbers as strings (`frequency`,
  `frequency_offset`), zero values left out (`f_cnt` 0, `snr` 0, `channel_index` 0),
  RFC 3339 times with nanoseconds and `Z`, a fresh `as:up:<ULID>` correlation id per
  uplink, one `rx_metadata` entry per gateway.
- ChirpStack v4 `event/up`: camelCase, EUIs lower-case, a UUID `deduplicationId`, times
  with nanoseconds and `+00:00`, top-level defaults present (`confirmed: false`) while
  zero fields inside `rxInfo` are left out (`channel` 0, `rfChain` 0), snake_case keys in
  `metadata`.
- ChirpStack gateway bridge `stats` and retained `state/conn` (JSON marshaler), where
  OFFLINE is expressed by leaving `state` out.

All ids come from one seeded random stream, so that a run can be replayed exactly.
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from cli.simulator.encoders.frames import Frame
from cli.simulator.fleet import SimulatedDevice, SimulatedGateway
from cli.simulator.radio import (
    BANDWIDTH_HZ,
    EU868_CHANNELS_HZ,
    Hearing,
    airtime_s,
    data_rate_index,
)
from domain.uplink import NetworkServer

Message = tuple[str, bytes]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_PAIRS = tuple(first + second for first in _CROCKFORD for second in _CROCKFORD)  # 10 bits each
_MS = 1_000_000
_CHIRPSTACK_METADATA = {"region_common_name": "EU868", "region_config_id": "eu868"}


@lru_cache(maxsize=4096)
def _ulid_time(unix_ms: int) -> str:
    pairs = _CROCKFORD_PAIRS
    return (
        pairs[(unix_ms >> 40) & 1023]
        + pairs[(unix_ms >> 30) & 1023]
        + pairs[(unix_ms >> 20) & 1023]
        + pairs[(unix_ms >> 10) & 1023]
        + pairs[unix_ms & 1023]
    )


def ulid(unix_ms: int, random_bits: int) -> str:
    """A ULID (48-bit millisecond time + 80 random bits in Crockford base32), as TTS uses for ids.

    Encoded ten bits at a time through a table: the standard library's base32 is pure
    Python and was the slowest step of generating benchmark load.
    """
    pairs = _CROCKFORD_PAIRS
    return (
        _ulid_time(unix_ms & 0xFFFF_FFFF_FFFF)
        + pairs[(random_bits >> 70) & 1023]
        + pairs[(random_bits >> 60) & 1023]
        + pairs[(random_bits >> 50) & 1023]
        + pairs[(random_bits >> 40) & 1023]
        + pairs[(random_bits >> 30) & 1023]
        + pairs[(random_bits >> 20) & 1023]
        + pairs[(random_bits >> 10) & 1023]
        + pairs[random_bits & 1023]
    )


@lru_cache(maxsize=8192)
def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def rfc3339(unix_ns: int, *, offset: str = "Z", digits: int = 9) -> str:
    """An RFC 3339 UTC time with `digits` fractional digits (0 = none), ending in `Z` or `+00:00`."""
    second, nanos = divmod(unix_ns, 1_000_000_000)
    if digits == 0:
        return f"{_second_text(second)}{offset}"
    fraction = f"{nanos:09d}"[:digits]
    return f"{_second_text(second)}.{fraction}{offset}"


@dataclass(frozen=True, slots=True)
class Transmission:
    """One uplink as it left the device and reached the gateways."""

    device: SimulatedDevice
    frame: Frame
    f_cnt: int
    received_at_ns: int  # when the application server published it
    hearings: tuple[Hearing, ...]
    spreading_factor: int
    channel_index: int


@dataclass(frozen=True, slots=True)
class _GatewayConstants:
    tts_ids: dict[str, str]
    location: dict[str, float]
    tts_location: dict[str, float | str]
    counter_offset_us: int  # the concentrator's free-running µs counter is not wall time
    has_gps: bool
    connection_ulid: str
    host_ulid: str


class EnvelopeWriter:
    """Turns transmissions into (topic, body) pairs in the format of the device's network server."""

    def __init__(self, rng: random.Random, *, gateway_topic_prefix: str = "") -> None:
        self._rng = rng
        self._gateway_prefix = gateway_topic_prefix
        self._gateways: dict[str, _GatewayConstants] = {}
        self._tts_devices: dict[str, tuple[dict[str, Any], str, dict[str, Any], dict[str, Any]]] = {}
        self._chirpstack_devices: dict[str, dict[str, Any]] = {}

    def _between(self, low: int, high: int) -> int:
        """A random integer in [low, high]; `Random.randint` costs several times more."""
        return low + int(self._rng.random() * (high - low + 1))

    def _ulid(self, unix_ns: int) -> str:
        return ulid(unix_ns // _MS, self._rng.getrandbits(80))

    def _gateway(self, gateway: SimulatedGateway, first_seen_ns: int) -> _GatewayConstants:
        constants = self._gateways.get(gateway.gateway_eui)
        if constants is None:
            started_ns = first_seen_ns - self._rng.randint(3600, 30 * 86400) * 1_000_000_000
            constants = _GatewayConstants(
                tts_ids={"gateway_id": gateway.tts_gateway_id, "eui": gateway.gateway_eui.upper()},
                location={
                    "latitude": gateway.latitude,
                    "longitude": gateway.longitude,
                    "altitude": gateway.altitude_m,
                },
                tts_location={
                    "latitude": gateway.latitude,
                    "longitude": gateway.longitude,
                    "altitude": gateway.altitude_m,
                    "source": "SOURCE_REGISTRY",
                },
                counter_offset_us=self._rng.getrandbits(32),
                has_gps=self._rng.random() < 0.6,
                connection_ulid=self._ulid(started_ns),
                host_ulid=self._ulid(started_ns),
            )
            self._gateways[gateway.gateway_eui] = constants
        return constants

    def uplink(self, transmission: Transmission) -> Message:
        if transmission.device.network_server is NetworkServer.TTS:
            return self.tts_uplink(transmission)
        return self.chirpstack_uplink(transmission)

    # --- The Things Stack --------------------------------------------------------------------------

    def _tts_device(
        self, device: SimulatedDevice
    ) -> tuple[dict[str, Any], str, dict[str, Any], dict[str, Any]]:
        constants = self._tts_devices.get(device.dev_eui)
        if constants is None:
            ids = {
                "device_id": device.network_device_id,
                "application_ids": {"application_id": device.application_id},
                "dev_eui": device.dev_eui.upper(),
                "join_eui": "70B3D57ED0000000" if device.vendor != "milesight-iot" else "24E124C0002A0001",
                "dev_addr": device.dev_addr.upper(),
            }
            session_key_id = base64.b64encode(self._rng.randbytes(16)).decode()
            locations = {
                "user": {
                    "latitude": device.latitude,
                    "longitude": device.longitude,
                    "source": "SOURCE_REGISTRY",
                }
            }
            version_ids = {"brand_id": device.vendor, "model_id": device.model, "band_id": "EU_863_870"}
            constants = (ids, session_key_id, locations, version_ids)
            self._tts_devices[device.dev_eui] = constants
        return constants

    @staticmethod
    def tts_topic(device: SimulatedDevice) -> str:
        return f"v3/{device.application_id}@{device.tenant_id}/devices/{device.network_device_id}/up"

    def tts_uplink(self, transmission: Transmission) -> Message:
        rng = self._rng
        device = transmission.device
        ids, session_key_id, locations, version_ids = self._tts_device(device)
        received_ns = transmission.received_at_ns
        gateway_ns = received_ns - self._between(180, 320) * _MS
        counter_us = gateway_ns // 1000
        rx_metadata: list[dict[str, Any]] = []
        first_timestamp = 0
        for hearing in transmission.hearings:
            gateway = self._gateway(hearing.gateway, gateway_ns)
            timestamp = (gateway.counter_offset_us + counter_us) & 0xFFFF_FFFF
            first_timestamp = first_timestamp or timestamp
            entry: dict[str, Any] = {"gateway_ids": gateway.tts_ids}
            if gateway.has_gps:
                entry["time"] = rfc3339(gateway_ns, digits=6)
            entry["timestamp"] = timestamp
            entry["rssi"] = hearing.rssi_dbm
            entry["channel_rssi"] = hearing.rssi_dbm
            if hearing.snr_db:
                entry["snr"] = hearing.snr_db
            entry["frequency_offset"] = str(self._between(-3000, 3000))
            entry["location"] = gateway.tts_location
            entry["uplink_token"] = base64.b64encode(rng.randbytes(44)).decode()
            if transmission.channel_index:
                entry["channel_index"] = transmission.channel_index
            entry["received_at"] = rfc3339(gateway_ns + self._between(2, 40) * _MS)
            rx_metadata.append(entry)
        frame = transmission.frame
        uplink: dict[str, Any] = {"session_key_id": session_key_id, "f_port": frame.f_port}
        if transmission.f_cnt:
            uplink["f_cnt"] = transmission.f_cnt
        uplink["frm_payload"] = base64.b64encode(frame.payload).decode()
        uplink["rx_metadata"] = rx_metadata
        settings: dict[str, Any] = {
            "data_rate": {
                "lora": {
                    "bandwidth": BANDWIDTH_HZ,
                    "spreading_factor": transmission.spreading_factor,
                    "coding_rate": "4/5",
                }
            },
            "frequency": str(EU868_CHANNELS_HZ[transmission.channel_index]),
            "timestamp": first_timestamp,
        }
        if "time" in rx_metadata[0]:
            settings["time"] = rx_metadata[0]["time"]
        uplink["settings"] = settings
        uplink["received_at"] = rfc3339(gateway_ns + self._between(200, 230) * _MS)
        uplink["consumed_airtime"] = f"{airtime_s(len(frame.payload), transmission.spreading_factor):.6f}s"
        uplink["locations"] = locations
        uplink["version_ids"] = version_ids
        uplink["network_ids"] = _tts_network_ids(device.tenant_id)
        first_gateway = self._gateway(transmission.hearings[0].gateway, gateway_ns)
        body = {
            "end_device_ids": ids,
            "correlation_ids": [
                f"as:up:{self._ulid(received_ns)}",
                f"gs:conn:{first_gateway.connection_ulid}",
                f"gs:up:host:{first_gateway.host_ulid}",
                f"gs:uplink:{self._ulid(gateway_ns)}",
                f"ns:uplink:{self._ulid(gateway_ns)}",
                f"rpc:/ttn.lorawan.v3.GsNs/HandleUplink:{self._ulid(gateway_ns)}",
                f"rpc:/ttn.lorawan.v3.NsAs/HandleUplink:{self._ulid(received_ns)}",
            ],
            "received_at": rfc3339(received_ns),
            "uplink_message": uplink,
        }
        return self.tts_topic(device), orjson.dumps(body)

    # --- ChirpStack v4 -----------------------------------------------------------------------------

    def _chirpstack_device(self, device: SimulatedDevice) -> dict[str, Any]:
        info = self._chirpstack_devices.get(device.dev_eui)
        if info is None:
            info = {
                "tenantId": device.tenant_id,
                "tenantName": device.tenant_name,
                "applicationId": device.application_id,
                "applicationName": device.application_name,
                "deviceProfileId": device.device_profile_id,
                "deviceProfileName": device.device_profile_name,
                "deviceName": device.name,
                "devEui": str(device.dev_eui),
                "deviceClassEnabled": "CLASS_A",
                "tags": {},
            }
            self._chirpstack_devices[device.dev_eui] = info
        return info

    @staticmethod
    def chirpstack_topic(device: SimulatedDevice) -> str:
        return f"application/{device.application_id}/device/{device.dev_eui}/event/up"

    def chirpstack_uplink(self, transmission: Transmission) -> Message:
        rng = self._rng
        device = transmission.device
        gateway_ns = transmission.received_at_ns - self._between(210, 260) * _MS
        channel = transmission.channel_index
        rx_info: list[dict[str, Any]] = []
        for hearing in transmission.hearings:
            gateway = self._gateway(hearing.gateway, gateway_ns)
            entry: dict[str, Any] = {
                "gatewayId": hearing.gateway.gateway_eui,
                "uplinkId": rng.getrandbits(32),
            }
            if gateway.has_gps:
                entry["gwTime"] = rfc3339(gateway_ns, offset="+00:00", digits=6)
            entry["nsTime"] = rfc3339(gateway_ns + self._between(5, 40) * _MS, offset="+00:00")
            entry["rssi"] = hearing.rssi_dbm
            entry["snr"] = hearing.snr_db
            if channel:
                entry["channel"] = channel
            if channel < 3:
                entry["rfChain"] = 1
            entry["location"] = gateway.location
            counter = (gateway.counter_offset_us + gateway_ns // 1000) & 0xFFFF_FFFF
            entry["context"] = base64.b64encode(counter.to_bytes(4, "big")).decode()
            entry["metadata"] = _CHIRPSTACK_METADATA
            entry["crcStatus"] = "CRC_OK"
            rx_info.append(entry)
        frame = transmission.frame
        body = {
            "deduplicationId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time": rfc3339(gateway_ns, offset="+00:00", digits=6),
            "deviceInfo": self._chirpstack_device(device),
            "devAddr": device.dev_addr,
            "adr": True,
            "dr": data_rate_index(transmission.spreading_factor),
            "fCnt": transmission.f_cnt,
            "fPort": frame.f_port,
            "confirmed": False,
            "data": base64.b64encode(frame.payload).decode(),
            "rxInfo": rx_info,
            "txInfo": {
                "frequency": EU868_CHANNELS_HZ[channel],
                "modulation": {
                    "lora": {
                        "bandwidth": BANDWIDTH_HZ,
                        "spreadingFactor": transmission.spreading_factor,
                        "codeRate": "CR_4_5",
                    }
                },
            },
            "regionConfigId": "eu868",
        }
        return self.chirpstack_topic(device), orjson.dumps(body)

    def gateway_topic(self, gateway: SimulatedGateway, suffix: str) -> str:
        return f"{self._gateway_prefix}gateway/{gateway.gateway_eui}/{suffix}"

    def gateway_stats(
        self, gateway: SimulatedGateway, at_ns: int, received_by_frequency: Mapping[int, int]
    ) -> Message:
        """A gateway bridge `stats` event; counters cover the frames heard since the previous one."""
        constants = self._gateway(gateway, at_ns)
        received = sum(received_by_frequency.values())
        body: dict[str, Any] = {"gatewayId": gateway.gateway_eui, "time": rfc3339(at_ns, digits=0)}
        body["location"] = constants.location
        if received:
            body["rxPacketsReceived"] = received
            body["rxPacketsReceivedOk"] = received
            body["rxPacketsPerFrequency"] = {
                str(hz): count for hz, count in sorted(received_by_frequency.items())
            }
            body["rxPacketsPerModulation"] = [
                {
                    "modulation": {
                        "lora": {"bandwidth": BANDWIDTH_HZ, "spreadingFactor": 7, "codeRate": "CR_4_5"}
                    },
                    "count": received,
                }
            ]
        return self.gateway_topic(gateway, "event/stats"), orjson.dumps(body)

    def gateway_connection(self, gateway: SimulatedGateway, *, online: bool) -> Message:
        """The retained `state/conn` message; OFFLINE is the enum's zero value, so JSON leaves `state` out."""
        body: dict[str, str] = {"gatewayId": gateway.gateway_eui}
        if online:
            body["state"] = "ONLINE"
        return self.gateway_topic(gateway, "state/conn"), orjson.dumps(body)


@lru_cache(maxsize=64)
def _tts_network_ids(tenant_id: str) -> dict[str, str]:
    """Where the uplink was handled: a tenant on The Things Industries' eu1 cluster."""
    return {
        "net_id": "000013",
        "tenant_id": tenant_id,
        "cluster_id": "eu1",
        "cluster_address": "eu1.cloud.thethings.industries",
        "tenant_address": f"{tenant_id}.eu1.cloud.thethings.industries",
    }
