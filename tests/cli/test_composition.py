"""The command line's composition: its commands, in their order, and settings built once per command."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import psycopg
import pytest
from pydantic_settings import BaseSettings

from cli.main import build_parser, main
from storage.database import DatabaseSettings
from storage.device_registry import ensure_municipality

COMMANDS = [
    "db",
    "bridge",
    "run",
    "api",
    "demo",
    "simulate",
    "decode",
    "codecs",
    "redecode",
    "devices",
    "keys",
    "grafana",
    "secrets",
    "ingest-grants",
]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def leaves(
    parser: argparse.ArgumentParser, path: str = "lorakom"
) -> list[tuple[str, argparse.ArgumentParser]]:
    children = subcommands(parser)
    if not children:
        return [(path, parser)]
    return [leaf for name, child in children.items() for leaf in leaves(child, f"{path} {name}")]


def test_the_commands_are_listed_in_their_order() -> None:
    assert list(subcommands(build_parser())) == COMMANDS


def test_every_command_has_a_handler() -> None:
    found = leaves(build_parser())
    assert len(found) == 17
    for path, parser in found:
        assert callable(parser.get_default("handler")), path


def test_a_command_builds_its_database_settings_once(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORAKOM_DB_URL", migrated_db_url)
    built: Counter[str] = Counter()
    original = BaseSettings.__init__

    def counting(self: BaseSettings, *args: Any, **kwargs: Any) -> None:
        built[type(self).__name__] += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(BaseSettings, "__init__", counting)
    with psycopg.connect(migrated_db_url) as conn:
        ensure_municipality(conn, "composition-town")
    assert main(["ingest-grants", "list", "--owner", "composition-town"]) == 0
    assert capsys.readouterr().out == ""
    assert built[DatabaseSettings.__name__] == 1


def test_keys_create_prints_the_key_and_its_prefix(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The prefix was read after the key's session had closed: the key was stored, the command crashed."""
    monkeypatch.setenv("LORAKOM_DB_URL", migrated_db_url)
    with psycopg.connect(migrated_db_url) as conn:
        ensure_municipality(conn, "keys-town")
    assert main(["keys", "create", "--municipality", "keys-town", "--role", "viewer", "--name", "ops"]) == 0
    printed = capsys.readouterr()
    key = printed.out.strip()
    assert key.startswith("lk_")
    assert f"prefix {key.split('_')[1]}" in printed.err
