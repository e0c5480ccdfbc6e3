"""Cursor pagination: every list answers `items` and an opaque `next_cursor`.

A cursor is the sort key of the last item shown, as base64url-encoded JSON. It is
opaque to clients (they may only hand it back), stable under inserts (keyset,
not offset) and costs the database an index seek instead of skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Generic, TypeGuard, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from domain.errors import InvalidIdentifier

Item = TypeVar("Item")
Row = TypeVar("Row")

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="How many items at most")]
CursorQuery = Annotated[
    str | None,
    Query(max_length=500, description="`next_cursor` of the previous page; absent for the first page"),
]


class InvalidCursor(InvalidIdentifier):
    """A cursor that this API did not hand out."""


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


def encode_cursor(*parts: str | int) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def _decode(text: str) -> list[object]:
    try:
        parts = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("this cursor was not handed out by this API") from exc
    if not isinstance(parts, list):
        raise InvalidCursor("this cursor was not handed out by this API")
    return parts


INTEGER_MAX = 2**31 - 1
"""PostgreSQL's `integer`, of most ids: a larger cursor would fail in the database, not here."""
BIGINT_MAX = 2**63 - 1
"""PostgreSQL's `bigint`, of the ids of rows that accumulate (alert events, deliveries)."""


def _is_id(value: object, maximum: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= maximum


def int_cursor(text: str | None, *, maximum: int = INTEGER_MAX) -> int | None:
    """The id after which the page starts; `maximum` is the largest id its column holds."""
    if text is None:
        return None
    parts = _decode(text)
    if len(parts) != 1 or not _is_id(parts[0], maximum):
        raise InvalidCursor("this cursor was not handed out for this list")
    return parts[0]


def text_cursor(text: str | None) -> str | None:
    """The text key (slug, DevEUI, gateway id) after which the page starts."""
    if text is None:
        return None
    parts = _decode(text)
    if len(parts) != 1 or not isinstance(parts[0], str) or "\x00" in parts[0]:
        raise InvalidCursor("this cursor was not handed out for this list")
    return parts[0]


def time_cursor(text: str | None) -> tuple[datetime, int | None, str | None] | None:
    """A time (and for raw history the device and quantity) after which the page starts."""
    if text is None:
        return None
    parts = _decode(text)
    try:
        moment = datetime.fromisoformat(str(parts[0]))
    except (IndexError, ValueError) as exc:
        raise InvalidCursor("this cursor was not handed out for this list") from exc
    if moment.tzinfo is None or not 1 < moment.year < 9999:
        # The ends of Python's calendar: a day added or the offset applied would overflow.
        raise InvalidCursor("this cursor was not handed out for this list")
    if len(parts) == 1:
        return moment, None, None
    device_id, quantity = parts[1:3] if len(parts) == 3 else (None, None)
    if not _is_id(device_id, INTEGER_MAX) or not isinstance(quantity, str) or "\x00" in quantity:
        raise InvalidCursor("this cursor was not handed out for this list")
    return moment, device_id, quantity


def page_of(
    rows: Sequence[Row], limit: int, *, item: Callable[[Row], Item], position: Callable[[Row], str | int]
) -> Page[Item]:
    """A page from up to `limit + 1` rows: the extra row only says that there is more."""
    shown, next_cursor = cut_page(rows, limit, position)
    return Page(items=[item(row) for row in shown], next_cursor=next_cursor)


def cut_page(
    rows: Sequence[Row], limit: int, position: Callable[[Row], str | int]
) -> tuple[Sequence[Row], str | None]:
    """The rows to show of up to `limit + 1`, and the cursor to the rest (None on the last page)."""
    shown = rows[:limit]
    more = len(rows) > limit
    return shown, encode_cursor(position(shown[-1])) if more and shown else None
