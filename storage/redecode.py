"""Decoding stored raw frames again: after a codec change, a fixed bug, or a late registration.

Raw frames are never thrown away, so history is never stuck with the decoder it met
first. Redecoding one device is one transaction: its readings in the range are
deleted, every stored frame of it in the range is decoded again (by a callback, because
storage may not import the decoders), the new readings are copied in and the
frames' decode results updated, and `device_state` is rebuilt from the readings.
Running it twice gives the same rows: it is idempotent, and a crash half-way
leaves the old state.

A device's stored frames are those of its DevEUI that its own municipality's
sources heard, or the sources of a town its owner granted ingest
(`CLAIMABLE_TOWNS_SQL`): never another town's unclaimed frames of the same DevEUI,
which stay that town's.

Where the time goes, and why it is arranged so: frames come in chunks through a
binary server-side cursor, and the callback decodes a whole chunk (a JS codec then
runs in batches). While Python decodes one chunk, a second thread writes the
previous one and fetches the next on the device's connection. Most of the
database's work is the UPDATE of the wide `uplink` rows: claimed frames leave the
partial index of unclaimed frames, so the update cannot be HOT, and the first
change of a page after a checkpoint writes the whole page to the WAL; the join is
bounded to the chunk's time range so that it reads only the chunk's frames.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine

from domain.reading import Reading
from domain.uplink import JsonObject
from storage.database import libpq_url
from storage.device_registry import DeviceProfile, load_device

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


Decoder = Callable[[Sequence[StoredFrame], DeviceProfile], list[DecodedFrame]]
"""Decodes a chunk of one device's stored frames, one result per frame in order.

A chunk at a time rather than a frame at a time, so that a JS codec runs in batches.
"""


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


def redecode_device(
    engine: Engine,
    device_id: int,
    *,
    decoder: Decoder,
    since: datetime | None = None,
    until: datetime | None = None,
    only_unclaimed: bool = False,
    progress: Callable[[int], object] | None = None,
) -> RedecodeReport:
    """Decode one device's stored frames in [since, until) again and replace its readings there.

    `only_unclaimed` limits the work to frames stored before the device was known
    (what the bridge does when it first sees a newly registered device); then the
    device's existing readings are kept and only the new ones added.
    """
    with _connect(engine) as conn:
        return _redecode(
            conn,
            load_device(conn, device_id),
            decoder,
            since or _FAR_PAST,
            until or _FAR_FUTURE,
            only_unclaimed,
            progress,
        )


def redecode_codec(
    engine: Engine,
    codec_id: str,
    *,
    decoder: Decoder,
    since: datetime | None = None,
    progress: Callable[[int], object] | None = None,
    workers: int = 2,
) -> RedecodeReport:
    """Every device using `codec_id`, one transaction each."""
    with psycopg.connect(libpq_url(engine.url.render_as_string(hide_password=False))) as conn:
        ids = [
            row[0]
            for row in conn.execute("SELECT id FROM device WHERE codec_id = %s ORDER BY id", (codec_id,))
        ]
    return redecode_devices(engine, ids, decoder=decoder, since=since, progress=progress, workers=workers)


def redecode_devices(
    engine: Engine,
    device_ids: Sequence[int],
    *,
    decoder: Decoder,
    since: datetime | None = None,
    progress: Callable[[int], object] | None = None,
    workers: int = 2,
) -> RedecodeReport:
    """Several devices, `workers` at a time, each worker on its own connection, each device in
    its own transaction.

    The database's share of the work (updating frames, indexing readings) is most of
    it, so two connections let PostgreSQL use a second core while Python decodes. A
    worker keeps its connection from device to device: a new session costs a server
    process and its catalog caches, as much as decoding a few hundred frames.
    """
    report = RedecodeReport()
    lock = threading.Lock()
    sessions = threading.local()
    opened: list[psycopg.Connection[Any]] = []

    def one(device_id: int) -> None:
        conn: psycopg.Connection[Any] | None = getattr(sessions, "conn", None)
        if conn is None:
            conn = sessions.conn = _connect(engine)
            with lock:
                opened.append(conn)
        done = _redecode(
            conn, load_device(conn, device_id), decoder, since or _FAR_PAST, _FAR_FUTURE, False, progress
        )
        with lock:
            report.add(done)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="lorakom-redecode") as pool:
            for finished in [pool.submit(one, device_id) for device_id in device_ids]:
                finished.result()
    finally:
        for conn in opened:
            conn.close()
    return report


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


def _connect(engine: Engine) -> psycopg.Connection[Any]:
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


def _redecode(
    conn: psycopg.Connection[Any],
    profile: DeviceProfile,
    decoder: Decoder,
    since: datetime,
    until: datetime,
    only_unclaimed: bool,
    progress: Callable[[int], object] | None,
) -> RedecodeReport:
    report = RedecodeReport(devices=1)
    claimable = [row[0] for row in conn.execute(CLAIMABLE_TOWNS_SQL, {"owner": profile.municipality_id})]
    params = {
        "dev_eui": profile.dev_eui,
        "device_id": profile.device_id,
        "municipality_id": profile.municipality_id,
        "claimable": claimable,
        "since": since,
        "until": until,
        "only_unclaimed": only_unclaimed,
    }
    writer = _ChunkWriter(conn, profile, params, report, replace_readings=not only_unclaimed)
    with conn.transaction():
        conn.execute(_STAGE_DDL)
        if not only_unclaimed:
            conn.execute(
                "DELETE FROM reading WHERE device_id = %(device_id)s "
                "AND time >= %(since)s AND time < %(until)s",
                params,
            )
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lorakom-redecode") as database:
            # The connection's work for chunk n (writing it, then fetching chunk n+2) runs
            # on its own thread while this one decodes chunk n+1, so the server and Python
            # work at the same time.
            frames = _Frames(conn, params)

            def write_then_fetch(chunk: list[StoredFrame], results: list[DecodedFrame]) -> list[StoredFrame]:
                writer.write(chunk, results)
                return frames.fetch()

            chunk = frames.fetch()
            following: Future[list[StoredFrame]] = database.submit(frames.fetch)
            while chunk:
                results = decoder(chunk, profile)
                if len(results) != len(chunk):
                    raise ValueError(f"decoder gave {len(results)} results for {len(chunk)} frames")
                next_chunk = following.result()
                following = database.submit(write_then_fetch, chunk, results)
                if progress is not None:
                    progress(len(chunk))
                chunk = next_chunk
            following.result()
            frames.close()
        conn.execute("DELETE FROM device_state WHERE device_id = %(device_id)s", params)
        conn.execute(_STATE_SQL, params)
    return report


class _Frames:
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


class _ChunkWriter:
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
