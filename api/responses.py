"""JSON bodies written straight from plain data, for the few hot read routes.

FastAPI validates and serialises a returned model through its `response_model`,
which for a page of hundreds of devices cost more than the database. Hot routes
keep `response_model` for the documentation (and the tests check the bodies
against it) but return a body built here: plain dicts, dumped once by orjson.
Times come out as ISO 8601 with `Z` for UTC, as pydantic writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson
from fastapi import Response

from api.pagination import cut_page

Row = TypeVar("Row")

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY


def json_response(content: object, *, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content, option=JSON_OPTIONS), status_code, media_type="application/json")


def page_response(
    rows: Sequence[Row],
    limit: int,
    *,
    item: Callable[[Row], dict[str, object]],
    position: Callable[[Row], str | int],
) -> Response:
    """`pagination.page_of`, as a finished body: up to `limit` items and the cursor to the rest."""
    shown, next_cursor = cut_page(rows, limit, position)
    return json_response({"items": [item(row) for row in shown], "next_cursor": next_cursor})


def json_page_response(items_json: str, next_cursor: str | None) -> Response:
    """A page whose items the database already wrote as a JSON array."""
    body = b'{"items":' + items_json.encode() + b',"next_cursor":' + orjson.dumps(next_cursor) + b"}"
    return Response(body, 200, media_type="application/json")
