"""Webhooks through real HTTP into a real database: same dedup as MQTT, secrets, rejected bodies kept."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings
from decoders import CodecRegistry
from ingest.config import SourceConfig
from ingest.webhooks import WebhookIngest, webhook_router
from storage.database import create_database_engine
from tests.conftest import Broker
from tests.ingest.harness import publish, scalar, start_bridge, wait_for_uplinks
from tests.ingest.messages import Traffic

FORMATS = Path(__file__).parents[1] / "fixtures" / "formats"
SECRET = "s3cret-for-tests"
METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def client(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    sources = [
        SourceConfig(name="tts-hook", kind="tts", municipality="hooktown", webhook_secret_env="HOOK_SECRET"),
        SourceConfig(
            name="cs-hook", kind="chirpstack-v4", municipality="hooktown", webhook_secret_env="HOOK_SECRET"
        ),
    ]
    ingest = WebhookIngest(sources, fresh_db_url, CodecRegistry())
    engine = create_database_engine(fresh_db_url)
    settings = ApiSettings(metrics_token=SecretStr(METRICS_TOKEN))
    app = create_app(settings, engine=engine, extra_routers=[webhook_router(ingest)])
    with TestClient(app) as test_client:
        yield test_client
    ingest.close()
    engine.dispose()


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_tts_webhook_is_stored_once(client: TestClient, fresh_db_url: str) -> None:
    body = (FORMATS / "tts_v3_uplink.json").read_bytes()
    first = client.post("/v1/ingest/tts/tts-hook", content=body, headers=bearer())
    again = client.post("/v1/ingest/tts/tts-hook", content=body, headers={"X-Webhook-Secret": SECRET})
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "stored"
    assert again.json() == {"outcome": "duplicate", "uplink_key": first.json()["uplink_key"]}
    assert scalar(fresh_db_url, "SELECT count(*) FROM uplink") == 1
    assert scalar(fresh_db_url, "SELECT count(*) FROM reception") >= 1
    metrics = client.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    assert 'lorakom_ingest_messages_total{outcome="stored",source="tts-hook"}' in metrics
    assert 'lorakom_ingest_messages_total{outcome="duplicate",source="tts-hook"}' in metrics


def test_chirpstack_json_and_protobuf_of_one_event_are_one_uplink(
    client: TestClient, fresh_db_url: str
) -> None:
    basic = base64.b64encode(f"chirpstack:{SECRET}".encode()).decode()
    as_json = client.post(
        "/v1/ingest/chirpstack/cs-hook?event=up",
        content=(FORMATS / "chirpstack_v4_up.json").read_bytes(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
    )
    as_protobuf = client.post(
        "/v1/ingest/chirpstack/cs-hook?event=up",
        content=(FORMATS / "chirpstack_v4_up.pb").read_bytes(),
        headers={**bearer(), "Content-Type": "application/octet-stream"},
    )
    assert as_json.json()["outcome"] == "stored"
    assert as_protobuf.json()["outcome"] == "duplicate"
    assert scalar(fresh_db_url, "SELECT count(*) FROM uplink") == 1


def test_joins_and_status_events_are_accepted(client: TestClient) -> None:
    status = client.post(
        "/v1/ingest/chirpstack/cs-hook?event=status",
        content=(FORMATS / "chirpstack_v4_status.json").read_bytes(),
        headers=bearer(),
    )
    log = client.post(
        "/v1/ingest/chirpstack/cs-hook?event=log",
        content=(FORMATS / "chirpstack_v4_log.json").read_bytes(),
        headers=bearer(),
    )
    assert status.json()["outcome"] == "event"
    assert log.json()["outcome"] == "ignored"


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/ingest/tts/tts-hook", {}, 401),
        ("/v1/ingest/tts/tts-hook", {"Authorization": "Bearer wrong"}, 401),
        # an unknown source is not told apart from a wrong secret
        ("/v1/ingest/tts/nowhere", {"Authorization": f"Bearer {SECRET}"}, 401),
        ("/v1/ingest/tts/cs-hook", {"Authorization": f"Bearer {SECRET}"}, 401),  # a ChirpStack source
    ],
)
def test_unauthenticated_or_unknown_sources_store_nothing(
    client: TestClient, fresh_db_url: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = client.post(path, content=(FORMATS / "tts_v3_uplink.json").read_bytes(), headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert scalar(fresh_db_url, "SELECT count(*) FROM uplink") == 0


def test_a_bad_body_is_kept_with_its_reason(client: TestClient, fresh_db_url: str) -> None:
    response = client.post("/v1/ingest/tts/tts-hook", content=b'{"uplink_message": 7}', headers=bearer())
    assert response.status_code == 400
    assert "uplink_message" in response.json()["detail"]
    assert scalar(fresh_db_url, "SELECT payload FROM rejected_message") == b'{"uplink_message": 7}'


def test_the_same_uplink_by_mqtt_and_by_webhook_is_stored_once(
    client: TestClient, broker: Broker, fresh_db_url: str, tmp_path: Path
) -> None:
    traffic = Traffic()
    bridge = start_bridge(
        fresh_db_url, traffic.sources_toml(broker.host, broker.port), tmp_path, instance="hook"
    )
    try:
        messages = [traffic.tts_uplink(n) for n in range(20)]
        publish(broker.host, broker.port, messages)
        assert wait_for_uplinks(fresh_db_url, (f"tts-{traffic.tag}",), 20) == 20
    finally:
        bridge.stop()
    outcomes = {
        client.post("/v1/ingest/tts/tts-hook", content=body, headers=bearer()).json()["outcome"]
        for _, body in messages
    }
    assert outcomes == {"duplicate"}
    assert scalar(fresh_db_url, "SELECT count(*) FROM uplink") == 20


def test_an_unknown_source_is_answered_like_a_wrong_secret(client: TestClient) -> None:
    body = (FORMATS / "tts_v3_uplink.json").read_bytes()
    unknown = client.post("/v1/ingest/tts/nowhere", content=body, headers=bearer())
    wrong = client.post("/v1/ingest/tts/tts-hook", content=body, headers=bearer("wrong"))
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]


def test_a_webhook_body_over_the_ingest_limit_is_refused_before_it_is_read(
    client: TestClient, fresh_db_url: str
) -> None:
    response = client.post(
        "/v1/ingest/tts/tts-hook", content=b"{" + b" " * (2 * 1024 * 1024), headers=bearer()
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert scalar(fresh_db_url, "SELECT count(*) FROM rejected_message") == 0
