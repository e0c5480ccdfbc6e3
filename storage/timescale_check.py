"""The bundle `make check-timescale` runs against a real TimescaleDB, and the schema printed as SQL.

`python -m storage.timescale_check --check-bundle` writes JSON made by the same code
that production runs (`deploy/timescale-check/check.mjs` reads it): the schema as the
migrations render it offline, the policies, and history queries on both backends
with the bucket alignment they must share.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from alembic import command
from sqlalchemy import ClauseElement, DateTime, Integer, String, bindparam, column, create_engine, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

from domain.buckets import Aggregate, bucket_start, covering_window
from storage.buckets import bucket_expression, bucketed_readings_sql, interval_sql, time_bucket_column
from storage.schema import alembic_config
from storage.timescale import HYPERTABLES, TimescalePolicies, policy_statements, retention_days


class _StatementRecorder(io.StringIO):
    """Alembic's offline output, one write per statement: kept as a list instead of split from text."""

    def __init__(self) -> None:
        super().__init__()
        self.statements: list[str] = []

    def write(self, chunk: str) -> int:
        statement = chunk.strip()
        if statement:
            self.statements.append(statement.removesuffix(";"))
        return len(chunk)


def migration_statements() -> list[str]:
    """The SQL of every migration up to head, as Alembic's offline mode renders it.

    Offline there is no server to ask, so migration 0002 renders its TimescaleDB
    branch: this is the schema of a TimescaleDB deployment.
    """
    recorder = _StatementRecorder()
    config = alembic_config("postgresql://")
    config.output_buffer = recorder
    command.upgrade(config, "head", sql=True)
    return recorder.statements


def _literal(sql: str, **values: Any) -> str:
    types: dict[str, TypeEngine[Any]] = {
        "device_ids": ARRAY(Integer),
        "quantities": ARRAY(String),
        "start": DateTime(timezone=True),
        "end": DateTime(timezone=True),
    }
    clause = text(sql).bindparams(
        *(bindparam(name, value, type_=types[name]) for name, value in values.items())
    )
    return _compiled(clause)


def _compiled(clause: ClauseElement) -> str:
    dialect = create_engine("postgresql+psycopg://").dialect
    return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


CHECK_DEVICE_IDS: Final = (1, 2, 3, 4, 5)
CHECK_QUANTITIES: Final = ("temperature", "fill_level")

CHECK_BUCKETS: Final = tuple(
    timedelta(**spec)
    for spec in (
        {"minutes": 15},
        {"hours": 1},
        {"minutes": 90},
        {"hours": 7},
        {"days": 1},
        {"days": 5},
        {"weeks": 1},
        {"days": 10},
    )
)


def check_bundle(
    policies: TimescalePolicies,
    changed: TimescalePolicies,
    device_ids: Sequence[int],
    quantities: Sequence[str],
    now: datetime,
) -> dict[str, Any]:
    """What `deploy/timescale-check/check.mjs` runs against a real TimescaleDB, as JSON-able data."""
    windows = [
        ("all", datetime(2000, 1, 3, tzinfo=UTC), datetime(2100, 1, 4, tzinfo=UTC)),
        ("recent", now - timedelta(days=10, hours=5), now - timedelta(days=2, minutes=7)),
    ]
    history = []
    for bucket in (timedelta(hours=1), timedelta(days=1), timedelta(minutes=15)):
        for label, start, end in windows:
            aligned_start, aligned_end = covering_window(start, end, bucket)
            params = {
                "device_ids": list(device_ids),
                "quantities": list(quantities),
                "start": aligned_start,
                "end": aligned_end,
            }
            for aggregate in Aggregate:
                history.append(
                    {
                        "name": f"{label} {interval_sql(bucket)} {aggregate}",
                        "timescale": _literal(
                            bucketed_readings_sql(bucket, aggregate, timescale=True), **params
                        ),
                        "plain": _literal(
                            bucketed_readings_sql(bucket, aggregate, timescale=False), **params
                        ),
                    }
                )
    samples = [
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 59, 1, tzinfo=UTC),
        now,
    ]
    alignment = [
        {
            "bucket": interval_sql(bucket),
            "timescale": bucket_expression(bucket, "t", timescale=True),
            "plain": bucket_expression(bucket, "t", timescale=False),
            "expression": _compiled(time_bucket_column(bucket, column("t"))),
            "expected": [
                [sample.isoformat(), bucket_start(sample, bucket).isoformat()] for sample in samples
            ],
        }
        for bucket in CHECK_BUCKETS
    ]
    return {
        "device_ids": list(device_ids),
        "quantities": list(quantities),
        "schema": migration_statements(),
        "policies": policy_statements(policies),
        "changed_policies": policy_statements(changed),
        "expected_retention_days": {
            hypertable.table: retention_days(hypertable.table, policies) for hypertable in HYPERTABLES
        },
        "changed_retention_days": {
            hypertable.table: retention_days(hypertable.table, changed) for hypertable in HYPERTABLES
        },
        "history": history,
        "alignment": alignment,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m storage.timescale_check",
        description="Print the schema and TimescaleDB DDL, or the bundle that the TimescaleDB check runs.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--print-sql", action="store_true", help="migrations (TimescaleDB branch) and policies")
    mode.add_argument("--check-bundle", action="store_true", help="JSON for deploy/timescale-check/check.mjs")
    parser.add_argument("--compress-after-days", type=int, default=7)
    parser.add_argument("--readings-retention-days", type=int)
    parser.add_argument("--raw-retention-days", type=int)
    args = parser.parse_args(argv)
    policies = TimescalePolicies(
        compress_after_days=args.compress_after_days,
        readings_retention_days=args.readings_retention_days,
        raw_retention_days=args.raw_retention_days,
    )
    if args.print_sql:
        for statement in migration_statements() + policy_statements(policies):
            sys.stdout.write(statement + ";\n\n")
        return 0
    changed = TimescalePolicies(
        compress_after_days=policies.compress_after_days + 7,
        readings_retention_days=(policies.readings_retention_days or 30) * 2,
        raw_retention_days=None,
    )
    bundle = check_bundle(policies, changed, CHECK_DEVICE_IDS, CHECK_QUANTITIES, datetime.now(UTC))
    json.dump(bundle, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
