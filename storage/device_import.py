"""The device import's database side: validated rows staged by COPY, checked and upserted set-based.

A file of 100,000 rows is one COPY and a handful of statements, whatever its size,
and no statement carries more bind parameters than it has filters. Reading and
validating the CSV is `services.device_import`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.orm import Session

from domain.device_fields import DeviceSpec

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


def write_devices(
    session: Session,
    *,
    municipality_id: int,
    specs: Iterable[tuple[int, DeviceSpec]],
    report: ImportReport,
    progress: Callable[[int], object] | None = None,
) -> ImportReport:
    """Register or update the validated rows `specs` (each with its line), counting into `report`.

    The rows are staged by COPY as they come; the checks that need the database
    (repeats, another municipality's DevEUI) and the upsert are set-based statements
    over the staging table, so memory and the number of statements stay the same for
    any size. With `report.dry_run` the same checks run and the outcome is counted
    from the staging table, nothing is written. `progress` is called with the number
    of rows just read, for a progress bar. The caller commits.
    """
    parameters = {"municipality_id": municipality_id}
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, psycopg.Connection), "the engine's driver is psycopg 3"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_STAGING}")
        cursor.execute(_CREATE_STAGING)
        _stage(cursor, specs, report, progress)
        for line, dev_eui, first_line in cursor.execute(_DROP_REPEATS).fetchall():
            message = f"DevEUI repeats line {first_line}"
            report.errors.append(RowError(line=line, message=message, dev_eui=dev_eui))
        foreign = cursor.execute(_DROP_FOREIGN, parameters).fetchall()
        if report.dry_run:
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
