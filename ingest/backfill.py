"""Fetch the uplinks a TTS source missed from its Storage Integration.

The Things Stack's MQTT server offers QoS 0 only, so whatever it published while
the bridge was away is gone from MQTT. If the application has the Storage
Integration enabled, the same `ApplicationUp` messages can be read back with

    GET {base}/api/v3/as/applications/{app}/packages/storage/uplink_message
        ?after=<RFC 3339>&order=received_at[&limit=N]
    Authorization: Bearer <API key with RIGHT_APPLICATION_TRAFFIC_READ>

which answers with one JSON object per line, `{"result": {<ApplicationUp>}}`
(blank lines between them when asked for `text/event-stream`). Each result goes
through the TTS adapter unchanged, so a backfilled uplink gets the same
`uplink_key` as its MQTT copy would have (see `ingest.adapters`) and storing
both is harmless.

Errors, and why they are split this way:

    PlatformError
    ├── StorageUnavailable
    │   └── StorageIntegrationUnavailable   network error, timeout, 408/429/5xx, an
    │                                        error object mid-stream: retry later
    └── ConfigurationError                  any other 4xx (key without rights, unknown
                                            application, integration not enabled):
                                            retrying will not help, an operator must act

A line that is not a usable uplink is yielded as `RejectedLine` and the stream
goes on: one bad message must not hide the rest of the gap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from domain.errors import ConfigurationError, MessageRejected, StorageUnavailable
from domain.uplink import NetworkEvent, Uplink
from ingest.adapters.json_fields import child, load_object
from ingest.adapters.tts import parse_application_up
from ingest.config import SourceConfig
from storage.uplinks import RejectedRecord

RETRYABLE_STATUS = frozenset({408, 425, 429})


class StorageIntegrationUnavailable(StorageUnavailable):
    """The Storage Integration cannot answer now; the gap is still there to fetch later."""


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A response line that is not a usable uplink, kept like any rejected message."""

    line_number: int
    raw: bytes
    reason: str


def storage_url(base_url: str, application_id: str) -> str:
    application = quote(application_id.partition("@")[0], safe="")
    return f"{base_url.rstrip('/')}/api/v3/as/applications/{application}/packages/storage/uplink_message"


def fetch_uplinks_since(
    client: httpx.Client,
    *,
    base_url: str,
    application_id: str,
    api_key: str,
    after: datetime,
    limit: int | None = None,
) -> Iterator[Uplink | RejectedLine]:
    """Yield the stored uplinks received after `after`, oldest first, as they stream in.

    `application_id` may carry the MQTT username's `@tenant`, which is dropped.
    One call makes one request; with `limit`, ask again with the newest
    `received_at` seen to page on (the first uplink of the next page may repeat
    the last of this one, which its key makes harmless). Timeouts are the
    client's. Raises `StorageIntegrationUnavailable` or `ConfigurationError` as
    described in the module docstring, possibly after some uplinks were yielded.
    """
    if after.tzinfo is None:
        raise ValueError("after must be an aware datetime")
    params: dict[str, str | int] = {
        "after": after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "order": "received_at",
    }
    if limit is not None:
        params["limit"] = limit
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"}
    url = storage_url(base_url, application_id)
    try:
        with client.stream("GET", url, params=params, headers=headers) as response:
            _raise_for_status(response)
            yield from _uplinks(_lines(response.iter_bytes()))
    except httpx.UnsupportedProtocol as exc:
        raise ConfigurationError(f"Storage Integration URL {base_url!r} is not http(s): {exc}") from exc
    except httpx.TransportError as exc:
        raise StorageIntegrationUnavailable(f"Storage Integration at {base_url} unreachable: {exc}") from exc


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    response.read()
    detail = response.text[:300].strip()
    message = f"Storage Integration answered HTTP {status}: {detail}"
    if status >= 500 or status in RETRYABLE_STATUS:
        raise StorageIntegrationUnavailable(message)
    raise ConfigurationError(message)


def _lines(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """Numbered non-blank lines, split on bytes so a rejected line keeps its exact raw form."""
    pending = b""
    number = 0
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            if line.strip():
                yield number, line.rstrip(b"\r")
    if pending.strip():
        yield number + 1, pending.rstrip(b"\r")


def _uplinks(lines: Iterator[tuple[int, bytes]]) -> Iterator[Uplink | RejectedLine]:
    for number, line in lines:
        try:
            yield _uplink(line)
        except MessageRejected as rejected:
            yield RejectedLine(line_number=number, raw=line, reason=rejected.reason)


def _uplink(line: bytes) -> Uplink:
    envelope = load_object(line, "Storage Integration line")
    problem = child(envelope, "error", "")
    if problem is not None:
        raise StorageIntegrationUnavailable(f"Storage Integration stream ended with an error: {problem}")
    result = child(envelope, "result", "")
    if result is None:
        raise MessageRejected("Storage Integration line has no result")
    event = parse_application_up(result, topic=None)
    if not isinstance(event, Uplink):
        raise MessageRejected(f"Storage Integration returned a non-uplink message ({type(event).__name__})")
    return event


BACKFILL_CHUNK = 500
"""Events per inbox delivery: large enough to batch well, small enough to stream a long gap."""


def backfill_source(
    source: SourceConfig, after: datetime | None, *, timeout_s: float = 30.0
) -> Iterator[list[NetworkEvent | RejectedRecord]]:
    """A TTS source's missed uplinks since `after`, in chunks for the bridge's inbox.

    This is the bridge's `backfill` callable: it runs after every (re)connect of a
    source that names a `storage_api_url`.
    """
    if source.storage_api_url is None or source.tts_application_id is None:
        return
    key = source.storage_api_key()
    if key is None:
        raise ConfigurationError(f"source {source.name!r}: storage_api_url needs an API key (password_env)")
    since = after or datetime.now(UTC)
    chunk: list[NetworkEvent | RejectedRecord] = []
    with httpx.Client(timeout=timeout_s) as client:
        for item in fetch_uplinks_since(
            client,
            base_url=source.storage_api_url,
            application_id=source.tts_application_id,
            api_key=key.get_secret_value(),
            after=since,
        ):
            if isinstance(item, RejectedLine):
                topic = f"storage-integration:{source.tts_application_id}#line{item.line_number}"
                chunk.append(RejectedRecord(source.name, topic, item.reason, item.raw))
            else:
                chunk.append(item)
            if len(chunk) >= BACKFILL_CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
