"""Streamed exports in CSV, JSON and GeoJSON, chosen by `format=` or the `Accept` header.

Rows are flat dictionaries; `latitude` and `longitude`, when present, become the
GeoJSON geometry. Each format is written row by row so that an export of a year of
readings never sits in memory whole.

Two rules hold for every export, and live here so that no route can forget them:

- **A stream holds no database connection while it waits for its reader.** Rows are read
  a page at a time (`paged`), each page on a session of its own that is closed before the
  first of its rows is sent. A reader that goes away, stalls or reads one byte a minute
  then holds a socket, never one of the pool's few connections; an aborted export cannot
  starve the other municipalities' requests. `ExportResponse` closes the row iterator
  however the response ends (finished, failed, client gone), so nothing waits for the
  garbage collector either.
- **Every CSV cell goes through `domain.spreadsheet.escape_formula`** (`csv_stream`): an
  export opened in a spreadsheet never runs a device name as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

import anyio
import orjson
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope, Send

from domain.spreadsheet import escape_formula
from storage.tenancy import tenant_session

ExportValue = str | float | int | bool | datetime | None
ExportRow = dict[str, ExportValue]
Row = TypeVar("Row")
Position = TypeVar("Position")

PageReader = Callable[[Session, Position | None], tuple[Sequence[Row], Position | None]]
"""(session, where the last page ended or None) -> (the page's rows, where the next one starts or None)."""


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    GEOJSON = "geojson"


MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv",
    ExportFormat.JSON: "application/json",
    ExportFormat.GEOJSON: "application/geo+json",
}

EXPORT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The rows, streamed",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/geo+json": {"schema": {"type": "object"}},
        },
    }
}


def negotiate(requested: ExportFormat | None, accept: str | None) -> ExportFormat:
    """`format=` wins; otherwise the first media type in `Accept` that we write; JSON by default."""
    if requested is not None:
        return requested
    for part in (accept or "").split(","):
        media_type = part.split(";")[0].strip().lower()
        for export_format, known in MEDIA_TYPES.items():
            if media_type == known:
                return export_format
    return ExportFormat.JSON


def paged(engine: Engine, read_page: PageReader[Position, Row], tenant: int | None) -> Iterator[Row]:
    """Every row of an export, read page by page, each page on a session closed before its rows go out.

    The one place where an export opens a session. Pages follow a key (an id, a time), so
    rows written between two pages shift nothing; an export is not one snapshot, which for
    an export streamed over minutes nobody could rely on anyway. Each page's session is
    confined to `tenant` (the request session's municipality, `storage.tenancy.tenant_of`),
    so the database keeps an export to the rows the request itself could read.
    """
    position: Position | None = None
    while True:
        with Session(engine) if tenant is None else tenant_session(engine, tenant) as session:
            rows, position = read_page(session, position)
        yield from rows
        if position is None:
            return


def csv_stream(columns: Sequence[str], rows: Iterable[Sequence[ExportValue]]) -> Iterator[bytes]:
    """CSV, header first, every cell escaped against formulas: the one CSV writer of the API."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(escape_formula(column) for column in columns)
    for row in rows:
        writer.writerow(escape_formula(_text(value)) for value in row)
        if buffer.tell() >= 16_384:  # a chunk per row costs a send and a thread hop each
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _csv(columns: Sequence[str], rows: Iterable[ExportRow]) -> Iterator[bytes]:
    return csv_stream(columns, ([row.get(column) for column in columns] for row in rows))


def _text(value: ExportValue) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _json(rows: Iterable[ExportRow]) -> Iterator[bytes]:
    separator = b"["
    for row in rows:
        yield separator + orjson.dumps(row)
        separator = b",\n"
    yield b"[]" if separator == b"[" else b"]\n"


def _geojson(rows: Iterable[ExportRow]) -> Iterator[bytes]:
    yield b'{"type":"FeatureCollection","features":['
    separator = b""
    for row in rows:
        latitude, longitude = row.get("latitude"), row.get("longitude")
        geometry = None
        if isinstance(latitude, float) and isinstance(longitude, float):
            geometry = {"type": "Point", "coordinates": [longitude, latitude]}
        properties = {name: value for name, value in row.items() if name not in ("latitude", "longitude")}
        yield separator + orjson.dumps({"type": "Feature", "geometry": geometry, "properties": properties})
        separator = b",\n"
    yield b"]}\n"


class ExportResponse(StreamingResponse):
    """A streamed body whose iterator is closed however the response ends.

    Starlette leaves a synchronous iterator suspended when the client goes away (its
    task is cancelled mid-`async for`), to be closed whenever the garbage collector
    finds it; this closes it at once, on the thread pool since closing may run cleanup
    that blocks. Pages hold no connection between rows (`paged`), so this is the second
    line, not the first.
    """

    def __init__(self, body: Iterator[bytes], *, media_type: str, filename: str) -> None:
        self._body = body
        super().__init__(
            body,
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(_close, self._body)


def _close(body: Iterator[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


def csv_response(
    columns: Sequence[str], rows: Iterable[Sequence[ExportValue]], filename: str
) -> ExportResponse:
    """A CSV attachment of `rows`, for exports in a format of their own (the devices' import format)."""
    return ExportResponse(csv_stream(columns, rows), media_type="text/csv", filename=f"{filename}.csv")


def export_response(
    export_format: ExportFormat, columns: Sequence[str], rows: Iterable[ExportRow], filename: str
) -> ExportResponse:
    body = {
        ExportFormat.CSV: lambda: _csv(columns, rows),
        ExportFormat.JSON: lambda: _json(rows),
        ExportFormat.GEOJSON: lambda: _geojson(rows),
    }[export_format]()
    return ExportResponse(
        body, media_type=MEDIA_TYPES[export_format], filename=f"{filename}.{export_format.value}"
    )
