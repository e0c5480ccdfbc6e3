"""`lorakom`: the composition roots. Settings are built here, never at import time."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli.commands.database import add_database_commands
from cli.commands.decoding import add_decoding_commands
from cli.commands.keys import add_keys_commands, add_secrets_commands
from cli.commands.registry import add_devices_commands, add_ingest_grant_commands
from cli.commands.serving import add_serving_commands
from cli.commands.simulation import add_simulation_commands
from cli.grafana.command import add_grafana_commands
from cli.process import configure_logging
from domain.errors import ConfigurationError, PlatformError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lorakom", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    # In the order `lorakom --help` lists them.
    add_database_commands(commands)
    add_serving_commands(commands)
    add_simulation_commands(commands)
    add_decoding_commands(commands)
    add_devices_commands(commands)
    add_keys_commands(commands)
    add_grafana_commands(commands)
    add_secrets_commands(commands)
    add_ingest_grant_commands(commands)
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
