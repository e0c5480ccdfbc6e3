"""HTTP integrations: The Things Stack webhooks and ChirpStack's HTTP integration.

The other way in, beside MQTT, through the same adapters, the same pipeline and the
same idempotent write: an uplink that arrives by webhook *and* by MQTT is stored
once. A request is answered only after its rows are committed, so a network server
that retries on errors loses nothing.

Each webhook source has its own secret (named by `webhook_secret_env` in the sources
file). The Things Stack can send it as a custom header or as Basic auth; ChirpStack's
HTTP integration as a custom header. All three forms are accepted:
`Authorization: Bearer <secret>`, `Authorization: Basic <base64(any-user:secret)>`
and `X-Webhook-Secret: <secret>`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field, SecretStr

from decoders import CodecRegistry
from domain.errors import MessageRejected, StorageUnavailable, Unauthenticated
from domain.uplink import DEFAULT_MAX_FUTURE, NetworkServer, Uplink
from ingest.adapters import parse_webhook
from ingest.config import SourceConfig
from ingest.metrics import IngestCounters, Outcome
from ingest.pipeline import DeviceCache, Pipeline
from ingest.writer import StoreWriter
from services.codec_following import ScriptFollower
from storage.uplinks import IngestBatch, RejectedRecord, TransientWriteError

MAX_BODY_BYTES = 1024 * 1024
UNKNOWN_SOURCE_SECRET = secrets.token_bytes(32)
"""Compared against for an unknown source, so that it costs what a known one costs."""
DEVICE_REFRESH_S = 2.0


class WebhookAccepted(BaseModel):
    """What became of one posted message."""

    outcome: str = Field(description="stored | duplicate | event (a join, status, …) | ignored")
    uplink_key: str | None = Field(default=None, description="The deduplication key of a stored uplink")


class WebhookIngest:
    """Holds one database connection and the device cache for all webhook requests.

    Requests are written one at a time under a lock: webhook rates are far below what
    one connection writes, and a single connection keeps the write path identical to
    the bridge's (staging tables are per connection).
    """

    def __init__(
        self,
        sources: Sequence[SourceConfig],
        database_url: str,
        codecs: CodecRegistry,
        counters: IngestCounters | None = None,
        max_future: timedelta = DEFAULT_MAX_FUTURE,
    ) -> None:
        self.sources = {source.name: source for source in sources if source.webhook_secret_env}
        self.secrets: dict[str, SecretStr] = {}
        for source in self.sources.values():
            secret = source.webhook_secret()
            assert secret is not None
            self.secrets[source.name] = secret
        self.database_url = database_url
        self.counters = counters or IngestCounters()
        self.devices = DeviceCache()
        self.scripts = ScriptFollower(codecs)
        self._codecs = codecs
        self._lock = threading.Lock()
        self._store = StoreWriter(database_url)
        self._pipeline: Pipeline | None = None
        self._refreshed_at = 0.0
        self._max_future = max_future

    def _ready(self) -> Pipeline:
        """The pipeline, set up again whenever the store had to open a new connection."""
        if self._pipeline is None or not self._store.is_open:
            municipality_ids = self._store.municipality_ids(self.sources.values())
            self._pipeline = Pipeline(
                self.devices, self._codecs, municipality_ids, self.counters, max_future=self._max_future
            )
        if time.monotonic() - self._refreshed_at > DEVICE_REFRESH_S:
            self._store.refresh(self.devices, self.scripts)
            self._refreshed_at = time.monotonic()
        return self._pipeline

    def authenticate(
        self, source_name: str, kinds: tuple[NetworkServer, ...], presented: str | None
    ) -> SourceConfig:
        # An unknown source is answered exactly like a wrong secret, so that the answer
        # does not tell a caller which source names exist.
        source = self.sources.get(source_name)
        known = source is not None and source.kind in kinds
        expected = self.secrets[source_name].get_secret_value().encode() if known else UNKNOWN_SOURCE_SECRET
        matches = presented is not None and hmac.compare_digest(presented.encode(), expected)
        if source is None or not known or not matches:
            raise Unauthenticated("missing or wrong webhook secret")
        return source

    def accept(
        self, source: SourceConfig, body: bytes, *, event: str | None, content_type: str | None
    ) -> WebhookAccepted:
        with self._lock:
            try:
                pipeline = self._ready()
                self.counters.add(source.name, Outcome.RECEIVED)
                try:
                    parsed = parse_webhook(source.kind, body, event=event, content_type=content_type)
                except MessageRejected as rejected:
                    topic = f"webhook:{source.kind.value}" + (f"?event={event}" if event else "")
                    kept = RejectedRecord(source.name, topic, rejected.reason, body)
                    self._store.write(IngestBatch(rejected=[kept]))
                    self.counters.add(source.name, Outcome.REJECTED)
                    raise
                builder = pipeline.new_batch()
                builder.add_event(source, parsed)
                batch = builder.finish()
                result = self._store.write(batch)
            except StorageUnavailable as exc:  # the store has closed its connection already
                raise TransientWriteError(f"not stored, please retry: {exc}") from exc
        if isinstance(parsed, Uplink):
            stored = result.uplinks_new == 1
            self.counters.add(source.name, Outcome.STORED if stored else Outcome.DUPLICATE)
            return WebhookAccepted(outcome="stored" if stored else "duplicate", uplink_key=parsed.uplink_key)
        return WebhookAccepted(outcome="event" if len(batch) else "ignored")

    def close(self) -> None:
        self._store.close()


def presented_secret(authorization: str | None, webhook_secret: str | None) -> str | None:
    if webhook_secret:
        return webhook_secret
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


async def read_body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise MessageRejected(f"body of {len(body)} bytes is larger than {MAX_BODY_BYTES}")
    return body


AuthorizationHeader = Annotated[str | None, Header(description="Bearer <secret> or Basic auth")]
SecretHeader = Annotated[str | None, Header(alias="X-Webhook-Secret", description="The source's secret")]
ContentTypeHeader = Annotated[str | None, Header()]


def webhook_router(ingest: WebhookIngest) -> APIRouter:
    """Routes under `/ingest` (the app mounts them below `/v1`)."""
    router = APIRouter(prefix="/ingest", tags=["ingest"])
    errors: dict[int | str, dict[str, Any]] = {
        400: {"description": "The body is not a message of this network server; it was kept with the reason"},
        401: {"description": "Missing or wrong webhook secret, or no webhook source of that name and kind"},
        503: {"description": "The database is unreachable; retry later, nothing was stored"},
    }

    @router.post("/tts/{source}", response_model=WebhookAccepted, responses=errors)
    async def tts_webhook(
        source: str,
        request: Request,
        authorization: AuthorizationHeader = None,
        x_webhook_secret: SecretHeader = None,
        content_type: ContentTypeHeader = None,
    ) -> WebhookAccepted:
        """A The Things Stack webhook (JSON format): uplinks, joins; other message kinds are ignored."""
        config = ingest.authenticate(
            source, (NetworkServer.TTS,), presented_secret(authorization, x_webhook_secret)
        )
        body = await read_body(request)
        return await _in_thread(ingest, config, body, None, content_type)

    @router.post("/chirpstack/{source}", response_model=WebhookAccepted, responses=errors)
    async def chirpstack_webhook(
        source: str,
        request: Request,
        event: Annotated[str, Query(description="ChirpStack's event type: up, join, status, …")],
        authorization: AuthorizationHeader = None,
        x_webhook_secret: SecretHeader = None,
        content_type: ContentTypeHeader = None,
    ) -> WebhookAccepted:
        """ChirpStack's HTTP integration (v4 JSON or protobuf, v3 JSON)."""
        kinds = (NetworkServer.CHIRPSTACK_V4, NetworkServer.CHIRPSTACK_V3)
        config = ingest.authenticate(source, kinds, presented_secret(authorization, x_webhook_secret))
        body = await read_body(request)
        return await _in_thread(ingest, config, body, event, content_type)

    return router


async def _in_thread(
    ingest: WebhookIngest, source: SourceConfig, body: bytes, event: str | None, content_type: str | None
) -> WebhookAccepted:
    """The write blocks on the database; keep it off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(ingest.accept, source, body, event=event, content_type=content_type)
