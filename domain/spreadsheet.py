"""Cells that a spreadsheet would run as formulas, and how a CSV file keeps them text.

A CSV export is opened in a spreadsheet far more often than it is parsed by a program,
and a spreadsheet reads a cell starting with `=`, `+`, `-` or `@` as a formula: a device
named `=HYPERLINK(…)` or `=cmd|' /C calc'!A0` would run in the clerk's office. OWASP's
rule (CSV injection) is applied to every cell of every CSV the platform writes: a cell
starting with one of those characters, a tab or a carriage return gets a leading single
quote, which spreadsheets show as text and do not display.

A plain negative number (`-12.5`, `-3e-05`) is left alone: a spreadsheet reads it as the
number it is, and quoting it would turn every negative longitude or temperature into text.

The device import reads its own export back (`unescape_formula`), so an exported file
re-imports unchanged. So that this is exact for every text, a cell that already starts with
quotes in front of a trigger character gets one more; reading drops exactly one.
"""

from __future__ import annotations

import re

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""What a cell may not start with (OWASP, CSV injection)."""

ESCAPE = "'"

_PLAIN_NEGATIVE_NUMBER = re.compile(r"-(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _needs_escape(cell: str) -> bool:
    unquoted = cell.lstrip(ESCAPE)
    if not unquoted.startswith(FORMULA_TRIGGERS):
        return False
    # An escaped cell (quotes in front) always takes one more quote, a number included,
    # so that reading drops exactly the one that writing added.
    return cell.startswith(ESCAPE) or _PLAIN_NEGATIVE_NUMBER.fullmatch(cell) is None


def escape_formula(cell: str) -> str:
    """The cell as a spreadsheet shows it as text: a single quote in front of a would-be formula."""
    return ESCAPE + cell if _needs_escape(cell) else cell


def unescape_formula(cell: str) -> str:
    """The text a cell written by `escape_formula` stood for (others are returned as given)."""
    if cell[:1] == ESCAPE and _needs_escape(cell[1:]):
        return cell[1:]
    return cell
