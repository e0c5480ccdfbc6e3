"""Everything TimescaleDB-specific about the schema: hypertables, compression, aggregates, policies.

The schema of `storage.models` runs unchanged on plain PostgreSQL. When the
`timescaledb` extension can be used, this module turns the four time-series
tables into hypertables, sets up compression, keeps hourly and daily continuous
aggregates of `reading` (their buckets and queries are `storage.buckets`'), and
applies the policies whose ages come from `DatabaseSettings`. Requires
TimescaleDB 2.13 or later (`by_range`).

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
  against a real TimescaleDB in `deploy/timescale-check/` (`storage.timescale_check`).

All functions take a SQLAlchemy `Connection` (the one Alembic hands a migration
and the one `lorakom db upgrade` opens) and leave transaction control to the
caller, except `refresh_aggregates`, which TimescaleDB runs only outside a
transaction block.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Connection, text

from storage.buckets import (
    AGGREGATE_COLUMNS,
    CONTINUOUS_AGGREGATES,
    IDENTIFIER,
    ContinuousAggregate,
    bucket_expression,
    interval_sql,
    raw_aggregate_sql,
)
from storage.database import DatabaseSettings


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


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
    if not IDENTIFIER.fullmatch(name):
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


def retention_days(table: str, policies: TimescalePolicies) -> int | None:
    """How many days `table` keeps its rows under `policies`; None for ever."""
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
        days = retention_days(hypertable.table, policies)
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
