"""The device import at its documented size: time and peak memory for 100,000 rows.

    python bench/bench_import.py [--rows 100000]

Writes a CSV of `--rows` devices with every column filled (a few rows broken on
purpose), then imports it the way `lorakom devices import` and the API do
(`services.device_import.import_devices`, reading the open file): a dry run on an empty
municipality, the real import, the same file again (all unchanged), and a dry run
of it. Each run is timed once plainly and once under tracemalloc for the peak of
Python's allocations, which must not grow with the file: rows are streamed into a
staging table, not held.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bench.postgres import benchmark_server, fresh_migrated_database
from services.device_import import CSV_COLUMNS, import_devices
from storage.database import create_database_engine
from storage.device_import import ImportReport
from storage.municipalities import create_municipality

BROKEN_EVERY = 10_000


def write_csv(path: Path, rows: int) -> None:
    """Rows with every column filled, one broken row in every `BROKEN_EVERY`."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(CSV_COLUMNS) + "\n")
        for index in range(rows):
            if index % BROKEN_EVERY == BROKEN_EVERY - 1:
                handle.write(f"not-a-dev-eui,Broken {index}" + "," * (len(CSV_COLUMNS) - 2) + "\n")
                continue
            values = {
                "dev_eui": secrets.token_hex(8),
                "name": f"Bin Marktplatz {index}",
                "codec_id": "milesight-iot/em310-udl",
                "decoder_source": "builtin",
                "use_case": "waste",
                "latitude": f"48.{index:06d}",
                "longitude": f"9.{index:06d}",
                "tags": "altstadt;glass",
                "bin_depth_mm": "1200",
                "sensor_offset_mm": "50",
                "expected_interval_s": "1200",
            }
            handle.write(",".join(values.get(column, "") for column in CSV_COLUMNS) + "\n")


def run(engine: Engine, municipality_id: int, path: Path, *, dry_run: bool, commit: bool) -> ImportReport:
    with Session(engine) as session, path.open(encoding="utf-8-sig", newline="") as lines:
        report = import_devices(session, municipality_id=municipality_id, lines=lines, dry_run=dry_run)
        if commit:
            session.commit()
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lorakom-bench-import-"))
    base, embedded = benchmark_server(workdir)
    try:
        url = fresh_migrated_database(base, "lorakom_bench_import")
        engine = create_database_engine(url, pool_size=1)
        csv_path = workdir / "devices.csv"
        write_csv(csv_path, args.rows)
        size_mib = csv_path.stat().st_size / 2**20
        print(f"{args.rows:,} rows, {size_mib:.1f} MiB of CSV")
        with Session(engine) as session:
            town = create_municipality(session, slug="bench-import", name="Bench", district=None)
            session.commit()
            town_id = town.id
        steps = [
            ("dry run, all new", True, False),
            ("import, all new", False, True),
            ("import again, all unchanged", False, True),
            ("dry run, all unchanged", True, False),
        ]
        for label, dry_run, commit in steps:
            # Peak memory first, on a twin that is rolled back: the same work as the timed run.
            tracemalloc.start()
            run(engine, town_id, csv_path, dry_run=dry_run, commit=False)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            started = time.perf_counter()
            report = run(engine, town_id, csv_path, dry_run=dry_run, commit=commit)
            elapsed = time.perf_counter() - started
            print(
                f"{label:30} {elapsed:6.2f} s  {args.rows / elapsed:9,.0f} rows/s  "
                f"peak {peak / 2**20:5.1f} MiB  created {report.created:,} updated {report.updated:,} "
                f"unchanged {report.unchanged:,} refused {len(report.errors):,}"
            )
        engine.dispose()
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
