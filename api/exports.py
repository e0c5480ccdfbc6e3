"""Streamed exports in CSV, JSON and GeoJSON, chosen by `format=` or the `Accept` header.

Rows are flat dictionaries; `latitude` and `longitude`, when present, become the
GeoJSON geometry. Each format is written row by row so that an export of a year of
readings never sits in memory whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from enum import StrEnum

import orjson
from fastapi.responses import StreamingResponse

ExportValue = str | float | int | bool | datetime | None
ExportRow = dict[str, ExportValue]


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


def _csv(columns: Sequence[str], rows: Iterable[ExportRow]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow("" if row.get(column) is None else _text(row[column]) for column in columns)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _text(value: ExportValue) -> str:
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


def export_response(
    export_format: ExportFormat, columns: Sequence[str], rows: Iterable[ExportRow], filename: str
) -> StreamingResponse:
    body = {
        ExportFormat.CSV: lambda: _csv(columns, rows),
        ExportFormat.JSON: lambda: _json(rows),
        ExportFormat.GEOJSON: lambda: _geojson(rows),
    }[export_format]()
    extension = export_format.value
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[export_format],
        headers={"Content-Disposition": f'attachment; filename="{filename}.{extension}"'},
    )
