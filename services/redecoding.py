"""Decoding stored raw frames again: after a codec change, a fixed bug, or a late registration.

Raw frames are never thrown away, so history is never stuck with the decoder it met
first. Redecoding one device is one transaction (`storage.redecode` holds its
statements): its readings in the range are deleted, every stored frame of it in the
range is decoded again by the live path's rules (`services.frame_decoding`), the new
readings are copied in and the frames' decode results updated, and `device_state` is
rebuilt from the readings. Running it twice gives the same rows: it is idempotent, and
a crash half-way leaves the old state.

Where the time goes, and why it is arranged so: frames come in chunks through a
binary server-side cursor, and a whole chunk is decoded at once (a JS codec then
runs in batches). While Python decodes one chunk, a second thread writes the
previous one and fetches the next on the device's connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from decoders import CodecRegistry
from services.frame_decoding import decode_stored_frames
from storage.device_registry import load_device
from storage.redecode import (
    ChunkWriter,
    DecodedFrame,
    RedecodeReport,
    StoredFrame,
    StoredFrames,
    codec_device_ids,
    frame_range,
    rebuild_state,
    redecode_connection,
    start_rewrite,
)


def redecode_device(
    engine: Engine,
    device_id: int,
    *,
    codecs: CodecRegistry,
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
    with redecode_connection(engine) as conn:
        return _redecode(conn, device_id, codecs, since, until, only_unclaimed, progress)


def redecode_codec(
    engine: Engine,
    codec_id: str,
    *,
    codecs: CodecRegistry,
    since: datetime | None = None,
    progress: Callable[[int], object] | None = None,
    workers: int = 2,
) -> RedecodeReport:
    """Every device using `codec_id`, one transaction each."""
    ids = codec_device_ids(engine, codec_id)
    return redecode_devices(engine, ids, codecs=codecs, since=since, progress=progress, workers=workers)


def redecode_devices(
    engine: Engine,
    device_ids: Sequence[int],
    *,
    codecs: CodecRegistry,
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
            conn = sessions.conn = redecode_connection(engine)
            with lock:
                opened.append(conn)
        done = _redecode(conn, device_id, codecs, since, None, False, progress)
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


def _redecode(
    conn: psycopg.Connection[Any],
    device_id: int,
    codecs: CodecRegistry,
    since: datetime | None,
    until: datetime | None,
    only_unclaimed: bool,
    progress: Callable[[int], object] | None,
) -> RedecodeReport:
    profile = load_device(conn, device_id)
    report = RedecodeReport(devices=1)
    scope = frame_range(conn, profile, since=since, until=until, only_unclaimed=only_unclaimed)
    writer = ChunkWriter(conn, profile, scope, report, replace_readings=not only_unclaimed)
    with conn.transaction():
        start_rewrite(conn, scope)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lorakom-redecode") as database:
            # The connection's work for chunk n (writing it, then fetching chunk n+2) runs
            # on its own thread while this one decodes chunk n+1, so the server and Python
            # work at the same time.
            frames = StoredFrames(conn, scope)

            def write_then_fetch(chunk: list[StoredFrame], results: list[DecodedFrame]) -> list[StoredFrame]:
                writer.write(chunk, results)
                return frames.fetch()

            chunk = frames.fetch()
            following: Future[list[StoredFrame]] = database.submit(frames.fetch)
            while chunk:
                results = decode_stored_frames(codecs, chunk, profile)
                if len(results) != len(chunk):
                    raise ValueError(f"decoder gave {len(results)} results for {len(chunk)} frames")
                next_chunk = following.result()
                following = database.submit(write_then_fetch, chunk, results)
                if progress is not None:
                    progress(len(chunk))
                chunk = next_chunk
            following.result()
            frames.close()
        rebuild_state(conn, scope)
    return report
