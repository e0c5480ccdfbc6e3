"""Everything TimescaleDB-specific, in one place.

The schema of `storage.models` runs unchanged on plain PostgreSQL. When the
`timescaledb` extension can be used, this module turns the four time-series
tables into hypertables, sets up compression, keeps hourly and daily continuous
aggregates of `reading`, and applies the policies whose ages come from
`DatabaseSettings`. Requires TimescaleDB 2.13 or later (`by_range`).

Split of the work, and why:

- `convert(conn)` is structure: extension, hypertables, compression settings,
  continuous aggregates. Migration 0002 calls it, and so does `apply_policies`,
  so that a database migrated before TimescaleDB was installed is converted by
  the next `lorakom db upgrade`. Every step is idempotent.
- `apply_policies(conn, policies)` is what the settings decide: compression age,
  retention of raw frames and of readings, and the refresh windows of the
  aggregates (bounded by the retention so that a refresh never erases
  aggregates whose raw rows were dropped). Each policy is removed and added
  again, in the caller's transaction, so that a changed value replaces the old
  one and an unchanged value leaves the same state.
- `statements(policies)` is the DDL of both, for printing and for the check
  against a real TimescaleDB in `deploy/timescale-check/`.

History queries must give the same numbers on both backends: `bucketed_readings_sql`
builds them with `time_bucket` (from a continuous aggregate for hour and day
buckets) or `date_bin`, both aligned on Monday 2000-01-03 00:00 UTC, which is
TimescaleDB's default origin; `bucket_start` is the same arithmetic in Python.

All functions take a SQLAlchemy `Connection` (the one Alembic hands a migration
and the one `lorakom db upgrade` opens) and leave transaction control to the
caller, except `refresh_aggregates`, which TimescaleDB runs only outside a
transaction block.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, get_args

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    ColumnExpressionArgument,
    Connection,
    DateTime,
    Integer,
    Interval,
    String,
    bindparam,
    column,
    create_engine,
    func,
    literal,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

from storage.database import DatabaseSettings

Aggregate = Literal["avg", "min", "max", "sum", "count", "last"]
AGGREGATES: Final[tuple[Aggregate, ...]] = get_args(Aggregate)

BUCKET_ORIGIN: Final = datetime(2000, 1, 3, tzinfo=UTC)
"""A Monday: TimescaleDB's default origin for buckets without months, so weeks start on Monday (ISO)."""

BUCKET_ORIGIN_SQL: Final = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"


@dataclass(frozen=True)
class Hypertable:
    """How one time-series table is partitioned and compressed.

    Chunk intervals keep a chunk with its indexes well inside memory at the sizes
    of DESIGN (2,000 devices every 15 minutes): a day of raw frames (wide rows,
    JSONB) or a week of narrow readings. Segmenting by the column that history
    queries filter on lets them decompress only that device's or gateway's
    batches; every unique-key column appears in `segment_by` or `order_by` so
    that `ON CONFLICT DO NOTHING` into a compressed chunk checks few batches.
    """

    table: str
    time_column: str
    chunk_interval: timedelta
    segment_by: tuple[str, ...]
    order_by: tuple[str, ...]


HYPERTABLES: Final = (
    Hypertable("uplink", "received_at", timedelta(days=1), ("dev_eui",), ("received_at DESC", "uplink_key")),
    Hypertable(
        "reception",
        "received_at",
        timedelta(days=1),
        ("gateway_id",),
        ("received_at DESC", "uplink_key", "antenna"),
    ),
    Hypertable("reading", "time", timedelta(days=7), ("device_id", "quantity"), ("time DESC",)),
    Hypertable("gateway_heartbeat", "time", timedelta(days=7), ("gateway_id",), ("time DESC",)),
)

RAW_TABLES: Final = ("uplink", "reception")
"""Tables dropped after `raw_retention_days`: the frames as received and who heard them."""

HEARTBEAT_TABLE: Final = "gateway_heartbeat"
HEARTBEAT_MIN_RETENTION_DAYS: Final = 31
"""Gateway uptime is reported over 30 days, so heartbeats outlive a shorter raw retention."""

READINGS_MIN_RETENTION_DAYS: Final = 3
"""The daily aggregate's refresh window (retention minus one day of end offset) must span two days."""


@dataclass(frozen=True)
class ContinuousAggregate:
    """A continuous aggregate of `reading` over one bucket width.

    `end_offset` keeps the newest, still filling bucket out of materialisation;
    real-time aggregation answers it from `reading`. Late rows (backfill after an
    outage, history decoded when a device is claimed) invalidate materialised
    buckets; the refresh policy re-materialises them within its window.
    """

    name: str
    bucket: timedelta
    end_offset: timedelta
    schedule_interval: timedelta


CONTINUOUS_AGGREGATES: Final = (
    ContinuousAggregate("reading_hourly", timedelta(hours=1), timedelta(hours=1), timedelta(minutes=30)),
    ContinuousAggregate("reading_daily", timedelta(days=1), timedelta(days=1), timedelta(hours=1)),
)

AGGREGATE_COLUMNS: Final[dict[Aggregate, str]] = {
    "avg": "value_avg",
    "min": "value_min",
    "max": "value_max",
    "sum": "value_sum",
    "count": "value_count",
    "last": "value_last",
}
"""Column of a continuous aggregate holding each aggregate; `last_time` says when `value_last` was read."""


def raw_aggregate_sql(aggregate: Aggregate, *, timescale: bool) -> str:
    """The aggregate over raw `reading` rows; `last` is the value with the latest time in the bucket.

    `(device_id, quantity, time)` is the primary key, so within one series the
    latest time is unique and both forms of `last` pick the same row.
    """
    if aggregate == "last":
        return "last(value, time)" if timescale else "(array_agg(value ORDER BY time DESC))[1]"
    if aggregate == "count":
        return "count(*)"
    return f"{aggregate}(value)"


@dataclass(frozen=True)
class TimescalePolicies:
    """The ages that settings decide; `None` keeps data for ever."""

    compress_after_days: int = 7
    readings_retention_days: int | None = None
    raw_retention_days: int | None = None

    def __post_init__(self) -> None:
        if self.compress_after_days < 1:
            raise ValueError("compress_after_days must be at least 1")
        if self.raw_retention_days is not None and self.raw_retention_days < 1:
            raise ValueError("raw_retention_days must be at least 1 (or unset to keep raw frames)")
        if (
            self.readings_retention_days is not None
            and self.readings_retention_days < READINGS_MIN_RETENTION_DAYS
        ):
            raise ValueError(
                f"readings_retention_days must be at least {READINGS_MIN_RETENTION_DAYS} "
                "(or unset to keep readings): the daily aggregate refreshes from the raw readings it keeps"
            )

    @classmethod
    def from_settings(cls, settings: DatabaseSettings) -> TimescalePolicies:
        return cls(
            compress_after_days=settings.compress_after_days,
            readings_retention_days=settings.readings_retention_days,
            raw_retention_days=settings.raw_retention_days,
        )


def interval_sql(span: timedelta) -> str:
    """An `INTERVAL` literal in the largest unit that divides `span` exactly."""
    microseconds = span // timedelta(microseconds=1)
    if microseconds <= 0:
        raise ValueError(f"an interval must be positive, got {span}")
    for unit, size in (
        ("day", 86_400_000_000),
        ("hour", 3_600_000_000),
        ("minute", 60_000_000),
        ("second", 1_000_000),
    ):
        if microseconds % size == 0:
            count = microseconds // size
            return f"INTERVAL '{count} {unit}{'' if count == 1 else 's'}'"
    return f"INTERVAL '{microseconds} microseconds'"


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


def bucket_expression(bucket: timedelta, column: str, *, timescale: bool) -> str:
    """SQL for the start of the bucket holding `column`, identical on both backends.

    `time_bucket` without an origin uses TimescaleDB's default (Monday
    2000-01-03 UTC), which is the only form its continuous aggregates and
    planner optimisations recognise; `date_bin` gets that origin explicitly. With
    the origin `date_bin` is often shown with (2000-01-01) weeks would start on
    Saturday and buckets like 7h or 5d would be shifted.
    """
    if not _IDENTIFIER.fullmatch(column):
        raise ValueError(f"not a plain column name: {column!r}")
    if timescale:
        return f"time_bucket({interval_sql(bucket)}, {column})"
    return f"date_bin({interval_sql(bucket)}, {column}, {BUCKET_ORIGIN_SQL})"


def time_bucket_column(
    width: timedelta, time_column: ColumnExpressionArgument[datetime], origin: datetime = BUCKET_ORIGIN
) -> ColumnElement[datetime]:
    """`time_bucket` as a SQLAlchemy expression, for query code that swaps it in for `date_bin`.

    Same arguments as `storage.readings.date_bin_bucket`; at the default origin
    the origin is left out, which is the form TimescaleDB optimises.
    """
    arguments: list[Any] = [literal(width, Interval()), time_column]
    if origin != BUCKET_ORIGIN:
        arguments.append(literal(origin, DateTime(timezone=True)))
    return func.time_bucket(*arguments, type_=DateTime(timezone=True))


def bucket_start(moment: datetime, bucket: timedelta) -> datetime:
    """The start of the bucket holding `moment`: what `bucket_expression` computes, in Python."""
    if moment.tzinfo is None:
        raise ValueError("bucket_start needs an aware datetime")
    width = bucket // timedelta(microseconds=1)
    if width <= 0:
        raise ValueError(f"a bucket must be positive, got {bucket}")
    offset = (moment - BUCKET_ORIGIN) // timedelta(microseconds=1)
    return BUCKET_ORIGIN + timedelta(microseconds=offset // width * width)


def covering_window(start: datetime, end: datetime, bucket: timedelta) -> tuple[datetime, datetime]:
    """The bucket boundaries around `[start, end)`: whole buckets, so raw and aggregate paths agree."""
    aligned_end = bucket_start(end, bucket)
    if aligned_end < end:
        aligned_end += bucket
    return bucket_start(start, bucket), aligned_end


def continuous_aggregate_for(bucket: timedelta) -> str | None:
    """The continuous aggregate that serves `bucket` as it is, if any (hour and day)."""
    for aggregate in CONTINUOUS_AGGREGATES:
        if aggregate.bucket == bucket:
            return aggregate.name
    return None


def bucketed_readings_sql(bucket: timedelta, aggregate: Aggregate, *, timescale: bool) -> str:
    """History of some devices' quantities in buckets, one row per bucket that has readings.

    Bind parameters: `:device_ids` (int array), `:quantities` (text array),
    `:start`, `:end` (aware datetimes on bucket boundaries: use
    `covering_window`, since the aggregate path selects whole buckets). Columns:
    `bucket, device_id, quantity, value, samples` (readings in the bucket), ordered by
    device, quantity, bucket.
    Missing buckets are gaps; the caller marks them.
    """
    where_series = "device_id = ANY(:device_ids) AND quantity = ANY(:quantities)"
    order = "ORDER BY device_id, quantity, bucket"
    view = continuous_aggregate_for(bucket) if timescale else None
    if view is not None:
        return (
            f"SELECT bucket, device_id, quantity, {AGGREGATE_COLUMNS[aggregate]} AS value, "
            f"value_count AS samples FROM {view} "
            f"WHERE {where_series} AND bucket >= :start AND bucket < :end {order}"
        )
    return (
        f"SELECT {bucket_expression(bucket, 'time', timescale=timescale)} AS bucket, device_id, quantity, "
        f"{raw_aggregate_sql(aggregate, timescale=timescale)} AS value, count(*) AS samples FROM reading "
        f"WHERE {where_series} AND time >= :start AND time < :end GROUP BY 1, 2, 3 {order}"
    )


def aggregate_history_sql(bucket: timedelta, aggregate: Aggregate) -> str | None:
    """For the API's history on TimescaleDB: the query reading `bucket` from its continuous
    aggregate, or None when no aggregate has that width (the API then buckets raw readings).

    The same text that `make check-timescale` compares with `date_bin` on raw readings.
    """
    if continuous_aggregate_for(bucket) is None:
        return None
    return bucketed_readings_sql(bucket, aggregate, timescale=True)


# --- structure --------------------------------------------------------------------------------------


def enable_statement() -> str:
    return "CREATE EXTENSION IF NOT EXISTS timescaledb"


def hypertable_statement(hypertable: Hypertable) -> str:
    # No default time index: the raw tables' keys lead with time already, and `reading` is read
    # per series through its (device_id, quantity, time) key; chunks bound every time range.
    return (
        f"SELECT create_hypertable({_quoted(hypertable.table)}, "
        f"by_range({_quoted(hypertable.time_column)}, {interval_sql(hypertable.chunk_interval)}), "
        "if_not_exists => true, migrate_data => true, create_default_indexes => false)"
    )


def compression_statement(hypertable: Hypertable) -> str:
    return (
        f"ALTER TABLE {hypertable.table} SET (timescaledb.compress, "
        f"timescaledb.compress_segmentby = {_quoted(', '.join(hypertable.segment_by))}, "
        f"timescaledb.compress_orderby = {_quoted(', '.join(hypertable.order_by))})"
    )


def continuous_aggregate_statements(aggregate: ContinuousAggregate) -> list[str]:
    """The view (created empty, so it can run inside the migration's transaction) and its lookup index."""
    columns = ", ".join(
        f"{raw_aggregate_sql(name, timescale=True)} AS {column}" for name, column in AGGREGATE_COLUMNS.items()
    )
    return [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {aggregate.name} "
        "WITH (timescaledb.continuous, timescaledb.materialized_only = false, "
        "timescaledb.create_group_indexes = false) AS "
        f"SELECT {bucket_expression(aggregate.bucket, 'time', timescale=True)} AS bucket, "
        f"device_id, quantity, {columns}, max(time) AS last_time "
        "FROM reading GROUP BY 1, device_id, quantity WITH NO DATA",
        f"CREATE INDEX IF NOT EXISTS ix_{aggregate.name}_device_id_quantity_bucket "
        f"ON {aggregate.name} (device_id, quantity, bucket DESC)",
    ]


SCOPED_SCHEMA: Final = "lorakom_scoped"
"""Where migration 0009 puts the views through which the tenant and reader roles see time series."""


def scoped_aggregate_statements() -> list[str]:
    """Views of the continuous aggregates for the API's tenant role and the dashboard logins.

    A continuous aggregate cannot carry row security and is materialised by its owner, so
    those roles get no privilege on it. They read a security-barrier view of the same
    name in `lorakom_scoped` (first in their search_path) that keeps the devices the
    caller may see: `lorakom_visible_devices()` runs as the caller, so the policies of
    `device` (own devices, and those shared with the caller) decide. Needs migration
    0009's functions; `convert` adds these views to a database that has them.
    """
    result: list[str] = []
    for aggregate in CONTINUOUS_AGGREGATES:
        result += scoped_view_statements(aggregate.name)
    return result


def scoped_view_statements(name: str) -> list[str]:
    """The filtered view of one aggregate of readings (any relation with a `device_id`)."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain relation name: {name!r}")
    return [
        f"CREATE OR REPLACE VIEW {SCOPED_SCHEMA}.{name} WITH (security_barrier) AS "
        f"SELECT * FROM public.{name} WHERE device_id IN (SELECT lorakom_visible_devices())",
        f"GRANT SELECT ON {SCOPED_SCHEMA}.{name} TO lorakom_tenant, lorakom_reader",
    ]


def structure_statements() -> list[str]:
    """Extension, hypertables, compression settings and continuous aggregates, for a fresh database."""
    result = [enable_statement()]
    result += [hypertable_statement(hypertable) for hypertable in HYPERTABLES]
    result += [compression_statement(hypertable) for hypertable in HYPERTABLES]
    for aggregate in CONTINUOUS_AGGREGATES:
        result += continuous_aggregate_statements(aggregate)
    return result


def teardown_statements() -> list[str]:
    """What migration 0002's downgrade removes: aggregates and policies.

    Hypertables stay hypertables (they still behave as the tables of 0001);
    turning them back into plain tables needs a dump and restore.
    """
    result = [f"DROP MATERIALIZED VIEW IF EXISTS {aggregate.name}" for aggregate in CONTINUOUS_AGGREGATES]
    for hypertable in HYPERTABLES:
        result.append(f"SELECT remove_compression_policy({_quoted(hypertable.table)}, if_exists => true)")
        result.append(f"SELECT remove_retention_policy({_quoted(hypertable.table)}, if_exists => true)")
    return result


# --- policies ---------------------------------------------------------------------------------------


def _retention_days(table: str, policies: TimescalePolicies) -> int | None:
    if table == "reading":
        return policies.readings_retention_days
    if table == HEARTBEAT_TABLE:
        if policies.raw_retention_days is None:
            return None
        return max(policies.raw_retention_days, HEARTBEAT_MIN_RETENTION_DAYS)
    if table in RAW_TABLES:
        return policies.raw_retention_days
    raise ValueError(f"no retention rule for table {table!r}")


def policy_statements(policies: TimescalePolicies) -> list[str]:
    """Remove and re-add every policy, so that applying them again converges on `policies`."""
    result: list[str] = []
    compress_after = interval_sql(timedelta(days=policies.compress_after_days))
    for hypertable in HYPERTABLES:
        table = _quoted(hypertable.table)
        result.append(f"SELECT remove_compression_policy({table}, if_exists => true)")
        result.append(f"SELECT add_compression_policy({table}, compress_after => {compress_after})")
        result.append(f"SELECT remove_retention_policy({table}, if_exists => true)")
        days = _retention_days(hypertable.table, policies)
        if days is not None:
            drop_after = interval_sql(timedelta(days=days))
            result.append(f"SELECT add_retention_policy({table}, drop_after => {drop_after})")
    # A refresh over a range whose raw readings were dropped would empty its buckets: start inside retention.
    start_offset = (
        "NULL"
        if policies.readings_retention_days is None
        else interval_sql(timedelta(days=policies.readings_retention_days))
    )
    for aggregate in CONTINUOUS_AGGREGATES:
        view = _quoted(aggregate.name)
        result.append(f"SELECT remove_continuous_aggregate_policy({view}, if_exists => true)")
        result.append(
            f"SELECT add_continuous_aggregate_policy({view}, start_offset => {start_offset}, "
            f"end_offset => {interval_sql(aggregate.end_offset)}, "
            f"schedule_interval => {interval_sql(aggregate.schedule_interval)})"
        )
    return result


def statements(policies: TimescalePolicies) -> list[str]:
    """All TimescaleDB DDL for a fresh database with these policies."""
    return structure_statements() + policy_statements(policies)


# --- applying ---------------------------------------------------------------------------------------


def timescale_available(conn: Connection) -> bool:
    """Whether this database has TimescaleDB or this role can create it now.

    Installed in the database, or packaged on the server *and* preloaded (without
    `shared_preload_libraries = 'timescaledb'` CREATE EXTENSION fails). Creating
    it needs a superuser, and only a superuser may read that setting.
    """
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb') "
                "OR (EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb') "
                "AND CASE WHEN current_setting('is_superuser') = 'on' "
                "THEN current_setting('shared_preload_libraries') ~ '(^|[\\s,\"])timescaledb($|[\\s,\"])' "
                "ELSE false END)"
            )
        ).scalar_one()
    )


def timescale_enabled(conn: Connection) -> bool:
    """Whether the extension is installed in this database."""
    return bool(
        conn.execute(
            text("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb')")
        ).scalar_one()
    )


def enable(conn: Connection) -> None:
    conn.execute(text(enable_statement()))


def convert(conn: Connection) -> None:
    """Apply `structure_statements` to a database in any earlier state: each step runs only when needed.

    Compression settings cannot be set again once chunks are compressed, so
    hypertables that already have them are left alone.
    """
    enable(conn)
    for hypertable in HYPERTABLES:
        conn.execute(text(hypertable_statement(hypertable)))
    compressed = set(
        conn.execute(
            text("SELECT hypertable_name FROM timescaledb_information.hypertables WHERE compression_enabled")
        ).scalars()
    )
    for hypertable in HYPERTABLES:
        if hypertable.table not in compressed:
            conn.execute(text(compression_statement(hypertable)))
    for aggregate in CONTINUOUS_AGGREGATES:
        for statement in continuous_aggregate_statements(aggregate):
            conn.execute(text(statement))
    if conn.execute(text(f"SELECT to_regnamespace('{SCOPED_SCHEMA}') IS NOT NULL")).scalar_one():
        for statement in scoped_aggregate_statements():
            conn.execute(text(statement))


def apply_policies(conn: Connection, policies: TimescalePolicies) -> bool:
    """Bring compression, retention and refresh policies to `policies`; False on plain PostgreSQL.

    Runs after the migrations on every `lorakom db upgrade`. Converts the tables
    first when TimescaleDB became available after migration 0002 had run.
    """
    if not timescale_available(conn):
        return False
    convert(conn)
    for statement in policy_statements(policies):
        conn.execute(text(statement))
    return True


def refresh_aggregates(conn: Connection, start: datetime | None, end: datetime | None) -> None:
    """Re-materialise both aggregates over `[start, end)` now (`None`: unbounded).

    For rows that arrive late and far back, e.g. the history decoded when a
    device is claimed: the refresh policy catches up only within its window, and
    real-time aggregation covers only what lies past the materialised range.
    Never refresh a range whose raw readings were dropped by retention: that
    would empty its buckets. `conn` must be in autocommit mode
    (`engine.connect().execution_options(isolation_level="AUTOCOMMIT")`).
    """
    for aggregate in CONTINUOUS_AGGREGATES:
        conn.execute(
            text(
                f"CALL refresh_continuous_aggregate({_quoted(aggregate.name)}, "
                "CAST(:start AS timestamptz), CAST(:end AS timestamptz))"
            ),
            {"start": start, "end": end},
        )


def materialize_new_aggregates(conn: Connection) -> list[str]:
    """Fill continuous aggregates that were never materialised, over all the readings there are.

    The refresh policy's window is bounded by the readings retention, so readings
    already present when the aggregates were created (a plain database converted
    to TimescaleDB) would otherwise never be materialised and would vanish from
    the aggregates. An empty aggregate holds nothing that a full refresh could
    erase. Call after `apply_policies`, in autocommit mode; returns the names filled.
    """
    if not timescale_enabled(conn):
        return []
    filled: list[str] = []
    rows = conn.execute(
        text(
            "SELECT view_name, format('%I.%I', materialization_hypertable_schema, "
            "materialization_hypertable_name) FROM timescaledb_information.continuous_aggregates "
            "WHERE view_name = ANY(:names)"
        ),
        {"names": [aggregate.name for aggregate in CONTINUOUS_AGGREGATES]},
    ).all()
    for view_name, materialization in rows:
        if conn.execute(text(f"SELECT EXISTS (SELECT FROM {materialization})")).scalar_one():
            continue
        conn.execute(text(f"CALL refresh_continuous_aggregate({_quoted(view_name)}, NULL, NULL)"))
        filled.append(str(view_name))
    return filled


# --- printing and the TimescaleDB check -------------------------------------------------------------


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
    from alembic import command

    from storage.schema import alembic_config

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
            for aggregate in AGGREGATES:
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
            hypertable.table: _retention_days(hypertable.table, policies) for hypertable in HYPERTABLES
        },
        "changed_retention_days": {
            hypertable.table: _retention_days(hypertable.table, changed) for hypertable in HYPERTABLES
        },
        "history": history,
        "alignment": alignment,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m storage.timescale",
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
