"""Probes and metrics."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import Engine
from starlette.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from storage.database import DatabaseSettings, create_database_engine
from tests.conftest import free_port


def test_healthz_answers_without_a_key(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_while_the_database_answers(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200


def test_readyz_and_routes_answer_503_problems_without_a_database() -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=1"
    engine = create_database_engine(dead)
    app = create_app(ApiSettings(database=DatabaseSettings(url=SecretStr(dead))), engine=engine)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        listed = client.get("/v1/municipalities", headers={"X-API-Key": "lk_abc_def"})
        # a municipality's routes read the key and the municipality in one statement
        devices = client.get("/v1/municipalities/paderborn/devices", headers={"X-API-Key": "lk_abc_def"})
    engine.dispose()
    for response in (ready, listed, devices):
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 503
        assert "Retry-After" in response.headers


def test_metrics_are_off_without_a_token(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "lorakom_" not in response.text


def test_metrics_show_the_request_histogram_to_the_token_only(settings: ApiSettings, engine: Engine) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    with TestClient(create_app(guarded, engine=engine)) as client:
        client.get("/healthz")
        response = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        refused = [
            client.get("/metrics"),
            client.get("/metrics", headers={"Authorization": "Bearer scrape-you"}),
            client.get("/metrics", headers={"X-API-Key": "scrape-me"}),
        ]
    assert response.status_code == 200
    assert (
        'lorakom_api_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"'
        in response.text
    )
    for answer in refused:
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert "lorakom_" not in answer.text


def test_unknown_routes_answer_problem_json(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["instance"] == "/v1/nothing-here"


def test_cors_allows_configured_origins_only(settings: ApiSettings, engine: object) -> None:
    configured = settings.model_copy(update={"cors_origins": ["https://dashboard.example"]})
    app = create_app(configured, engine=engine)  # type: ignore[arg-type]
    with TestClient(app) as client:
        allowed = client.options(
            "/healthz",
            headers={"Origin": "https://dashboard.example", "Access-Control-Request-Method": "GET"},
        )
        refused = client.options(
            "/healthz",
            headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"},
        )
    assert allowed.headers.get("access-control-allow-origin") == "https://dashboard.example"
    assert "access-control-allow-origin" not in refused.headers
