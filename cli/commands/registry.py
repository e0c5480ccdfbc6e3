"""`lorakom devices import` and `ingest-grants`: a municipality's devices and who may deliver for them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.commands import Subcommands
from cli.wiring import migrated_database
from domain.errors import ConfigurationError
from storage.database import DatabaseSettings, create_database_engine


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
        expected_rows = data_lines(path)
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle, migrated_database(DatabaseSettings()) as url:
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


def data_lines(path: Path) -> int:
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

    with migrated_database(DatabaseSettings()) as url:
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


def add_devices_commands(commands: Subcommands) -> None:
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


def add_ingest_grant_commands(commands: Subcommands) -> None:
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
