"""A municipality's own network-server source, by webhook and by MQTT, for the ingest probes.

The webhook app is a real `create_app` with the real webhook router over the session's
database, so a probe sends what a network server would send, through HTTP.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from api.app import create_app
from api.settings import ApiSettings
from decoders import CodecRegistry
from ingest.config import SourceConfig
from ingest.webhooks import WebhookIngest, webhook_router
from tests.ingest.messages import Traffic, iso

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "town-source-secret"


@dataclass
class TownSource:
    """One municipality's TTS webhook source, and the client that posts to it."""

    name: str
    client: TestClient
    ingest: WebhookIngest

    def post(self, body: bytes) -> Any:
        return self.client.post(
            f"/v1/ingest/tts/{self.name}", content=body, headers={"Authorization": f"Bearer {SECRET}"}
        )


@contextmanager
def town_source(
    monkeypatch: pytest.MonkeyPatch, database_url: str, engine: Engine, municipality_slug: str, name: str
) -> Iterator[TownSource]:
    """A webhook source of `municipality_slug`; it looks at the device registry on every request."""
    monkeypatch.setenv("TOWN_SOURCE_SECRET", SECRET)
    monkeypatch.setattr("ingest.webhooks.DEVICE_REFRESH_S", 0.0)
    source = SourceConfig(
        name=name, kind="tts", municipality=municipality_slug, webhook_secret_env="TOWN_SOURCE_SECRET"
    )
    ingest = WebhookIngest([source], database_url, CodecRegistry())
    app = create_app(ApiSettings(), engine=engine, extra_routers=[webhook_router(ingest)])
    with TestClient(app) as client:
        yield TownSource(name, client, ingest)
    ingest.close()


def tts_uplink(traffic: Traffic, n: int, *, device: int, at: datetime) -> tuple[str, bytes]:
    """Traffic's TTS uplink `n` of `device`, claiming to be received at `at` (every time field)."""
    topic, body = traffic.tts_uplink(n, device=device)
    message = json.loads(body)
    message["received_at"] = iso(at)
    message["uplink_message"]["received_at"] = iso(at)
    for entry in message["uplink_message"]["rx_metadata"]:
        entry["received_at"] = iso(at)
    return topic, json.dumps(message).encode()


def rows(engine: Engine, query: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(query), params)]
