"""Registered devices: one municipality's sensors, their codec and what they are for.

`DeviceSpec` is the one description of a device that the API's JSON, the CSV import
and the CLI all validate against, so that a device accepted by one path is accepted
by every other. Every change sets `updated_at = now()`: the ingest bridge refreshes
its device cache from that column alone.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy import Boolean, Text, cast, exists, func, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.errors import Conflict, NotFound
from domain.ids import parse_dev_eui
from storage.models import Device, DeviceActivity
from storage.models import Uplink as UplinkRow

PrintableText = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$")]
"""Text without control characters: PostgreSQL refuses NUL, and nobody means a tab in a name."""

Name = Annotated[PrintableText, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Label = Annotated[PrintableText, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
DevEuiText = Annotated[str, AfterValidator(parse_dev_eui)]

# Mirrors decoders.DecoderSource: storage may not import decoders (they are peers).
DecoderSourceName = Literal["builtin", "javascript", "network"]

IMPORT_BATCH_ROWS = 1000
TAG_SEPARATOR = ";"


class UseCase(StrEnum):
    PARKING = "parking"
    WASTE = "waste"
    SOIL = "soil"
    ENVIRONMENT = "environment"
    OTHER = "other"


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


def iter_devices(session: Session, *, municipality_id: int) -> Iterator[Device]:
    """Every device of a municipality, fetched in chunks, for exports of any size."""
    query = select(Device).where(Device.municipality_id == municipality_id).order_by(Device.id)
    yield from session.scalars(query.execution_options(yield_per=500))


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
    """DevEUIs heard on this municipality's sources that no municipality has registered."""
    registered = exists().where(Device.dev_eui == DeviceActivity.dev_eui)
    query = (
        select(DeviceActivity)
        .where(DeviceActivity.municipality_id == municipality_id, ~registered)
        .order_by(DeviceActivity.dev_eui)
        .limit(limit + 1)
    )
    if after_dev_eui is not None:
        query = query.where(DeviceActivity.dev_eui > after_dev_eui)
    return list(session.scalars(query))


def was_heard(session: Session, dev_eui: str) -> bool:
    """Whether uplinks of this DevEUI were stored before it was registered (history to decode)."""
    return bool(session.scalar(select(exists().where(DeviceActivity.dev_eui == dev_eui))))


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


def _spec_input(row: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row as the dictionary `DeviceSpec` validates: blanks are absent, tags are split."""
    values = {name: (text or "").strip() for name, text in row.items() if name in CSV_COLUMNS}
    data: dict[str, Any] = {
        name: text for name, text in values.items() if text and name not in METADATA_COLUMNS
    }
    if "tags" in data:
        data["tags"] = [tag.strip() for tag in data["tags"].split(TAG_SEPARATOR) if tag.strip()]
    data["metadata"] = {name: values[name] for name in METADATA_COLUMNS if values.get(name)}
    return data


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in detail['loc']) or 'row'}: {detail['msg']}"
        for detail in error.errors()
    )


def parse_device_csv(lines: Iterable[str], report: ImportReport) -> list[tuple[int, DeviceSpec]]:
    """Valid rows with their line numbers; every invalid row becomes a `RowError` in `report`.

    Line 1 is the header. A DevEUI repeated in the file is an error on its later line,
    so that the outcome never depends on which of two rows happened to win.
    """
    reader = csv.DictReader(lines)
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = {"dev_eui", "name"} - set(header)
    unknown = set(header) - set(CSV_COLUMNS)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(sorted(missing))}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(sorted(unknown))}")
        report.errors.append(RowError(line=1, message="; ".join(parts)))
        return []
    reader.fieldnames = header
    specs: list[tuple[int, DeviceSpec]] = []
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        report.rows += 1
        if None in row:
            report.errors.append(RowError(line=line, message="more values than columns"))
            continue
        try:
            spec = DeviceSpec.model_validate(_spec_input(row))
        except ValidationError as exc:
            report.errors.append(RowError(line=line, message=_describe(exc), dev_eui=row.get("dev_eui")))
            continue
        if spec.dev_eui in first_line:
            message = f"DevEUI repeats line {first_line[spec.dev_eui]}"
            report.errors.append(RowError(line=line, message=message, dev_eui=spec.dev_eui))
            continue
        first_line[spec.dev_eui] = line
        specs.append((line, spec))
    return specs


def registered_elsewhere(session: Session, municipality_id: int, dev_euis: Sequence[str]) -> set[str]:
    """Which of `dev_euis` another municipality registered.

    Through a database function: a session confined to `municipality_id` (`storage.tenancy`)
    cannot see other municipalities' devices, yet a DevEUI is unique across all of them.
    """
    found = session.execute(
        select(func.lorakom_devices_elsewhere(municipality_id, cast(list(dev_euis), ARRAY(Text))))
    )
    return set(found.scalars())


def _upsert_batch(
    session: Session, municipality_id: int, batch: Sequence[tuple[int, DeviceSpec]], report: ImportReport
) -> list[int]:
    """Insert new devices, update changed ones; returns the ids of the newly inserted devices."""
    elsewhere = registered_elsewhere(session, municipality_id, [spec.dev_eui for _, spec in batch])
    rows = []
    for line, spec in batch:
        if spec.dev_eui in elsewhere:
            message = "DevEUI is registered in another municipality"
            report.errors.append(RowError(line=line, message=message, dev_eui=spec.dev_eui))
            continue
        rows.append(_columns_of(municipality_id, spec))
    if not rows:
        return []
    statement = insert(Device).values(rows)
    changing = ("name", "codec_id", "decoder_source", "use_case", "latitude", "longitude", "tags", "metadata")
    current = tuple_(*(Device.__table__.c[name] for name in changing))
    incoming = tuple_(*(statement.excluded[name] for name in changing))
    upsert = statement.on_conflict_do_update(
        index_elements=[Device.dev_eui],
        set_={**{name: statement.excluded[name] for name in changing}, "updated_at": func.now()},
        where=(Device.municipality_id == statement.excluded.municipality_id)
        & current.op("IS DISTINCT FROM")(incoming),
    ).returning(Device.id, literal_column("xmax = 0", Boolean).label("inserted"))
    written = session.execute(upsert).all()
    inserted = [device_id for device_id, was_inserted in written if was_inserted]
    report.created += len(inserted)
    report.updated += len(written) - len(inserted)
    report.unchanged += len(rows) - len(written)
    return inserted


def import_devices(
    session: Session,
    *,
    municipality_id: int,
    lines: Iterable[str],
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Register or update the devices of a CSV file (columns `CSV_COLUMNS`, header first).

    Good rows go in while bad rows are reported by line number; re-importing the same
    file changes nothing (upsert by DevEUI within the municipality). With `dry_run`
    the same work happens inside a savepoint that is rolled back, so the report is
    exact. `progress` is called with the number of rows just handled, for a progress bar.
    The caller commits.
    """
    report = ImportReport(dry_run=dry_run)
    specs = parse_device_csv(lines, report)
    if progress is not None and report.rows > len(specs):
        progress(report.rows - len(specs))
    inserted: list[int] = []
    savepoint = session.begin_nested()
    for start in range(0, len(specs), IMPORT_BATCH_ROWS):
        batch = specs[start : start + IMPORT_BATCH_ROWS]
        inserted += _upsert_batch(session, municipality_id, batch, report)
        if progress is not None:
            progress(len(batch))
    if dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()
        if inserted:
            heard = select(Device.id).where(
                Device.id.in_(inserted), exists().where(DeviceActivity.dev_eui == Device.dev_eui)
            )
            report.heard_device_ids = list(session.scalars(heard))
    report.errors.sort(key=lambda error: error.line)
    return report


def device_csv_rows(devices: Iterable[Device]) -> Iterator[list[str]]:
    """Devices as CSV rows in the import's own format, header first, so an export re-imports unchanged."""
    yield list(CSV_COLUMNS)
    for device in devices:
        metadata = device.metadata_ or {}
        yield [
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


def count_stored_frames(session: Session, dev_eui: str, since: datetime | None) -> int:
    """Raw frames of a DevEUI at or after `since`: what a redecode will go through."""
    query = select(func.count()).select_from(UplinkRow).where(UplinkRow.dev_eui == dev_eui)
    if since is not None:
        query = query.where(UplinkRow.received_at >= since)
    return int(session.scalar(query) or 0)
