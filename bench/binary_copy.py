"""PostgreSQL's binary COPY format built from numpy arrays: no Python object per row."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg.copy import QueuedLibpqWriter

from bench.arrays import Ints, Words

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = b"\xff\xff"
PG_EPOCH_S = 946_684_800
_FIXED = {
    "smallint": ">i2",
    "integer": ">i4",
    "bigint": ">i8",
    "double precision": ">f8",
    "timestamp with time zone": ">i8",
}

Block = tuple[int, dict[str, Any]]
"""Rows for one COPY: their number and, per column, an array with one value per row or one
scalar for all rows (None is NULL). Text and bytea values of one column have one length."""


def pg_time(times_s: Ints | int) -> Ints:
    return (np.asarray(times_s, dtype=np.int64) - PG_EPOCH_S) * 1_000_000


def encode_rows(rows: int, kinds: Sequence[str], columns: Sequence[Any]) -> bytes:
    """Rows in PostgreSQL's binary COPY format, built as one numpy record array.

    `kinds` are the columns' types as the catalog names them; numbers are converted to
    them, text and bytea are sent as they are.
    """
    fields: list[tuple[str, str]] = [("count", ">i2")]
    values: dict[str, Any] = {"count": len(columns)}
    for index, (kind, value) in enumerate(zip(kinds, columns, strict=True)):
        length = f"length{index}"
        fields.append((length, ">i4"))
        if value is None:
            values[length] = -1
            continue
        if kind in _FIXED:
            dtype = np.dtype(_FIXED[kind])
        elif isinstance(value, bytes):
            dtype = np.dtype(f"V{len(value)}")
            value = np.void(value)
        else:
            dtype = np.dtype(f"V{value.dtype.itemsize}")
            value = value.view(dtype)
        values[length] = dtype.itemsize
        fields.append((f"value{index}", dtype.str))
        values[f"value{index}"] = value
    block = np.empty(rows, dtype=fields)
    for name, value in values.items():
        block[name] = value
    return block.tobytes()


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_words(words: Words) -> NDArray[np.void]:
    """Each 64-bit word as 16 lower-case hex digits (a fixed-width byte string)."""
    octets = words.astype(">u8").view(np.uint8).reshape(-1, 8)
    digits = np.empty((octets.shape[0], 16), dtype=np.uint8)
    digits[:, 0::2] = _HEX_DIGITS[octets >> 4]
    digits[:, 1::2] = _HEX_DIGITS[octets & 15]
    return digits.view("V16").ravel()


def fixed_text(texts: Sequence[str]) -> NDArray[np.void]:
    width = len(texts[0])
    assert all(len(text) == width for text in texts)
    return np.frombuffer("".join(texts).encode(), dtype=f"V{width}")


def column_kinds(cur: psycopg.Cursor[Any], table: str) -> dict[str, str]:
    """Each column's type as the migrations made it, so that binary COPY sends exactly that."""
    found = cur.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (table,),
    ).fetchall()
    return {name: kind for name, kind in found}


def copy_blocks(cur: psycopg.Cursor[Any], table: str, blocks: Iterator[Block], *, freeze: bool) -> int:
    """Binary COPY of the blocks into `table`; `freeze` needs the table truncated in this transaction."""
    first = next(blocks, None)
    if first is None:
        return 0
    names = list(first[1])
    kinds = [column_kinds(cur, table)[name] for name in names]
    statement = f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY{', FREEZE' if freeze else ''})"
    rows = 0
    with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
        copy.write(COPY_SIGNATURE)
        for count, columns in itertools.chain([first], blocks):
            copy.write(encode_rows(count, kinds, [columns[name] for name in names]))
            rows += count
        copy.write(COPY_TRAILER)
    return rows
