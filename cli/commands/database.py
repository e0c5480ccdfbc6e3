"""`lorakom db`: the database schema."""

from __future__ import annotations

import argparse

from cli.backing_services import database
from cli.commands import Subcommands
from storage.database import DatabaseSettings
from storage.schema import upgrade_and_apply_policies


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


def add_database_commands(commands: Subcommands) -> None:
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations (and TimescaleDB policies)").set_defaults(
        handler=command_db_upgrade
    )
