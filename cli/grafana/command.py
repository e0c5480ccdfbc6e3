"""`lorakom grafana provision`: its arguments, its wiring and the report it prints."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli.grafana.client import GrafanaApi
from cli.grafana.provisioner import DatabaseAddress, Provisioner, load_dashboards
from cli.grafana.settings import GrafanaSettings
from cli.grafana.users import load_users
from storage.reader_roles import ReaderSettings


def add_grafana_commands(commands: Any) -> None:
    """`lorakom grafana provision` on the main parser's subcommands."""
    grafana = commands.add_parser("grafana", help="Grafana organisations per municipality")
    grafana_commands = grafana.add_subparsers(dest="grafana_command", required=True)
    provision = grafana_commands.add_parser(
        "provision", help="organisations, data sources, dashboards and users from the municipality list"
    )
    provision.add_argument("--users", type=Path, help="TOML file of Grafana users (see deploy/grafana/)")
    provision.add_argument("--dashboards", type=Path, default=Path("dashboards"), help="folder of *.json")
    provision.add_argument(
        "--rotate-passwords", action="store_true", help="give every dashboard login a new password"
    )
    provision.set_defaults(handler=command_provision)


def command_provision(args: argparse.Namespace) -> int:
    from cli.wiring import migrated_database
    from storage.database import DatabaseSettings, create_database_engine

    settings = GrafanaSettings()
    users = load_users(args.users)
    dashboards = load_dashboards(args.dashboards)
    api = GrafanaApi.signed_in(settings)
    try:
        with migrated_database(DatabaseSettings()) as url:
            engine = create_database_engine(url, pool_size=1)
            try:
                report = Provisioner(
                    api,
                    engine,
                    settings,
                    ReaderSettings(),
                    DatabaseAddress.of(url, settings),
                    dashboards,
                    users,
                ).run(rotate_passwords=args.rotate_passwords)
            finally:
                engine.dispose()
    finally:
        api.close()
    print(
        f"grafana: {len(report.changes)} change(s)" + ("" if report.changes else ", everything was in place")
    )
    for change in report.changes:
        print(f"  {change}")
    if report.new_user_passwords:
        print("first passwords of the new Grafana users (shown once; hand them over safely):")
        for login, password in report.new_user_passwords:
            print(f"  {login}  {password}")
    return 0
