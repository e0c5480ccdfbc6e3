"""The `lorakom` subcommands, a module per concern, each adding its own parsers."""

from __future__ import annotations

import argparse
from typing import Protocol


class Subcommands(Protocol):
    """What a command module adds its parsers to: the main parser's `add_subparsers()`."""

    def add_parser(self, name: str, *, help: str) -> argparse.ArgumentParser: ...
