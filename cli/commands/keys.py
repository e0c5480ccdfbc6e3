"""`lorakom keys` and `secrets`: API keys, and the keys that encrypt stored secrets."""

from __future__ import annotations

import argparse
import sys

from cli.commands import Subcommands
from cli.wiring import migrated_database
from storage.database import DatabaseSettings, create_database_engine


def command_keys_create(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from storage.api_keys import create_api_key

    with migrated_database(DatabaseSettings()) as url:
        engine = create_database_engine(url)
        with Session(engine) as session:
            key, row = create_api_key(
                session, municipality_slug=args.municipality, role=args.role, name=args.name
            )
            session.commit()
            prefix = row.prefix  # read while the row still has its session
        engine.dispose()
    print(key)
    print(f"(role {args.role}, prefix {prefix}; store it now, it is not shown again)", file=sys.stderr)
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
    with migrated_database(DatabaseSettings()) as url:
        engine = create_database_engine(url, pool_size=1)
        try:
            rotated = rotate_secrets(engine, box)
        finally:
            engine.dispose()
    print(f"{rotated} webhook secret(s) now encrypted under the first key of LORAKOM_SECRET_KEYS")
    if box.key_count > 1:
        print("the other keys are no longer needed for stored secrets and may be removed", file=sys.stderr)
    return 0


def add_keys_commands(commands: Subcommands) -> None:
    keys = commands.add_parser("keys", help="API keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--municipality", help="slug; omit for a region-admin key")
    create.add_argument(
        "--role", required=True, choices=["region-admin", "admin", "editor", "viewer", "technician"]
    )
    create.add_argument("--name", default="created on the command line")
    create.set_defaults(handler=command_keys_create)


def add_secrets_commands(commands: Subcommands) -> None:
    secrets = commands.add_parser("secrets", help="keys of the stored secrets (LORAKOM_SECRET_KEYS)")
    secrets_commands = secrets.add_subparsers(dest="secrets_command", required=True)
    secrets_commands.add_parser("new-key", help="print a new key for LORAKOM_SECRET_KEYS").set_defaults(
        handler=command_secrets_new_key
    )
    secrets_commands.add_parser(
        "rotate", help="re-encrypt every stored secret under the first key of LORAKOM_SECRET_KEYS"
    ).set_defaults(handler=command_secrets_rotate)
