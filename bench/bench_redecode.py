"""Re-decoding stored history in PostgreSQL: frames/s end to end, single process.

    python bench/bench_redecode.py [--frames 1000000]

Stores `--frames` raw uplinks of the demo fleet (real vendor payloads) as unclaimed,
registers the devices, then decodes every device's whole history again the way
`lorakom redecode` and a late registration do: stream the frames, decode them, copy
the readings in, update each frame's decode result, rebuild the latest state.
Target (issue: decoders): at least 20,000 frames/s.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.postgres import benchmark_server, fresh_migrated_database
from cli.demo import register_fleet
from cli.simulator.fleet import demo_fleet
from cli.simulator.publisher import generate
from decoders import CodecRegistry
from domain.ids import DevEui
from domain.uplink import NetworkServer, Uplink
from ingest.adapters import parse_message
from services.frame_decoding import decode_stored_frames
from services.redecoding import redecode_devices
from storage.database import create_database_engine
from storage.device_registry import load_devices
from storage.redecode import StoredFrame

TARGET = 20_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="devices redecoded at a time")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lorakom-bench-redecode-"))
    base, embedded = benchmark_server(workdir)
    try:
        url = fresh_migrated_database(base, "lorakom_bench_redecode")

        # A pool of parsed uplinks, repeated at later times up to the wanted count.
        pool: list[Uplink] = []
        for topic, body in generate(20_000):
            kind = NetworkServer.TTS if topic.startswith("v3/") else NetworkServer.CHIRPSTACK_V4
            event = parse_message(kind, topic, body)
            if isinstance(event, Uplink) and event.dev_eui is not None:
                pool.append(event)
        started = time.perf_counter()
        start = datetime(2025, 1, 1, tzinfo=UTC)
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO municipality (slug, name) VALUES ('bench', 'Bench')")
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY uplink (received_at, uplink_key, municipality_id, source, network_server, dev_eui, "
                    "f_port, f_cnt, payload, decode_status) FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(
                    ["timestamptz", "text", "int4", "text", "text", "text", "int2", "int8", "bytea", "text"]
                )
                for n in range(args.frames):
                    uplink = pool[n % len(pool)]
                    copy.write_row(
                        (
                            start + timedelta(seconds=n * 3),
                            f"bench-{n}",
                            1,
                            "bench",
                            uplink.network_server.value,
                            uplink.dev_eui,
                            uplink.f_port,
                            n,
                            uplink.payload,
                            "unclaimed",
                        )
                    )
            conn.commit()
            # Stored history has long been vacuumed when anyone redecodes it (autovacuum runs
            # after inserts); without this the redecode would pay for setting every frame's
            # hint bits and writing out the freshly loaded pages.
            conn.autocommit = True
            conn.execute("VACUUM (ANALYZE) uplink")
            conn.autocommit = False
        print(f"stored {args.frames:,} raw frames in {time.perf_counter() - started:.1f}s")

        engine = create_database_engine(url)
        register_fleet(engine, demo_fleet())
        codecs = CodecRegistry()
        with psycopg.connect(url) as conn:
            profiles = load_devices(conn)
            devices = {p.dev_eui: p for p in profiles}

        # Decoding alone, on a sample, to split the time.
        sample = [u for u in pool if u.dev_eui in devices][:20_000]
        by_device: dict[DevEui, list[StoredFrame]] = {}
        for uplink in sample:
            assert uplink.dev_eui is not None
            by_device.setdefault(uplink.dev_eui, []).append(
                StoredFrame(uplink.received_at, uplink.uplink_key, uplink.f_port, uplink.payload, None)
            )
        started = time.perf_counter()
        for dev_eui, frames_of_device in by_device.items():
            decode_stored_frames(codecs, frames_of_device, devices[dev_eui])
        decode_us = (time.perf_counter() - started) / len(sample) * 1e6

        started = time.perf_counter()
        report = redecode_devices(
            engine, [p.device_id for p in profiles], codecs=codecs, workers=args.workers
        )
        frames, readings, failed = report.frames, report.readings, report.failed
        elapsed = time.perf_counter() - started
        rate = frames / elapsed
        print(
            f"redecoded {frames:,} frames of {len(profiles)} devices in {elapsed:.1f}s: {rate:,.0f} frames/s "
            f"({rate / TARGET:.0%} of the {TARGET:,}/s target); {readings:,} readings, {failed:,} failed"
        )
        print(
            f"  decoding alone: {decode_us:.1f} µs/frame ({1e6 / decode_us:,.0f}/s); "
            f"database and copying: {1e6 / rate - decode_us:.1f} µs/frame"
        )
        engine.dispose()
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
