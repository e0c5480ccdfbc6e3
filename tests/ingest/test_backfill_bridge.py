"""After connecting, a TTS source fetches what it missed from the Storage Integration, through the bridge."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import Broker
from tests.ingest.harness import publish, scalar, start_bridge, wait_for_uplinks
from tests.ingest.messages import Traffic

API_KEY = "NNSXS.BACKFILL-TEST-KEY"


class StorageIntegration:
    """A local stand-in for the Storage Integration API, replaying its documented response."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                outer.requests.append((url.path, parse_qs(url.query), self.headers.get("Authorization")))
                lines = [b'{"result": ' + body + b"}" for body in outer.bodies]
                lines.insert(3, b'{"result": {"uplink_message": "not an object"}}')
                payload = b"\n\n".join(lines) + b"\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def storage(traffic: Traffic) -> Iterator[StorageIntegration]:
    missed = [traffic.tts_uplink(n)[1] for n in range(30)]  # what TTS published while we were away
    integration = StorageIntegration(missed)
    yield integration
    integration.close()


def test_a_reconnect_backfills_the_gap_and_stores_overlaps_once(
    broker: Broker,
    fresh_db_url: str,
    tmp_path: Path,
    traffic: Traffic,
    storage: StorageIntegration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKFILL_KEY", API_KEY)
    config = f"""
[[source]]
name = "tts-{traffic.tag}"
kind = "tts"
municipality = "testtown"
host = "{broker.host}"
port = {broker.port}
tls = false
qos = 1
mqtt_version = "5"
topic = "{traffic.tts_topic_filter}"
username = "{traffic.tts_app}"
password_env = "BACKFILL_KEY"
storage_api_url = "{storage.url}"
"""
    bridge = start_bridge(fresh_db_url, config, tmp_path, instance="backfill")
    try:
        # Live traffic overlapping the end of the gap (25..29) and going on after it.
        publish(broker.host, broker.port, [traffic.tts_uplink(n) for n in range(25, 40)])
        assert wait_for_uplinks(fresh_db_url, (f"tts-{traffic.tag}",), 40) == 40
    finally:
        bridge.stop()
    path, query, authorization = storage.requests[0]
    application = traffic.tts_app.split("@")[0]
    assert path == f"/api/v3/as/applications/{application}/packages/storage/uplink_message"
    assert "after" in query
    assert authorization == f"Bearer {API_KEY}"
    rejected = scalar(
        fresh_db_url, "SELECT count(*) FROM rejected_message WHERE topic LIKE %s", "storage-integration:%"
    )
    assert rejected == 1
    assert scalar(fresh_db_url, "SELECT count(DISTINCT f_cnt) FROM uplink") == 40
