"""What confining a request to its municipality costs (row-level security, `storage.tenancy`).

Two towns of 200 devices each with 30 days of readings every 15 minutes. Measured on one
pooled connection, each case the median of many runs, the two ways alternating:

- a transaction's start: the one extra statement (`set_config` of role, municipality and
  search_path) against a bare `SELECT 1`;
- a history read (one device, one quantity, 30 days, hourly buckets), as the app's login
  and as the tenant role through the filtered `reading` view;
- the latest values of a town (`device_state` joined to `device`), both ways.

    python -m bench.bench_tenancy
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.postgres import benchmark_server, fresh_migrated_database
from storage.database import create_database_engine, libpq_url
from storage.tenancy import act_as_tenant

DEVICES_PER_TOWN = 200
DAYS = 30

HISTORY = text(
    "SELECT date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-03') AS bucket, avg(value) FROM reading "
    "WHERE device_id = :device AND quantity = 'temperature' AND time >= now() - INTERVAL '30 days' "
    "GROUP BY 1 ORDER BY 1"
)
LATEST = text(
    "SELECT d.dev_eui, s.quantity, s.value FROM device_state s JOIN device d ON d.id = s.device_id "
    "WHERE d.municipality_id = :town ORDER BY d.id"
)


def seed(url: str) -> tuple[int, int]:
    with psycopg.connect(libpq_url(url)) as conn:
        towns = []
        for slug in ("bench-a", "bench-b"):
            row = conn.execute(
                "INSERT INTO municipality (slug, name) VALUES (%s, %s) RETURNING id", (slug, slug)
            )
            towns.append(row.fetchone()[0])  # type: ignore[index]
        for index, town in enumerate(towns):
            conn.execute(
                "INSERT INTO device (municipality_id, dev_eui, name, use_case) "
                "SELECT %s, lpad(to_hex(%s * 100000 + n), 16, '0'), 'd' || n, 'environment' "
                "FROM generate_series(1, %s) AS n",
                (town, index, DEVICES_PER_TOWN),
            )
        conn.execute(
            "INSERT INTO reading (device_id, quantity, time, value) "
            "SELECT d.id, 'temperature', now() - n * INTERVAL '15 minutes', random() * 30 "
            "FROM device d, generate_series(0, %s) AS n",
            (DAYS * 96,),
        )
        conn.execute(
            "INSERT INTO device_state (device_id, quantity, time, value) "
            "SELECT id, 'temperature', now(), 20 FROM device"
        )
        conn.execute("ANALYZE")
    return towns[0], towns[1]


def median_ms(
    plain: Callable[[], object], confined: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Both cases' medians, run alternately so that a busy machine's drift falls on both alike."""
    for _ in range(min(20, repeat)):
        plain()
        confined()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for run, found in ((plain, samples[0]), (confined, samples[1])):
            started = time.perf_counter()
            run()
            found.append(time.perf_counter() - started)
    return statistics.median(samples[0]) * 1000, statistics.median(samples[1]) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        server, embedded = benchmark_server(Path(workdir))
        try:
            url = fresh_migrated_database(server, "lorakom_bench_tenancy")
            town, _ = seed(url)
            engine = create_database_engine(url, pool_size=1)
            with Session(engine) as probe:
                device = probe.scalar(
                    text("SELECT min(id) FROM device WHERE municipality_id = :t"), {"t": town}
                )

            def transaction(
                confined: bool, statement: object, params: dict[str, object]
            ) -> Callable[[], object]:
                def run() -> object:
                    with Session(engine) as session:
                        if confined:
                            act_as_tenant(session, town)
                        return session.execute(statement, params).all()  # type: ignore[call-overload]

                return run

            one = text("SELECT 1")
            cases = [
                ("transaction start + SELECT 1", one, {}, 2000),
                ("history, 1 device, 30 days, hourly", HISTORY, {"device": device}, 300),
                (f"latest values, {DEVICES_PER_TOWN} devices", LATEST, {"town": town}, 300),
            ]
            print(f"{'case':40} {'app login':>10} {'tenant':>10} {'extra':>10}")
            for name, statement, params, repeat in cases:
                plain, confined = median_ms(
                    transaction(False, statement, params), transaction(True, statement, params), repeat
                )
                print(f"{name:40} {plain:9.3f}ms {confined:9.3f}ms {confined - plain:+9.3f}ms")
            engine.dispose()
        finally:
            if embedded is not None:
                embedded.stop()


if __name__ == "__main__":
    main()
