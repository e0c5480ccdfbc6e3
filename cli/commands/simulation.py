"""`lorakom demo` and `simulate`: the platform with simulated sensors, and the sensors alone."""

from __future__ import annotations

import argparse
import threading

from cli.backing_services import mqtt_broker
from cli.commands import Subcommands
from cli.demo import DEMO_SPEED
from cli.jobs import start_alert_jobs, start_reader_query_guard
from cli.process import stop_on_signals, wait_for_signal
from cli.wiring import migrated_database
from decoders import CodecRegistry
from ingest.bridge import Bridge
from ingest.config import IngestSettings
from storage.database import create_database_engine


def print_live_totals(bridge: Bridge, stop: threading.Event) -> None:
    """One line, rewritten in place every second: the demo's sign of life."""
    while not stop.wait(1.0):
        print(f"\r  uplinks: {bridge.counters.totals_line()}   ", end="", flush=True)
    print()


def command_demo(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from api.settings import ApiSettings
    from cli.demo import ApiServer, demo_sources, register_fleet
    from cli.simulator.fleet import demo_fleet
    from cli.simulator.publisher import Simulator
    from cli.wiring import api_on
    from storage.api_keys import create_api_key

    fleet = demo_fleet()
    stop = threading.Event()
    api_settings = ApiSettings()
    database_settings = api_settings.database
    with migrated_database(database_settings) as url:
        engine = create_database_engine(url)
        register_fleet(engine, fleet)
        with Session(engine) as session:
            key, _ = create_api_key(session, municipality_slug=None, role="region-admin", name="demo")
            session.commit()
        jobs = start_alert_jobs(engine, stop, secrets=api_settings.secrets, webhooks=api_settings.webhooks)
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
            app = api_on(api_settings, engine)
            server = ApiServer(app, "127.0.0.1", args.port)
            server.start()
            simulator = Simulator(fleet, speed=args.speed, gateway_stats_interval_s=30.0 / args.speed * 10)
            publisher = threading.Thread(
                target=simulator.run, args=(host, port), kwargs={"stop_event": stop}, daemon=True
            )
            publisher.start()
            api = f"http://127.0.0.1:{args.port}"
            where = "embedded (var/postgres)" if database_settings.url is None else "from LORAKOM_DB_URL"
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


def add_simulation_commands(commands: Subcommands) -> None:
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
