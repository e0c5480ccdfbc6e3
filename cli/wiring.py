"""How the parts are joined into a process: the bridge, the API and the hooks between them.

Settings come in built: each command builds each settings object once and hands it on.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from cli.backing_services import database
from cli.jobs import start_alert_jobs, start_reader_query_guard
from cli.process import tune_garbage_collector
from decoders import CodecRegistry
from ingest.bridge import Bridge
from ingest.config import IngestSettings, SourceConfig, load_sources
from services.codec_following import FollowingDecoder
from storage.database import DatabaseSettings, create_database_engine
from storage.device_registry import DeviceProfile
from storage.schema import upgrade_and_apply_policies

if TYPE_CHECKING:  # the API is imported by the commands that serve it, not by every command
    from fastapi import APIRouter, FastAPI
    from sqlalchemy import Engine

    from api.app_services import DeviceRegisteredHook, RedecodeHook
    from api.settings import ApiSettings
    from ingest.metrics import IngestCounters
    from services.webhook_targets import WebhookSettings
    from storage.buckets import AggregateSource, BucketExpression
    from storage.secret_box import SecretSettings

log = logging.getLogger("lorakom")


@contextmanager
def migrated_database(settings: DatabaseSettings) -> Iterator[str]:
    """The database URL of `settings`, its schema at the newest migration (and Timescale policies)."""
    with database(settings) as url:
        upgrade_and_apply_policies(url, settings)
        yield url


def ingest_settings(args: argparse.Namespace) -> IngestSettings:
    settings = IngestSettings()
    overrides: dict[str, object] = {}
    if getattr(args, "shared_group", None):
        overrides["shared_group"] = args.shared_group
    if getattr(args, "instance", None):
        overrides["instance"] = args.instance
    return settings.model_copy(update=overrides) if overrides else settings


def start_bridge(
    config: Path,
    database_url: str,
    settings: IngestSettings,
    stop: threading.Event,
    *,
    secrets: SecretSettings | None = None,
    webhooks: WebhookSettings | None = None,
) -> Bridge:
    """The bridge of `config`, with alert evaluation woken by its commits until `stop`."""
    jobs = start_alert_jobs(
        create_database_engine(database_url, pool_size=1), stop, secrets=secrets, webhooks=webhooks
    )
    start_reader_query_guard(database_url, stop)
    sources = load_sources(config)
    bridge = Bridge(
        sources,
        database_url,
        settings,
        CodecRegistry(),
        on_devices_changed=claim_unclaimed_history(database_url),
        on_committed=jobs.nudge,
    )
    bridge.start()
    tune_garbage_collector()
    return bridge


def claim_unclaimed_history(database_url: str) -> Callable[[list[DeviceProfile]], None]:
    """When the bridge first sees a registered device, decode the frames it stored as unclaimed.

    The API decodes a device's history when it is registered; frames that arrive between
    that moment and the bridge's next look at the registry would otherwise stay unclaimed.
    """
    from services.redecoding import redecode_device

    engine = create_database_engine(database_url, pool_size=1)
    decoder = FollowingDecoder()

    def claim(profiles: list[DeviceProfile]) -> None:
        def run() -> None:
            decoder.refresh(engine)
            for profile in profiles:
                report = redecode_device(
                    engine, profile.device_id, codecs=decoder.registry, only_unclaimed=True
                )
                if report.frames:
                    log.info("claimed %d stored frames of device %s", report.frames, profile.dev_eui)

        threading.Thread(target=run, name="lorakom-claim", daemon=True).start()

    return claim


def build_app(
    settings: ApiSettings,
    ingest: IngestSettings,
    database_url: str,
    sources: Sequence[SourceConfig] = (),
    counters: IngestCounters | None = None,
) -> FastAPI:
    """The API, with webhook ingest for the sources that have a webhook secret."""
    from ingest.webhooks import WebhookIngest, webhook_router

    engine = create_database_engine(database_url, pool_size=settings.database.pool_size)
    routers: list[APIRouter] = []
    if any(source.webhook_secret_env for source in sources):
        webhooks = WebhookIngest(
            sources, database_url, CodecRegistry(), counters, max_future=ingest.max_future
        )
        routers.append(webhook_router(webhooks))
    return api_on(settings, engine, routers)


def api_on(settings: ApiSettings, engine: Engine, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The API on `engine`, decoding a device's history when it is registered and on demand."""
    from api.app import create_app

    return create_app(
        settings,
        engine=engine,
        extra_routers=extra_routers,
        on_device_registered=redecode_hook(),
        redecode=redecode_since_hook(),
        **history_backend(engine),
    )


class HistoryBackend(TypedDict, total=False):
    """How the API buckets history; empty for raw readings with `date_bin` (`create_app`'s default)."""

    bucket_expression: BucketExpression
    aggregate_source: AggregateSource


def history_backend(engine: Engine) -> HistoryBackend:
    """On TimescaleDB: `time_bucket`, and hour and day buckets from the continuous aggregates.

    Decided once at start; if the database cannot be asked yet, buckets come from raw
    readings with `date_bin`, which gives the same answers, only slower on long ranges.
    """
    from sqlalchemy.exc import OperationalError

    from storage.buckets import aggregate_history_sql, time_bucket_column
    from storage.timescale import timescale_enabled

    try:
        with engine.connect() as conn:
            enabled = timescale_enabled(conn)
    except OperationalError as exc:
        log.warning(
            "could not ask the database whether TimescaleDB is installed (%s); bucketing raw readings", exc
        )
        return {}
    if not enabled:
        return {}
    log.info("TimescaleDB: hour and day buckets are read from continuous aggregates")
    return {"bucket_expression": time_bucket_column, "aggregate_source": aggregate_history_sql}


def redecode_hook() -> DeviceRegisteredHook:
    """Registering a device that was heard before decodes its stored history."""
    redecode = redecode_since_hook()

    def decode_history(engine: Engine, device_id: int) -> None:
        redecode(engine, device_id, None)

    return decode_history


def redecode_since_hook() -> RedecodeHook:
    """The API's redecode action: a device's stored frames since a time, decoded again."""
    from services.redecoding import redecode_device

    decoder = FollowingDecoder()
    lock = threading.Lock()  # one redecode at a time: they are heavy and the codecs are shared

    def decode_again(engine: Engine, device_id: int, since: datetime | None) -> None:
        with lock:
            decoder.refresh(engine)
            report = redecode_device(engine, device_id, codecs=decoder.registry, since=since)
        log.info("redecoded device %s: %d frames, %d failed", device_id, report.frames, report.failed)

    return decode_again
