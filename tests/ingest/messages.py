"""Network-server messages made up for the end-to-end tests, shaped like the captured ones.

Each test gets its own application ids, hence its own topics, so tests never see
each other's messages on a shared broker.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # nanosecond digits, as TTS sends them


@dataclass
class Traffic:
    """A test's own TTS application and ChirpStack application, and the messages sent to them."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def tts_app(self) -> str:
        return f"test-{self.tag}@ttn"

    @property
    def chirpstack_app(self) -> str:
        return f"00000000-0000-0000-0000-{self.tag:0>12}"

    @property
    def source_names(self) -> tuple[str, str]:
        """The two sources that `sources_toml` defines."""
        return (f"tts-{self.tag}", f"cs-{self.tag}")

    @property
    def tts_topic_filter(self) -> str:
        return f"v3/{self.tts_app}/devices/+/up"

    @property
    def chirpstack_topic_filter(self) -> str:
        return f"application/{self.chirpstack_app}/device/+/event/up"

    def dev_eui(self, device: int) -> str:
        return f"{int(self.tag[:6], 16):06x}{device:010x}"

    def tts_uplink(self, n: int, device: int = 1, gateways: int = 2) -> tuple[str, bytes]:
        at = T0 + timedelta(seconds=n)
        eui = self.dev_eui(device)
        body = {
            "end_device_ids": {
                "device_id": f"dev-{device}",
                "application_ids": {"application_id": self.tts_app.split("@")[0]},
                "dev_eui": eui.upper(),
                "dev_addr": "260B1234",
            },
            "correlation_ids": [f"as:up:{self.tag.upper()}{n:016d}", f"gs:uplink:{uuid.uuid4().hex}"],
            "received_at": iso(at + timedelta(milliseconds=40)),
            "uplink_message": {
                # Per traffic, as TTS gives each device session its own: the frame key hashes it with
                # the device id, f_cnt and time, and every traffic's devices are named dev-1, dev-2, ...
                "session_key_id": base64.b64encode(bytes.fromhex(f"{self.tag:0>32}")).decode(),
                "f_port": 2,
                "f_cnt": n,
                "frm_payload": base64.b64encode(bytes([n % 256, 0x10, 0x20])).decode(),
                "decoded_payload": {"temperature": 20 + (n % 10) / 10, "humidity": 55.5},
                "rx_metadata": [
                    {
                        "gateway_ids": {"gateway_id": f"gw-{self.tag}-{g}", "eui": f"{g:02x}{self.tag:0>14}"},
                        "rssi": -90 - g,
                        "channel_rssi": -90 - g,
                        "snr": 7.25 - g,
                        "channel_index": g,
                        "received_at": iso(at),
                    }
                    for g in range(gateways)
                ],
                "settings": {
                    "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7, "coding_rate": "4/5"}},
                    "frequency": "868100000",
                },
                "received_at": iso(at),
                "consumed_airtime": "0.061696s",
            },
        }
        return f"v3/{self.tts_app}/devices/dev-{device}/up", json.dumps(body).encode()

    def chirpstack_uplink(self, n: int, device: int = 2, gateways: int = 1) -> tuple[str, bytes]:
        at = T0 + timedelta(seconds=n)
        eui = self.dev_eui(device)
        body = {
            "deduplicationId": str(uuid.UUID(int=(int(self.tag, 16) << 64) + n)),
            "time": iso(at),
            "deviceInfo": {
                "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
                "tenantName": "Region",
                "applicationId": self.chirpstack_app,
                "applicationName": "sensors",
                "deviceProfileId": "cf9a0a4f-7d4a-4c8b-b7e3-53c3e3d1b2a1",
                "deviceProfileName": "sensor",
                "deviceName": f"dev-{device}",
                "devEui": eui,
                "tags": {},
            },
            "devAddr": "01f8a3c2",
            "adr": True,
            "dr": 5,
            "fCnt": n,
            "fPort": 2,
            "confirmed": False,
            "data": base64.b64encode(bytes([n % 256, 0x30])).decode(),
            "object": {"temperature": 18.5, "humidity": 61.0},
            "rxInfo": [
                {
                    "gatewayId": f"{g:02x}{self.tag:0>14}",
                    "uplinkId": 1000 + g,
                    "nsTime": iso(at),
                    "rssi": -100 + g,
                    "snr": 3.5 + g,
                    "channel": 2,
                    "context": "AAAAAA==",
                    "crcStatus": "CRC_OK",
                }
                for g in range(gateways)
            ],
            "txInfo": {
                "frequency": 868300000,
                "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 9, "codeRate": "CR_4_5"}},
            },
        }
        return f"application/{self.chirpstack_app}/device/{eui}/event/up", json.dumps(body).encode()

    def mixed(self, count: int) -> list[tuple[str, bytes]]:
        """`count` distinct uplinks, alternating servers, from a handful of devices."""
        return [
            self.tts_uplink(n, device=1 + n % 3, gateways=1 + n % 3)
            if n % 2 == 0
            else self.chirpstack_uplink(n, device=10 + n % 4, gateways=1 + n % 2)  # devices 11 and 13
            for n in range(count)
        ]

    def sources_toml(self, host: str, port: int, municipality: str = "testtown") -> str:
        return f"""
[[source]]
name = "tts-{self.tag}"
kind = "tts"
municipality = "{municipality}"
host = "{host}"
port = {port}
tls = false
qos = 1
mqtt_version = "5"
topic = "{self.tts_topic_filter}"

[[source]]
name = "cs-{self.tag}"
kind = "chirpstack-v4"
municipality = "{municipality}"
host = "{host}"
port = {port}
topic = "{self.chirpstack_topic_filter}"
"""
