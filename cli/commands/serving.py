"""`lorakom bridge`, `api` and `run`: the long-running processes of a deployment."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from cli.commands import Subcommands
from cli.jobs import start_alert_jobs, start_reader_query_guard
from cli.process import stop_on_signals, tune_garbage_collector, wait_for_signal
from cli.wiring import build_app, ingest_settings, migrated_database, start_bridge
from ingest.bridge import Bridge
from ingest.config import load_sources
from storage.database import DatabaseSettings

if TYPE_CHECKING:  # uvicorn is imported by the commands that serve the API, not by every command
    from cli.demo import ApiServer

log = logging.getLogger("lorakom")


def run_live_line(bridge: Bridge, stop: threading.Event, interval_s: float) -> threading.Thread:
    def report() -> None:
        while not stop.wait(interval_s):
            log.info("ingest: %s", bridge.counters.summary_line())

    thread = threading.Thread(target=report, name="lorakom-stats", daemon=True)
    thread.start()
    return thread


def serve_until_signal(
    bridge: Bridge, stop: threading.Event, interval_s: float, server: ApiServer | None = None
) -> None:
    """Log the bridge's counters every `interval_s` until SIGINT/SIGTERM; then stop the API
    before the bridge, so that no request waits on a bridge that is going away."""
    run_live_line(bridge, stop, interval_s)
    try:
        wait_for_signal(stop)
    finally:
        stop.set()
        if server is not None:
            server.stop()
        bridge.stop()
        if server is None:
            log.info("stopped: %s", bridge.counters.summary_line())


def command_bridge(args: argparse.Namespace) -> int:
    settings = ingest_settings(args)
    with migrated_database(DatabaseSettings()) as url:
        stop = threading.Event()
        stop_on_signals(stop)
        bridge = start_bridge(Path(args.config), url, settings, stop)
        serve_until_signal(bridge, stop, settings.stats_interval_s)
    return 0


def command_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app_services import services_of
    from api.settings import ApiSettings

    settings = ApiSettings()
    with migrated_database(settings.database) as url:
        sources = load_sources(Path(args.config)) if args.config else []
        app = build_app(settings, ingest_settings(args), url, sources)
        start_alert_jobs(
            services_of(app).engine, threading.Event(), secrets=settings.secrets, webhooks=settings.webhooks
        )
        start_reader_query_guard(url, threading.Event())
        tune_garbage_collector()
        uvicorn.run(app, host=args.host or settings.host, port=args.port or settings.port)
    return 0


def command_run(args: argparse.Namespace) -> int:
    """Bridge and API in one process: what a municipality runs in production."""
    from api.settings import ApiSettings
    from cli.demo import ApiServer

    api_settings = ApiSettings()
    settings = ingest_settings(args)
    with migrated_database(api_settings.database) as url:
        stop = threading.Event()
        stop_on_signals(stop)
        bridge = start_bridge(
            Path(args.config),
            url,
            settings,
            stop,
            secrets=api_settings.secrets,
            webhooks=api_settings.webhooks,
        )
        app = build_app(api_settings, settings, url, bridge.sources, bridge.counters)
        server = ApiServer(app, args.host or api_settings.host, args.port or api_settings.port)
        server.start()
        serve_until_signal(bridge, stop, settings.stats_interval_s, server)
    return 0


def add_serving_commands(commands: Subcommands) -> None:
    bridge = commands.add_parser("bridge", help="run the MQTT bridge alone")
    bridge.add_argument("--config", required=True, help="sources TOML file")
    bridge.add_argument("--shared-group", help="subscribe through $share/NAME/… to split a stream")
    bridge.add_argument("--instance", help="stable name of this process (part of the MQTT client id)")
    bridge.set_defaults(handler=command_bridge)

    run = commands.add_parser("run", help="bridge and API in one process (production)")
    run.add_argument("--config", required=True, help="sources TOML file")
    run.add_argument("--shared-group", help="subscribe through $share/NAME/… to split a stream")
    run.add_argument("--instance", help="stable name of this process (part of the MQTT client id)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.set_defaults(handler=command_run)

    api = commands.add_parser("api", help="run the API alone")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument("--config", help="sources TOML file, for the webhook sources")
    api.set_defaults(handler=command_api)
