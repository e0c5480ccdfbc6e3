"""Stored raw frames read back and their new decode results written: the redecode's database side.

The decoding and the threads that overlap it with this work are `services.redecoding`.
Redecoding one device is one transaction: its readings in the range are deleted
(`start_rewrite`), each chunk of stored frames (`StoredFrames`) decoded again is
written (`ChunkWriter`: frame results by UPDATE from staging, readings by COPY), and
`device_state` is rebuilt from the readings (`rebuild_state`).

A device's stored frames are those of its DevEUI that its own municipality's
sources heard, or the sources of a town its owner granted ingest
(`CLAIMABLE_TOWNS_SQL`): never another town's unclaimed frames of the same DevEUI,
which stay that town's.

Most of the database's work is the UPDATE of the wide `uplink` rows: claimed frames
leave the partial index of unclaimed frames, so the update cannot be HOT, and the
first change of a page after a checkpoint writes the whole page to the WAL; the join
is bounded to the chunk's time range so that it reads only the chunk's frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine

from domain.reading import Reading
from domain.uplink import JsonObject
from storage.database import libpq_url
from storage.device_registry import DeviceProfile

FETCH_ROWS = 5000


@dataclass(slots=True)
class StoredFrame:
    """What a decoder needs of a stored uplink."""

    received_at: datetime
    uplink_key: str
    f_port: int | None
    payload: bytes
    network_decoded: JsonObject | None


@dataclass(slots=True)
class DecodedFrame:
    status: str
    decoded: JsonObject | None = None
    decoder_source: str | None = None
    codec_id: str | None = None
    error: str | None = None
    readings: Sequence[Reading] = ()


@dataclass(slots=True)
class RedecodeReport:
    devices: int = 0
    frames: int = 0
    decoded: int = 0
    failed: int = 0
    readings: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, other: RedecodeReport) -> None:
        self.devices += other.devices
        self.frames += other.frames
        self.decoded += other.decoded
        self.failed += other.failed
        self.readings += other.readings
        for reason, count in other.errors.items():
            self.errors[reason] = self.errors.get(reason, 0) + count


_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS stage_redecode (
    received_at timestamptz, uplink_key text, decode_status text, decoded text,
    decoder_source text, codec_id text, decode_error text
) ON COMMIT DROP;
CREATE TEMP TABLE IF NOT EXISTS stage_redecode_reading (
    time timestamptz, quantity text, value float8, quality int2
) ON COMMIT DROP;
"""

CLAIMABLE_TOWNS_SQL = """
SELECT %(owner)s::int
UNION SELECT source_municipality_id FROM ingest_grant WHERE owner_municipality_id = %(owner)s
"""
"""The municipalities whose sources' frames a device of `owner` may claim: its own and those it granted."""

_FRAMES_SQL = """
SELECT received_at, uplink_key, f_port, payload, network_decoded
FROM uplink
WHERE dev_eui = %(dev_eui)s AND municipality_id = ANY(%(claimable)s)
  AND received_at >= %(since)s AND received_at < %(until)s
  AND (NOT %(only_unclaimed)s OR decode_status = 'unclaimed')
ORDER BY received_at
"""

# Frames whose results did not change are left alone (JSON compared as values, so 1 and
# 1.0 are the same): redecoding after a codec change rewrites only the frames it changed,
# without their new row versions, index entries and WAL.
_APPLY_SQL = """
UPDATE uplink AS u SET
    device_id = %(device_id)s, municipality_id = %(municipality_id)s,
    decode_status = s.decode_status, decoded = s.decoded::jsonb, decoder_source = s.decoder_source,
    codec_id = s.codec_id, decode_error = s.decode_error
FROM stage_redecode AS s
WHERE u.received_at = s.received_at AND u.uplink_key = s.uplink_key AND u.dev_eui = %(dev_eui)s
  AND u.municipality_id = ANY(%(claimable)s)
  AND u.received_at BETWEEN %(chunk_first)s AND %(chunk_last)s
  AND (u.device_id, u.municipality_id, u.decode_status, u.decoder_source, u.codec_id, u.decode_error,
       u.decoded)
      IS DISTINCT FROM (%(device_id)s::int, %(municipality_id)s::int, s.decode_status, s.decoder_source,
                        s.codec_id, s.decode_error, s.decoded::jsonb)
"""

# The latest reading per quantity, found by skipping through the primary key (device,
# quantity, time) from one quantity to the next: a few index probes per quantity instead
# of reading and sorting the device's whole history.
_STATE_SQL = """
WITH RECURSIVE quantities AS (
    (SELECT quantity FROM reading WHERE device_id = %(device_id)s ORDER BY quantity LIMIT 1)
    UNION ALL
    SELECT (
        SELECT r.quantity FROM reading AS r
        WHERE r.device_id = %(device_id)s AND r.quantity > q.quantity ORDER BY r.quantity LIMIT 1
    )
    FROM quantities AS q WHERE q.quantity IS NOT NULL
)
INSERT INTO device_state (device_id, quantity, time, value, quality)
SELECT latest.device_id, latest.quantity, latest.time, latest.value, latest.quality
FROM quantities AS q
CROSS JOIN LATERAL (
    SELECT r.device_id, r.quantity, r.time, r.value, r.quality FROM reading AS r
    WHERE r.device_id = %(device_id)s AND r.quantity = q.quantity ORDER BY r.time DESC LIMIT 1
) AS latest
WHERE q.quantity IS NOT NULL
"""

_FAR_PAST = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_FAR_FUTURE = datetime.fromisoformat("9999-01-01T00:00:00+00:00")


def codec_device_ids(engine: Engine, codec_id: str) -> list[int]:
    """Every device using `codec_id`, by id."""
    with psycopg.connect(libpq_url(engine.url.render_as_string(hide_password=False))) as conn:
        return [
            row[0]
            for row in conn.execute("SELECT id FROM device WHERE codec_id = %s ORDER BY id", (codec_id,))
        ]


def count_frames(
    engine: Engine, *, dev_eui: str | None = None, codec_id: str | None = None, since: datetime | None = None
) -> int:
    """How many stored frames a redecode would touch: the total of its progress bar."""
    with psycopg.connect(libpq_url(engine.url.render_as_string(hide_password=False))) as conn:
        # Counted as `_FRAMES_SQL` selects them: the frames of the registered device's claimable towns.
        claimable = (
            "(u.municipality_id = d.municipality_id OR u.municipality_id IN (SELECT g.source_municipality_id "
            "FROM ingest_grant g WHERE g.owner_municipality_id = d.municipality_id))"
        )
        if dev_eui is not None:
            row = conn.execute(
                "SELECT count(*) FROM uplink u JOIN device d ON d.dev_eui = u.dev_eui "
                f"WHERE d.dev_eui = %s AND u.received_at >= %s AND {claimable}",
                (dev_eui, since or _FAR_PAST),
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT count(*) FROM uplink u JOIN device d ON d.dev_eui = u.dev_eui "
                f"WHERE d.codec_id = %s AND u.received_at >= %s AND {claimable}",
                (codec_id, since or _FAR_PAST),
            ).fetchone()
    return int(row[0]) if row else 0


def _json_text(decoded: JsonObject) -> str:
    """The decoded object as the ingest path stores it (non-string keys allowed)."""
    return orjson.dumps(decoded, option=orjson.OPT_NON_STR_KEYS).decode()


def redecode_connection(engine: Engine) -> psycopg.Connection[Any]:
    """A session for redecoding.

    Autocommit outside the explicit transaction of each device, so a session reused
    for the next device never holds an implicit transaction open (where the device's
    transaction would become a mere savepoint). In UTC, so psycopg reads and writes
    timestamps with a fixed offset, several times faster than through a named zone;
    redecoding handles a few per frame.
    """
    return psycopg.connect(
        libpq_url(engine.url.render_as_string(hide_password=False)),
        autocommit=True,
        options="-c TimeZone=UTC",
    )


def frame_range(
    conn: psycopg.Connection[Any],
    profile: DeviceProfile,
    *,
    since: datetime | None,
    until: datetime | None,
    only_unclaimed: bool,
) -> dict[str, Any]:
    """The parameters naming a device's stored frames in [since, until) for the statements here."""
    claimable = [row[0] for row in conn.execute(CLAIMABLE_TOWNS_SQL, {"owner": profile.municipality_id})]
    return {
        "dev_eui": profile.dev_eui,
        "device_id": profile.device_id,
        "municipality_id": profile.municipality_id,
        "claimable": claimable,
        "since": since or _FAR_PAST,
        "until": until or _FAR_FUTURE,
        "only_unclaimed": only_unclaimed,
    }


def start_rewrite(conn: psycopg.Connection[Any], frames: dict[str, Any]) -> None:
    """Within the device's transaction: staging tables, and the range's readings deleted unless
    only unclaimed frames are decoded (then the device's existing readings are kept)."""
    conn.execute(_STAGE_DDL)
    if not frames["only_unclaimed"]:
        conn.execute(
            "DELETE FROM reading WHERE device_id = %(device_id)s AND time >= %(since)s AND time < %(until)s",
            frames,
        )


def rebuild_state(conn: psycopg.Connection[Any], frames: dict[str, Any]) -> None:
    """The device's `device_state` from its readings, once its frames are written."""
    conn.execute("DELETE FROM device_state WHERE device_id = %(device_id)s", frames)
    conn.execute(_STATE_SQL, frames)


class StoredFrames:
    """The device's stored frames through a server-side cursor, a chunk at a time."""

    def __init__(self, conn: psycopg.Connection[Any], params: dict[str, Any]) -> None:
        self._cursor: psycopg.ServerCursor[Any] = conn.cursor(name="redecode_frames", binary=True)
        self._params = params
        self._started = False

    def fetch(self) -> list[StoredFrame]:
        """The next chunk; empty at the end, and on every call after that."""
        if not self._started:
            self._cursor.execute(_FRAMES_SQL, self._params)
            self._started = True
        rows = self._cursor.fetchmany(FETCH_ROWS)
        return [StoredFrame(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    def close(self) -> None:
        self._cursor.close()


class ChunkWriter:
    """Writes decoded chunks: frame results by UPDATE from staging, readings by COPY.

    When the range's readings were deleted first, new readings are copied straight into
    `reading` (no conflict is possible once repeats within the run are dropped), which
    is several times cheaper than staging them and inserting with ON CONFLICT.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        profile: DeviceProfile,
        params: dict[str, Any],
        report: RedecodeReport,
        *,
        replace_readings: bool,
    ) -> None:
        self.conn = conn
        self.profile = profile
        self.params = params
        self.report = report
        self.replace_readings = replace_readings
        # Frames come in time order, so two readings can only collide at the latest time seen.
        self.latest_time: datetime | None = None
        self.written_at_latest_time: set[str] = set()

    def write(self, frames: list[StoredFrame], results: list[DecodedFrame]) -> None:
        with self.conn.cursor() as cur:
            cur.execute("TRUNCATE stage_redecode, stage_redecode_reading")
            with cur.copy("COPY stage_redecode FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["timestamptz", "text", "text", "text", "text", "text", "text"])
                for frame, result in zip(frames, results, strict=True):
                    copy.write_row(
                        (
                            frame.received_at,
                            frame.uplink_key,
                            result.status,
                            None if result.decoded is None else _json_text(result.decoded),
                            result.decoder_source,
                            result.codec_id,
                            result.error,
                        )
                    )
            # Bounded to the chunk's time range, the join reads the chunk's frames rather than
            # every frame of the device once per chunk.
            bounds = {"chunk_first": frames[0].received_at, "chunk_last": frames[-1].received_at}
            cur.execute(_APPLY_SQL, {**self.params, **bounds})
            if self.replace_readings:
                target = "COPY reading (time, quantity, value, quality, device_id) FROM STDIN (FORMAT BINARY)"
            else:
                target = "COPY stage_redecode_reading FROM STDIN (FORMAT BINARY)"
            with cur.copy(target) as copy:
                copy.set_types(
                    ["timestamptz", "text", "float8", "int2", "int4"][: 5 if self.replace_readings else 4]
                )
                self._copy_readings(copy, frames, results)
            if not self.replace_readings:
                cur.execute(
                    "INSERT INTO reading (device_id, quantity, time, value, quality) "
                    "SELECT %(device_id)s, quantity, time, value, quality FROM stage_redecode_reading "
                    "ON CONFLICT DO NOTHING",
                    self.params,
                )
        self._count(results)

    def _copy_readings(
        self, copy: psycopg.Copy, frames: list[StoredFrame], results: list[DecodedFrame]
    ) -> None:
        device_id = self.profile.device_id
        with_device = self.replace_readings
        write_row = copy.write_row
        copied = 0
        for frame, result in zip(frames, results, strict=True):
            time = frame.received_at
            if time != self.latest_time:
                self.latest_time = time
                self.written_at_latest_time = set()
            written = self.written_at_latest_time
            for reading in result.readings:
                quantity = reading.quantity
                if quantity in written:  # one value per quantity and time: the first wins, as on ingest
                    continue
                written.add(quantity)
                if with_device:
                    write_row((time, quantity, reading.value, int(reading.quality), device_id))
                else:
                    write_row((time, quantity, reading.value, int(reading.quality)))
                copied += 1
        self.report.readings += copied

    def _count(self, results: list[DecodedFrame]) -> None:
        report = self.report
        for result in results:
            report.frames += 1
            if result.error is None:
                report.decoded += 1
            else:
                report.failed += 1
                reason = result.error.split(" at byte")[0][:120]
                report.errors[reason] = report.errors.get(reason, 0) + 1
