"""The formula escaping of CSV cells: safe for spreadsheets, and exactly undone by the import."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.spreadsheet import FORMULA_TRIGGERS, escape_formula, unescape_formula

cells = st.text(alphabet=st.sampled_from("=+-@\t\r'0123456789.eE xA|!"), max_size=12) | st.text(max_size=12)


@settings(max_examples=2000, deadline=None)
@given(cell=cells)
@example(cell="'=x")
@example(cell="''-1")
@example(cell="-1")
def test_reading_back_gives_the_text_that_was_written(cell: str) -> None:
    assert unescape_formula(escape_formula(cell)) == cell


@settings(max_examples=2000, deadline=None)
@given(cell=cells)
def test_no_escaped_cell_starts_a_formula_unless_it_is_a_negative_number(cell: str) -> None:
    escaped = escape_formula(cell)
    if escaped.startswith(FORMULA_TRIGGERS):
        assert escaped == cell
        assert float(cell) < 0 or cell.startswith("-0")


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+SUM(1+1)", "'+SUM(1+1)"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-2.5", "-2.5"),
        ("-1e-05", "-1e-05"),
        ("-inf", "'-inf"),
        ("'=x", "''=x"),
        ("'quoted", "'quoted"),
        ("Bin 3", "Bin 3"),
        ("", ""),
    ],
)
def test_owasp_examples(cell: str, written: str) -> None:
    assert escape_formula(cell) == written
