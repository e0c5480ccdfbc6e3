"""The standing security suite: every door of the platform, probed as an attacker would.

It shares the API suite's fixtures (the migrated database, its settings, tenants made
per test). Its own app (`probe`) is composed as `lorakom run` composes it, webhook
ingest included, so that every door of a deployment is probed. The suite's own towns
(`world`) are made once per module: a probe over every route needs many requests,
not many towns.
"""

import secrets
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from starlette.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from decoders import CodecRegistry
from ingest.webhooks import WebhookIngest, webhook_router
from tests.api.conftest import (  # noqa: F401  (fixtures, found by pytest by name)
    client,
    engine,
    hook,
    make_tenant,
    neighbour,
    real_redecode,
    region_key,
    settings,
    tenant,
)
from tests.api.data import RegisteredHooks
from tests.security.world import WEBHOOK_SECRET_ENV, WEBHOOK_SOURCES, World, make_world


@pytest.fixture(scope="session", autouse=True)
def v8_started_on_the_main_thread() -> None:
    """V8 first started off the main thread crashes when another thread then makes an isolate,
    and the app makes isolates in request threads (codec scripts); so V8 starts here first."""
    warm = CodecRegistry()
    warm.register_javascript("warm/up", "function decodeUplink(input) { return { data: {} }; }")
    warm.close()


@pytest.fixture(scope="session")
def probe(
    settings: ApiSettings,  # noqa: F811  (the fixtures above)
    engine: Engine,  # noqa: F811
    hook: RegisteredHooks,  # noqa: F811
    migrated_db_url: str,
    v8_started_on_the_main_thread: None,
) -> Iterator[TestClient]:
    """The app as `lorakom run` composes it, webhook ingest included, so that every door of a
    deployment is probed; one app for the whole suite.

    It answers a server error as the 500 a client would get: the API suite's client raises
    the app's exception into the test instead, and a probe over many requests must see the
    answer and go on, to report every failure at once.

    `/metrics` is on, with a token made per session and never sent, as in a deployment that
    Prometheus scrapes: off, it would refuse everyone alike and prove nothing about API keys.
    The allowance for trying codec scripts is set high enough that the suite's own probes
    (every caller, every hostile body) reach the sandbox instead of its 429; the allowance
    itself is tested in test_codec_sandbox.py.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WEBHOOK_SECRET_ENV, secrets.token_urlsafe(24))
        ingest = WebhookIngest(WEBHOOK_SOURCES, migrated_db_url, CodecRegistry())
    deployed = settings.model_copy(
        update={
            "metrics_token": SecretStr(secrets.token_urlsafe(24)),
            "codec_try_burst": 10_000,
            "codec_try_per_minute": 10_000.0,
        }
    )
    app = create_app(
        deployed,
        engine=engine,
        extra_routers=[webhook_router(ingest)],
        on_device_registered=hook,
        redecode=real_redecode,
    )
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        ingest.close()


@pytest.fixture(scope="module")
def world(probe: TestClient, engine: Engine, region_key: str) -> Iterator[World]:  # noqa: F811  (above)
    made = make_world(probe, engine, region_key)
    yield made
    made.close()
