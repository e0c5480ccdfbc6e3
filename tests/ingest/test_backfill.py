"""The Storage Integration client against a real HTTP server replaying the documented response format."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from domain.errors import ConfigurationError, StorageUnavailable
from domain.uplink import NetworkServer, Uplink
from ingest.adapters import parse_message
from ingest.backfill import RejectedLine, StorageIntegrationUnavailable, fetch_uplinks_since

FORMATS = Path(__file__).parent.parent / "fixtures" / "formats"
DOCUMENTED_RESPONSE = (FORMATS / "tts_v3_storage_response.jsonl").read_bytes()
KEY = "NNSXS.TESTKEY"
AFTER = datetime(2020, 8, 24, 10, 0, tzinfo=UTC)


@dataclass
class Replay:
    """What the fake Storage Integration answers, and what it was asked."""

    status: int = 200
    chunks: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)


def handler_for(replay: Replay) -> type[BaseHTTPRequestHandler]:
    class StorageIntegration(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            replay.requests.append((url.path, parse_qs(url.query), dict(self.headers.items())))
            if replay.status != 200:
                body = json.dumps({"code": 14, "message": "unavailable"}).encode()
                self.send_response(replay.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in replay.chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output clean."""

    return StorageIntegration


class QuietServer(ThreadingHTTPServer):
    """A client that stops reading mid-stream (as the client under test does on an error) is expected."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


@pytest.fixture
def replay() -> Iterator[tuple[Replay, str]]:
    state = Replay()
    server = QuietServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fetch(base_url: str, limit: int | None = None) -> list[Uplink | RejectedLine]:
    with httpx.Client(timeout=5) as client:
        return list(
            fetch_uplinks_since(
                client,
                base_url=base_url,
                application_id="app1@ttn",
                api_key=KEY,
                after=AFTER,
                limit=limit,
            )
        )


def test_documented_response_becomes_uplinks(replay: tuple[Replay, str]) -> None:
    state, base_url = replay
    # Split mid-line, as a stream may arrive, and with the blank separators of text/event-stream.
    streamed = DOCUMENTED_RESPONSE.replace(b"\n", b"\n\n")
    state.chunks = [streamed[:100], streamed[100:700], streamed[700:]]

    items = fetch(f"{base_url}/", limit=10)

    assert [type(item) for item in items] == [Uplink, Uplink]
    first, second = items
    assert isinstance(first, Uplink)
    assert isinstance(second, Uplink)
    assert (first.f_cnt, second.f_cnt) == (43, 44)
    assert first.network_server is NetworkServer.TTS
    assert first.dev_eui == "1111111111111111"
    assert first.network_device_id == "dev1"
    assert first.application_id == "app1"
    assert first.payload == bytes.fromhex("010a010a010a010a")
    assert first.received_at == datetime(2020, 8, 24, 10, 8, 44, 634338, tzinfo=UTC)
    assert first.radio.spreading_factor == 12
    assert first.radio.coding_rate == "4/5"
    assert first.radio.frequency_hz == 868100000
    assert first.receptions[0].gateway_id == "gtw1"
    assert first.uplink_key != second.uplink_key

    path, query, headers = state.requests[0]
    assert path == "/api/v3/as/applications/app1/packages/storage/uplink_message"
    assert query == {"after": ["2020-08-24T10:00:00.000000Z"], "order": ["received_at"], "limit": ["10"]}
    assert headers["Authorization"] == f"Bearer {KEY}"


def test_backfilled_uplink_has_the_key_of_its_mqtt_copy(replay: tuple[Replay, str]) -> None:
    state, base_url = replay
    stored = json.loads(DOCUMENTED_RESPONSE.splitlines()[0])["result"]
    state.chunks = [DOCUMENTED_RESPONSE.splitlines()[0] + b"\n"]
    live = stored | {"correlation_ids": ["as:up:01EGQZ0000000000000000000"]}

    (backfilled,) = fetch(base_url)
    over_mqtt = parse_message(NetworkServer.TTS, "v3/app1@ttn/devices/dev1/up", json.dumps(live).encode())

    assert isinstance(backfilled, Uplink)
    assert isinstance(over_mqtt, Uplink)
    assert backfilled.uplink_key == over_mqtt.uplink_key
    assert backfilled.received_at == over_mqtt.received_at


def test_bad_lines_are_reported_and_the_rest_still_arrives(replay: tuple[Replay, str]) -> None:
    state, base_url = replay
    good_first, good_second = DOCUMENTED_RESPONSE.splitlines()
    state.chunks = [
        good_first + b"\n",
        b"{not json\n",
        b'{"result": {"uplink_message": {"frm_payload": "!!", "received_at": "2020-08-24T10:08:45Z"}}}\n',
        b'{"result": {"received_at": "2020-08-24T10:08:46Z", "join_accept": {}}}\n',
        good_second + b"\n",
    ]

    items = fetch(base_url)

    assert [type(item) for item in items] == [Uplink, RejectedLine, RejectedLine, RejectedLine, Uplink]
    not_json, bad_payload, not_uplink = items[1:4]
    assert isinstance(not_json, RejectedLine)
    assert isinstance(bad_payload, RejectedLine)
    assert isinstance(not_uplink, RejectedLine)
    assert (not_json.line_number, not_json.raw) == (2, b"{not json")
    assert "not valid JSON" in not_json.reason
    assert "frm_payload is not valid base64" in bad_payload.reason
    assert "non-uplink" in not_uplink.reason


def test_server_unavailable_is_a_transient_error(replay: tuple[Replay, str]) -> None:
    state, base_url = replay
    state.status = 503

    with pytest.raises(StorageIntegrationUnavailable, match="HTTP 503") as raised:
        fetch(base_url)
    assert isinstance(raised.value, StorageUnavailable)


def test_error_object_mid_stream_is_a_transient_error(replay: tuple[Replay, str]) -> None:
    state, base_url = replay
    state.chunks = [
        DOCUMENTED_RESPONSE.splitlines()[0] + b"\n",
        b'{"error": {"code": 4, "message": "deadline"}}\n',
    ]

    received: list[Uplink | RejectedLine] = []
    with pytest.raises(StorageIntegrationUnavailable, match="deadline"), httpx.Client(timeout=5) as client:
        received.extend(
            fetch_uplinks_since(client, base_url=base_url, application_id="app1", api_key=KEY, after=AFTER)
        )
    assert [type(item) for item in received] == [Uplink]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_rejected_credentials_or_unknown_application_need_an_operator(
    replay: tuple[Replay, str], status: int
) -> None:
    state, base_url = replay
    state.status = status

    with pytest.raises(ConfigurationError, match=f"HTTP {status}"):
        fetch(base_url)


def test_unreachable_server_is_a_transient_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    with pytest.raises(StorageIntegrationUnavailable, match="unreachable"):
        fetch(f"http://127.0.0.1:{closed_port}")


def test_naive_after_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"), httpx.Client() as client:
        next(
            fetch_uplinks_since(
                client,
                base_url="http://127.0.0.1:9",
                application_id="a",
                api_key="k",
                after=datetime(2020, 1, 1),
            )
        )
