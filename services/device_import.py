"""Devices from and to CSV: a town's sensor list, read row by row and validated as the API validates.

Each row is checked against `domain.device_fields.DeviceSpec`, the description that
the API's JSON and the CLI validate against too; bad rows are reported by the line
they start on, good rows go to `storage.device_import`. An export writes the same
columns (`device_csv_row`), so an exported file re-imports unchanged.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from domain.device_fields import DeviceMetadata, DeviceSpec
from domain.spreadsheet import unescape_formula
from storage.device_import import ImportReport, RowError, write_devices
from storage.models import Device

TAG_SEPARATOR = ";"

METADATA_COLUMNS: tuple[str, ...] = tuple(DeviceMetadata.model_fields)
CSV_COLUMNS: tuple[str, ...] = (
    "dev_eui",
    "name",
    "codec_id",
    "decoder_source",
    "use_case",
    "latitude",
    "longitude",
    "tags",
    *METADATA_COLUMNS,
)
_METADATA_NAMES = frozenset(METADATA_COLUMNS)


def _spec_input(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the dictionary `DeviceSpec` validates: blanks are absent, tags are split.

    Cells are read back from the export's formula escaping (`domain.spreadsheet`), so that
    an exported file re-imports unchanged.
    """
    data: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    for name, cell in row.items():
        text = unescape_formula(cell).strip()
        if text:
            (metadata if name in _METADATA_NAMES else data)[name] = text
    if "tags" in data:
        data["tags"] = [tag.strip() for tag in data["tags"].split(TAG_SEPARATOR) if tag.strip()]
    data["metadata"] = metadata
    return data


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in detail['loc']) or 'row'}: {detail['msg']}"
        for detail in error.errors()
    )


class _CountedLines:
    """The lines handed to the CSV reader, counted, so that a row is named by the line it starts on.

    `csv.reader.line_num` names the line a record ends on, and is not advanced when the
    reader fails; a row (or a quote left open) is found by where it begins.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.consumed = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.consumed += 1
        return line


_CSV_PROBLEMS = {
    "unexpected end of data": "a quoted field opened here is never closed",
}


def _csv_problem(error: csv.Error) -> str:
    reason = str(error)
    if reason.startswith("field larger than field limit"):
        return f"a field is longer than {csv.field_size_limit()} characters"
    return _CSV_PROBLEMS.get(reason, f"not valid CSV ({reason})")


def parse_device_csv(lines: Iterable[str], report: ImportReport) -> Iterator[tuple[int, DeviceSpec]]:
    """Valid rows with the line each starts on; every invalid row becomes a `RowError` in `report`.

    A generator, so that a file of any length is read in constant memory. Line 1 is the
    header. A file that stops being CSV (a quote never closed, a field beyond the CSV
    reader's size limit) is reported on the line where the broken row begins, and the
    rest of the file is not read: from there on, where a row begins is anyone's guess.
    """
    counted = _CountedLines(lines)
    reader = csv.reader(counted, strict=True)
    try:
        header = [name.strip().lower() for name in next(reader, [])]
    except csv.Error as exc:
        report.errors.append(RowError(line=1, message=_csv_problem(exc)))
        return
    missing = {"dev_eui", "name"} - set(header)
    unknown = set(header) - set(CSV_COLUMNS)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(sorted(missing))}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(sorted(unknown))}")
        report.errors.append(RowError(line=1, message="; ".join(parts)))
        return
    while True:
        line = counted.consumed + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            report.rows += 1
            message = f"{_csv_problem(exc)}; the file was not read past this line"
            report.errors.append(RowError(line=line, message=message))
            return
        if cells is None:
            return
        if not cells:  # a blank line, as `csv.DictReader` skips them
            continue
        report.rows += 1
        if len(cells) > len(header):
            report.errors.append(RowError(line=line, message="more values than columns"))
            continue
        row = dict(zip(header, cells, strict=False))
        try:
            spec = DeviceSpec.model_validate(_spec_input(row))
        except ValidationError as exc:
            report.errors.append(RowError(line=line, message=_describe(exc), dev_eui=row.get("dev_eui")))
            continue
        yield line, spec


def import_devices(
    session: Session,
    *,
    municipality_id: int,
    lines: Iterable[str],
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
) -> ImportReport:
    """Register or update the devices of a CSV file (columns `CSV_COLUMNS`, header first).

    Good rows go in while bad rows are reported by line number; re-importing the same
    file changes nothing (upsert by DevEUI within the municipality). The file is read
    once, row by row, so memory stays the same for any size. With `dry_run` the same
    checks run and nothing is written. `progress` is called with the number of rows
    just read, for a progress bar. The caller commits.
    """
    report = ImportReport(dry_run=dry_run)
    specs = parse_device_csv(lines, report)
    return write_devices(
        session, municipality_id=municipality_id, specs=specs, report=report, progress=progress
    )


def device_csv_row(device: Device) -> list[str]:
    """A device as a CSV row in the import's own format (`CSV_COLUMNS`), so an export re-imports unchanged."""
    metadata = device.metadata_ or {}
    return [
        device.dev_eui,
        device.name,
        device.codec_id or "",
        device.decoder_source or "",
        device.use_case or "",
        "" if device.latitude is None else repr(device.latitude),
        "" if device.longitude is None else repr(device.longitude),
        TAG_SEPARATOR.join(device.tags),
        *("" if metadata.get(name) is None else str(metadata[name]) for name in METADATA_COLUMNS),
    ]
