"""What loading the benchmark's database took: rows, seconds, sizes, and an estimate at the issue's size."""

from __future__ import annotations

from bench.api_fleet import SLOTS_PER_DAY, Fleet
from bench.api_loader import LoadReport


def gib(size: float) -> str:
    return f"{size / 2**30:.2f} GiB"


def print_load(report: LoadReport, fleet: Fleet, months: float, devices: int) -> None:
    print("\nload")
    for table, (rows, seconds) in report.tables.items():
        print(f"  {table:<26} {rows:>12,} rows {seconds:>8.1f} s {rows / max(seconds, 1e-9):>12,.0f} rows/s")
    print(f"  {'VACUUM ANALYZE':<26} {'':>17} {report.vacuum_s:>8.1f} s")
    rows_total = sum(rows for rows, _ in report.tables.values())
    print(
        f"  total {rows_total:,} rows in {report.seconds:.0f} s ({rows_total / report.seconds:,.0f} rows/s); "
        f"database {gib(report.database_bytes)}: "
        + ", ".join(f"{table} {gib(size)}" for table, size in report.sizes.items())
    )
    readings, reading_s = report.tables["reading"]
    full_readings = readings * (2000 / devices) * (12 / months)
    frame_scale = 2000 / devices * 30 / max(1, (fleet.end_slot - fleet.uplink_first_slot) / SLOTS_PER_DAY)
    frame_s = report.tables["uplink"][1] + report.tables["reception"][1]
    frame_bytes = report.sizes["uplink"] + report.sizes["reception"]
    estimate_s = full_readings / (readings / reading_s) + frame_s * frame_scale
    estimate_s += report.vacuum_s * full_readings / readings
    estimate_bytes = report.sizes["reading"] / readings * full_readings + frame_bytes * frame_scale
    print(
        f"  issue size (2,000 devices x 12 months, 30 days of frames), scaled linearly from this load: "
        f"{full_readings / 1e6:.0f} M readings, about {estimate_s / 60:.0f} min and "
        f"{gib(estimate_bytes)}"
    )
