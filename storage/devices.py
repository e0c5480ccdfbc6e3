"""Registered devices: one municipality's sensors, their codec and what they are for.

`DeviceSpec` is the one description of a device that the API's JSON, the CSV import
and the CLI all validate against, so that a device accepted by one path is accepted
by every other. Every change sets `updated_at = now()`: the ingest bridge refreshes
its device cache from that column alone.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import psycopg
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from sqlalchemy import Text, cast, exists, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.decoding import DecoderSourceName
from domain.errors import Conflict, NotFound
from domain.ids import parse_dev_eui
from domain.spreadsheet import unescape_formula
from domain.use_case import UseCase
from storage.ingest_grants import claimable_municipalities
from storage.models import Device, DeviceActivity, DeviceState
from storage.models import Uplink as UplinkRow
from storage.models_sharing import IngestGrant

PrintableText = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$")]
"""Text without control characters: PostgreSQL refuses NUL, and nobody means a tab in a name."""

VISIBLE_TEXT_PATTERN = (
    r"^[^\x00-\x1f\x7f]*"
    r"[^\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    r"[^\x00-\x1f\x7f]*$"
)
"""Printable text with at least one character that is not white space. The pattern is
checked on the text as sent, then the text is stripped: so the schema states exactly
what is accepted, and a name of blanks is refused for what it is."""

Name = Annotated[
    str, StringConstraints(pattern=VISIBLE_TEXT_PATTERN, max_length=200), AfterValidator(str.strip)
]
Label = Annotated[
    str, StringConstraints(pattern=VISIBLE_TEXT_PATTERN, max_length=100), AfterValidator(str.strip)
]

DEV_EUI_PATTERN = r"^[\s:\-_.]*(?:0[\s:\-_.]*[xX][\s:\-_.]*)?(?:[0-9A-Fa-f][\s:\-_.]*){16}$"
"""The spellings `parse_dev_eui` takes (separators anywhere, an optional `0x`), for the schema."""

DevEuiText = Annotated[
    str,
    AfterValidator(parse_dev_eui),
    WithJsonSchema({"type": "string", "pattern": DEV_EUI_PATTERN, "examples": ["70b3d57ed0001234"]}),
]

TAG_SEPARATOR = ";"


class DeviceMetadata(BaseModel):
    """What the use cases need to know about where and how a device is mounted.

    The named fields are validated because use cases compute with them; other keys
    (a planting year, an asset number, a maintenance contract) are kept as given,
    since every town records its own extras and none should need a release for it.
    """

    model_config = ConfigDict(extra="allow")

    bin_depth_mm: float | None = Field(default=None, gt=0, le=20_000, allow_inf_nan=False)
    sensor_offset_mm: float | None = Field(default=None, ge=0, le=20_000, allow_inf_nan=False)
    parking_zone: Label | None = None
    parking_spot: Label | None = None
    tree_id: Label | None = None
    species: Label | None = None
    soil_type: Label | None = None
    expected_interval_s: int | None = Field(default=None, gt=0, le=7 * 86_400)
    sensor_height_mm: float | None = Field(default=None, gt=0, le=100_000, allow_inf_nan=False)

    @model_validator(mode="after")
    def storable(self) -> DeviceMetadata:
        """The free-form keys are bounded, and hold only what a JSONB column stores as given.

        Without bounds one editor could park megabytes in every device row that each list
        and export reads back; and a NUL character, an integer beyond 64 bits or an
        unpaired surrogate is refused by PostgreSQL or the JSON writer, which made a 500.
        """
        document = self.model_dump(exclude_none=True)
        keys = _check_metadata_value(document, depth=0)
        if keys > MAX_METADATA_KEYS:
            raise ValueError(f"metadata may have at most {MAX_METADATA_KEYS} keys (nested ones included)")
        size = len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata may take at most {MAX_METADATA_BYTES} bytes as JSON, not {size}")
        return self


MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 4
"""Objects and lists nested in metadata, counting its own top level as 1."""
MAX_METADATA_KEYS = 100
JSON_INTEGER_RANGE = range(-(2**63), 2**63)
"""What every JSON consumer of the API (JavaScript aside) reads back as the same integer."""


def _check_metadata_value(value: object, *, depth: int) -> int:
    """Refuse what JSONB cannot store as given; the number of object keys in `value`."""
    if isinstance(value, str):
        _check_metadata_text(value)
        return 0
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        if value not in JSON_INTEGER_RANGE:
            raise ValueError("metadata integers lie between -2**63 and 2**63 - 1")
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("metadata numbers are finite")
        return 0
    if isinstance(value, dict | list):
        if depth >= MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests at most {MAX_METADATA_DEPTH} levels deep")
        if isinstance(value, list):
            return sum(_check_metadata_value(item, depth=depth + 1) for item in value)
        for key in value:
            _check_metadata_text(str(key))
        return len(value) + sum(_check_metadata_value(item, depth=depth + 1) for item in value.values())
    raise ValueError(f"metadata holds JSON values only, not {type(value).__name__}")


def _check_metadata_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("metadata text may not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise ValueError("metadata text must be valid Unicode (no unpaired surrogates)") from exc


class DeviceFields(BaseModel):
    """Everything about a device that a person may change; the DevEUI is not among them."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    codec_id: Annotated[PrintableText, StringConstraints(max_length=200)] | None = None
    decoder_source: DecoderSourceName | None = None
    use_case: UseCase = UseCase.OTHER
    latitude: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    tags: list[Label] = Field(default_factory=list, max_length=50)
    metadata: DeviceMetadata = Field(default_factory=DeviceMetadata)

    @model_validator(mode="after")
    def location_is_whole(self) -> DeviceFields:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude are given together or not at all")
        return self


class DeviceSpec(DeviceFields):
    """A device to register: its fields and its DevEUI, normalised to 16 lower-case hex digits."""

    dev_eui: DevEuiText


def fields_of(device: Device) -> DeviceFields:
    return DeviceFields(
        name=device.name,
        codec_id=device.codec_id,
        decoder_source=device.decoder_source,
        use_case=UseCase(device.use_case or UseCase.OTHER),
        latitude=device.latitude,
        longitude=device.longitude,
        tags=list(device.tags),
        metadata=DeviceMetadata.model_validate(device.metadata_),
    )


def _columns_of(municipality_id: int, spec: DeviceSpec) -> dict[str, Any]:
    return {
        "municipality_id": municipality_id,
        "dev_eui": spec.dev_eui,
        "name": spec.name,
        "codec_id": spec.codec_id,
        "decoder_source": spec.decoder_source,
        "use_case": spec.use_case.value,
        "latitude": spec.latitude,
        "longitude": spec.longitude,
        "tags": spec.tags,
        "metadata": spec.metadata.model_dump(exclude_none=True),
    }


def measuring(session: Session, device_ids: Collection[int], quantities: Collection[str]) -> set[int]:
    """Those of `device_ids` with a latest value of any of `quantities`.

    A use case's views show exactly these devices (a bin is a device with a fill level),
    so a device outside them must be answered there like a device that does not exist:
    to a reader the use case was shared with, anything else would reveal it.
    """
    if not device_ids or not quantities:
        return set()
    found = session.scalars(
        select(DeviceState.device_id)
        .where(DeviceState.device_id.in_(device_ids), DeviceState.quantity.in_(quantities))
        .distinct()
    )
    return set(found)


def get_device(session: Session, *, municipality_id: int, dev_eui: str) -> Device:
    """A device of this municipality; another municipality's device is not found, like a missing one."""
    device = session.scalar(
        select(Device).where(Device.municipality_id == municipality_id, Device.dev_eui == dev_eui)
    )
    if device is None:
        raise NotFound(f"no device {dev_eui}")
    return device


def list_devices(
    session: Session,
    *,
    municipality_id: int,
    after_id: int | None,
    limit: int,
    use_case: UseCase | None = None,
    tag: str | None = None,
) -> list[Device]:
    """Devices in registration order, at most `limit + 1` so the caller can tell a next page exists."""
    query = select(Device).where(Device.municipality_id == municipality_id).order_by(Device.id)
    if after_id is not None:
        query = query.where(Device.id > after_id)
    if use_case is not None:
        query = query.where(Device.use_case == use_case.value)
    if tag is not None:
        query = query.where(Device.tags.contains([tag]))
    return list(session.scalars(query.limit(limit + 1)))


def create_device(session: Session, *, municipality_id: int, spec: DeviceSpec) -> Device:
    """Register a device. A DevEUI registered anywhere else is a conflict, without saying where."""
    statement = insert(Device).values(**_columns_of(municipality_id, spec)).returning(Device)
    try:
        with session.begin_nested():
            device = session.scalars(statement).one()
    except IntegrityError as exc:
        raise Conflict(f"device {spec.dev_eui} is registered already") from exc
    return device


def update_device(session: Session, device: Device, fields: DeviceFields) -> Device:
    device.name = fields.name
    device.codec_id = fields.codec_id
    device.decoder_source = fields.decoder_source
    device.use_case = fields.use_case.value
    device.latitude = fields.latitude
    device.longitude = fields.longitude
    device.tags = list(fields.tags)
    device.metadata_ = fields.metadata.model_dump(exclude_none=True)
    device.updated_at = func.now()
    session.flush()
    session.refresh(device)
    return device


def delete_device(session: Session, device: Device) -> None:
    session.delete(device)
    session.flush()


def list_unclaimed(
    session: Session, *, municipality_id: int, after_dev_eui: str | None, limit: int
) -> list[DeviceActivity]:
    """DevEUIs heard on this municipality's sources that no device it delivers for has.

    Only this municipality's own activity rows: another town's pool is that town's. A
    DevEUI counts as claimed when the municipality registered it, or when its owner
    granted this municipality's sources ingest (their frames go to that device). One
    registered by a town that did not grant stays listed: this town's frames of it are
    unclaimed, whoever owns a device of that DevEUI elsewhere.

    Under row-level security the granting owners' devices are not this municipality's to
    read; `lorakom_granted_dev_euis()` (migration 0011) tells which of its heard DevEUIs
    they registered, and nothing more. The table owner (no tenant set) reads them directly.
    """
    granting_owners = select(IngestGrant.owner_municipality_id).where(
        IngestGrant.source_municipality_id == municipality_id
    )
    claimed = or_(
        exists().where(
            Device.dev_eui == DeviceActivity.dev_eui,
            or_(Device.municipality_id == municipality_id, Device.municipality_id.in_(granting_owners)),
        ),
        DeviceActivity.dev_eui.in_(select(func.lorakom_granted_dev_euis())),
    )
    query = (
        select(DeviceActivity)
        .where(DeviceActivity.municipality_id == municipality_id, ~claimed)
        .order_by(DeviceActivity.dev_eui)
        .limit(limit + 1)
    )
    if after_dev_eui is not None:
        query = query.where(DeviceActivity.dev_eui > after_dev_eui)
    return list(session.scalars(query))


def was_heard(session: Session, *, municipality_id: int, dev_eui: str) -> bool:
    """Whether a device of this DevEUI in `municipality_id` has stored frames to claim and decode.

    Asked only of the frames it may claim (its own sources' and those of towns that it
    granted ingest), so the answer says nothing about other towns' pools.
    """
    towns = claimable_municipalities(session, municipality_id)
    heard = exists().where(DeviceActivity.dev_eui == dev_eui, DeviceActivity.municipality_id.in_(towns))
    return bool(session.scalar(select(heard)))


# --- CSV import and export -------------------------------------------------------------------

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
PROGRESS_EVERY_ROWS = 1000


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str
    dev_eui: str | None = None


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, with `dry_run`, would do); rows with errors changed nothing."""

    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    heard_device_ids: list[int] = field(default_factory=list)
    """Newly registered devices with uplinks stored before: their history wants decoding."""


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


# The import works set-based on a temporary staging table, filled by COPY: a file of
# 100,000 rows is one COPY and a handful of statements, whatever its size, and no
# statement carries more bind parameters than it has filters.
_STAGING = "pg_temp.device_import"  # never a permanent table of the same name
_CHANGING = ("name", "codec_id", "decoder_source", "use_case", "latitude", "longitude", "tags", "metadata")
"""The columns an import may change; a row equal in all of them leaves the device unchanged."""

_CREATE_STAGING = f"""
CREATE TEMPORARY TABLE {_STAGING} (
    line integer NOT NULL,
    dev_eui varchar(16) NOT NULL,
    name varchar(200) NOT NULL,
    codec_id varchar(200),
    decoder_source varchar(20),
    use_case varchar(40),
    latitude double precision,
    longitude double precision,
    tags jsonb NOT NULL,
    metadata jsonb NOT NULL
) ON COMMIT DROP
"""
_STAGING_TYPES = ["int4", "text", "text", "text", "text", "text", "float8", "float8", "jsonb", "jsonb"]

# A DevEUI repeated in the file is an error on its later lines, so that the outcome never
# depends on which of two rows happened to win.
_DROP_REPEATS = f"""
DELETE FROM {_STAGING} AS staged
USING (SELECT line, min(line) OVER (PARTITION BY dev_eui) AS first_line FROM {_STAGING}) AS seen
WHERE staged.line = seen.line AND seen.line > seen.first_line
RETURNING staged.line, staged.dev_eui, seen.first_line
"""

# Another municipality's DevEUI is an error on its line. Asked through a database function
# that answers existence only: an import confined to its municipality (`storage.tenancy`)
# cannot see other municipalities' devices, yet a DevEUI is unique across all of them.
# Taken out of the staging table before the upsert, which under row-level security must
# never meet a row it may not update.
_DROP_FOREIGN = f"""
DELETE FROM {_STAGING} AS staged
WHERE staged.dev_eui IN (
    SELECT lorakom_devices_elsewhere(
        %(municipality_id)s, (SELECT coalesce(array_agg(dev_eui::text), '{{}}') FROM {_STAGING})
    )
)
RETURNING staged.line, staged.dev_eui
"""

_CURRENT = ", ".join(f"device.{name}" for name in _CHANGING)
_STAGED = ", ".join(f"staged.{name}" for name in _CHANGING)
_INCOMING = ", ".join(f"excluded.{name}" for name in _CHANGING)

_CLASSIFY = f"""
SELECT
    count(*) FILTER (WHERE device.id IS NULL),
    count(*) FILTER (WHERE device.id IS NOT NULL AND ({_CURRENT}) IS DISTINCT FROM ({_STAGED})),
    count(*) FILTER (WHERE device.id IS NOT NULL AND ({_CURRENT}) IS NOT DISTINCT FROM ({_STAGED}))
FROM {_STAGING} AS staged
LEFT JOIN device ON device.dev_eui = staged.dev_eui
WHERE device.id IS NULL OR device.municipality_id = %(municipality_id)s
"""

_UPSERT = f"""
WITH written AS (
    INSERT INTO device (municipality_id, dev_eui, {", ".join(_CHANGING)})
    SELECT %(municipality_id)s, staged.dev_eui, {_STAGED} FROM {_STAGING} AS staged ORDER BY staged.line
    ON CONFLICT (dev_eui) DO UPDATE
    SET {", ".join(f"{name} = excluded.{name}" for name in _CHANGING)}, updated_at = now()
    WHERE device.municipality_id = excluded.municipality_id
      AND ({_CURRENT}) IS DISTINCT FROM ({_INCOMING})
    RETURNING device.id, device.dev_eui, xmax = 0 AS inserted
)
SELECT
    count(*) FILTER (WHERE inserted),
    count(*) FILTER (WHERE NOT inserted),
    coalesce(
        array_agg(id ORDER BY id) FILTER (
            WHERE inserted
              AND EXISTS (
                  SELECT FROM device_activity
                  WHERE device_activity.dev_eui = written.dev_eui
                    AND (
                        device_activity.municipality_id = %(municipality_id)s
                        OR device_activity.municipality_id IN (
                            SELECT source_municipality_id FROM ingest_grant
                            WHERE owner_municipality_id = %(municipality_id)s
                        )
                    )
              )
        ),
        '{{}}'
    )
FROM written
"""


def registered_elsewhere(session: Session, municipality_id: int, dev_euis: Sequence[str]) -> set[str]:
    """Which of `dev_euis` another municipality registered.

    Through a database function: a session confined to `municipality_id` (`storage.tenancy`)
    cannot see other municipalities' devices, yet a DevEUI is unique across all of them.
    """
    found = session.execute(
        select(func.lorakom_devices_elsewhere(municipality_id, cast(list(dev_euis), ARRAY(Text))))
    )
    return set(found.scalars())


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
    once, row by row, into a staging table; the checks that need the database (repeats,
    another municipality's DevEUI) and the upsert are set-based statements over it, so
    memory and the number of statements stay the same for any size. With `dry_run` the
    same checks run and the outcome is counted from the staging table, nothing is
    written. `progress` is called with the number of rows just read, for a progress bar.
    The caller commits.
    """
    report = ImportReport(dry_run=dry_run)
    parameters = {"municipality_id": municipality_id}
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, psycopg.Connection), "the engine's driver is psycopg 3"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_STAGING}")
        cursor.execute(_CREATE_STAGING)
        _stage(cursor, parse_device_csv(lines, report), report, progress)
        for line, dev_eui, first_line in cursor.execute(_DROP_REPEATS).fetchall():
            message = f"DevEUI repeats line {first_line}"
            report.errors.append(RowError(line=line, message=message, dev_eui=dev_eui))
        foreign = cursor.execute(_DROP_FOREIGN, parameters).fetchall()
        if dry_run:
            report.created, report.updated, report.unchanged = _one(cursor, _CLASSIFY, parameters)
        else:
            created, updated, heard = _one(cursor, _UPSERT, parameters)
            (staged,) = _one(cursor, f"SELECT count(*) FROM {_STAGING}", {})
            report.created, report.updated, report.heard_device_ids = created, updated, list(heard)
            report.unchanged = staged - created - updated
        for line, dev_eui in foreign:
            message = "DevEUI is registered in another municipality"
            report.errors.append(RowError(line=line, message=message, dev_eui=dev_eui))
        cursor.execute(f"DROP TABLE {_STAGING}")
    report.errors.sort(key=lambda error: error.line)
    return report


def _one(cursor: psycopg.Cursor[Any], statement: str, parameters: dict[str, Any]) -> tuple[Any, ...]:
    row = cursor.execute(statement, parameters).fetchone()
    assert row is not None, "an aggregate answers one row"
    return tuple(row)


def _stage(
    cursor: psycopg.Cursor[Any],
    specs: Iterable[tuple[int, DeviceSpec]],
    report: ImportReport,
    progress: Callable[[int], object] | None,
) -> None:
    reported = 0
    with cursor.copy(f"COPY {_STAGING} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_STAGING_TYPES)
        for line, spec in specs:
            copy.write_row(
                (
                    line,
                    spec.dev_eui,
                    spec.name,
                    spec.codec_id,
                    spec.decoder_source,
                    spec.use_case.value,
                    spec.latitude,
                    spec.longitude,
                    spec.tags,
                    spec.metadata.model_dump(exclude_none=True),
                )
            )
            if progress is not None and report.rows - reported >= PROGRESS_EVERY_ROWS:
                progress(report.rows - reported)
                reported = report.rows
    if progress is not None and report.rows > reported:
        progress(report.rows - reported)


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


def count_stored_frames(session: Session, device: Device, since: datetime | None) -> int:
    """Raw frames of a device at or after `since`: what a redecode will go through (as it selects them)."""
    towns = claimable_municipalities(session, device.municipality_id)
    query = (
        select(func.count())
        .select_from(UplinkRow)
        .where(UplinkRow.dev_eui == device.dev_eui, UplinkRow.municipality_id.in_(towns))
    )
    if since is not None:
        query = query.where(UplinkRow.received_at >= since)
    return int(session.scalar(query) or 0)
