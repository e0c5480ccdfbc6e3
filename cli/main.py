"""`lorakom`: the composition roots. Settings are built here, never at import time."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from cli.services import database
from decoders import CodecRegistry
from domain.errors import ConfigurationError, PlatformError
from ingest.bridge import Bridge
from ingest.config import IngestSettings, load_sources
from storage.database import DatabaseSettings
from storage.schema import upgrade_database

log = logging.getLogger("lorakom")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def wait_for_signal(stop: threading.Event) -> None:
    """Block until SIGINT/SIGTERM (or `stop` is set by someone else)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    while not stop.wait(0.5):
        pass


def ingest_settings(args: argparse.Namespace) -> IngestSettings:
    settings = IngestSettings()
    overrides: dict[str, object] = {}
    if getattr(args, "shared_group", None):
        overrides["shared_group"] = args.shared_group
    if getattr(args, "instance", None):
        overrides["instance"] = args.instance
    return settings.model_copy(update=overrides) if overrides else settings


def start_bridge(args: argparse.Namespace, database_url: str) -> Bridge:
    sources = load_sources(Path(args.config))
    bridge = Bridge(sources, database_url, ingest_settings(args), CodecRegistry())
    bridge.start()
    return bridge


def run_live_line(bridge: Bridge, stop: threading.Event, interval_s: float) -> threading.Thread:
    def report() -> None:
        while not stop.wait(interval_s):
            log.info("ingest: %s", bridge.counters.summary_line())

    thread = threading.Thread(target=report, name="lorakom-stats", daemon=True)
    thread.start()
    return thread


def command_db_upgrade(args: argparse.Namespace) -> int:
    with database(DatabaseSettings()) as url:
        upgrade_database(url)
        print("database is at the newest schema")
    return 0


def command_bridge(args: argparse.Namespace) -> int:
    settings = ingest_settings(args)
    with database(DatabaseSettings()) as url:
        upgrade_database(url)
        bridge = start_bridge(args, url)
        stop = threading.Event()
        run_live_line(bridge, stop, settings.stats_interval_s)
        try:
            wait_for_signal(stop)
        finally:
            stop.set()
            bridge.stop()
            log.info("stopped: %s", bridge.counters.summary_line())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lorakom", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations (and TimescaleDB policies)").set_defaults(
        handler=command_db_upgrade
    )

    bridge = commands.add_parser("bridge", help="run the MQTT bridge alone")
    bridge.add_argument("--config", required=True, help="sources TOML file")
    bridge.add_argument("--shared-group", help="subscribe through $share/NAME/… to split a stream")
    bridge.add_argument("--instance", help="stable name of this process (part of the MQTT client id)")
    bridge.set_defaults(handler=command_bridge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.handler(args))
    except ConfigurationError as exc:
        print(f"lorakom: configuration error: {exc}", file=sys.stderr)
        return 2
    except PlatformError as exc:
        print(f"lorakom: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
