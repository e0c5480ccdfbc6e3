"""TimescaleDB specifics on plain PostgreSQL: the fallback path, the DDL text, bucket alignment.

The TimescaleDB side itself is checked by `deploy/timescale-check` (`make check-timescale`),
against TimescaleDB compiled to WebAssembly; there is no TimescaleDB server here.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, column, create_engine, text

from domain.buckets import Aggregate, bucket_start, covering_window
from storage.buckets import (
    bucket_expression,
    bucketed_readings_sql,
    continuous_aggregate_for,
    interval_sql,
    time_bucket_column,
)
from storage.database import create_database_engine
from storage.schema import alembic_config, current_revision
from storage.timescale import (
    TimescalePolicies,
    apply_policies,
    materialize_new_aggregates,
    policy_statements,
    statements,
    structure_statements,
    timescale_available,
    timescale_enabled,
)
from storage.timescale_check import main

BUCKETS = [timedelta(minutes=15), timedelta(hours=1), timedelta(days=1), timedelta(weeks=1)]


@pytest.fixture
def connection(migrated_db_url: str) -> Iterator[Connection]:
    """A connection to the session's migrated database inside a transaction that is rolled back."""
    engine = create_database_engine(migrated_db_url, pool_size=1)
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            yield conn
            transaction.rollback()
    finally:
        engine.dispose()


def test_migrations_reach_head_and_back_without_timescale(fresh_db_url: str) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(fresh_db_url)).get_current_head()
    engine = create_database_engine(fresh_db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head
            assert not timescale_enabled(conn)
        command.downgrade(alembic_config(fresh_db_url), "0001")
        command.upgrade(alembic_config(fresh_db_url), "head")
        with engine.connect() as conn:
            assert current_revision(conn) == head
            assert conn.execute(text("SELECT to_regclass('reading_hourly')")).scalar_one() is None
    finally:
        engine.dispose()


def test_timescale_is_not_available_on_this_server(connection: Connection) -> None:
    assert timescale_available(connection) is False


def test_policies_and_materialisation_do_nothing_on_plain_postgres(connection: Connection) -> None:
    policies = TimescalePolicies(readings_retention_days=365, raw_retention_days=30)
    assert apply_policies(connection, policies) is False
    assert materialize_new_aggregates(connection) == []


def test_structure_converts_the_four_time_series_tables() -> None:
    ddl = structure_statements()
    assert ddl[0] == "CREATE EXTENSION IF NOT EXISTS timescaledb"
    assert (
        "SELECT create_hypertable('reading', by_range('time', INTERVAL '7 days'), "
        "if_not_exists => true, migrate_data => true, create_default_indexes => false)"
    ) in ddl
    for table, time_column in [
        ("uplink", "received_at"),
        ("reception", "received_at"),
        ("gateway_heartbeat", "time"),
    ]:
        assert any(f"create_hypertable('{table}', by_range('{time_column}'" in statement for statement in ddl)
    assert (
        "ALTER TABLE reading SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'device_id, quantity', timescaledb.compress_orderby = 'time DESC')"
    ) in ddl
    views = [statement for statement in ddl if statement.startswith("CREATE MATERIALIZED VIEW")]
    assert len(views) == 2
    assert "time_bucket(INTERVAL '1 hour', time) AS bucket" in views[0]
    assert "time_bucket(INTERVAL '1 day', time) AS bucket" in views[1]
    for view in views:
        assert "timescaledb.materialized_only = false" in view
        assert "last(value, time) AS value_last" in view
        assert view.endswith("WITH NO DATA")


def test_default_policies_keep_everything_and_compress_after_a_week() -> None:
    ddl = policy_statements(TimescalePolicies())
    assert not any("add_retention_policy" in statement for statement in ddl)
    assert "SELECT remove_retention_policy('reading', if_exists => true)" in ddl
    compressions = [statement for statement in ddl if "add_compression_policy" in statement]
    assert len(compressions) == 4
    assert all("compress_after => INTERVAL '7 days'" in statement for statement in compressions)
    assert any("start_offset => NULL" in statement for statement in ddl)


def test_retention_settings_become_policies_and_bound_the_refresh_window() -> None:
    ddl = statements(
        TimescalePolicies(compress_after_days=3, readings_retention_days=400, raw_retention_days=14)
    )
    assert "SELECT add_retention_policy('reading', drop_after => INTERVAL '400 days')" in ddl
    assert "SELECT add_retention_policy('uplink', drop_after => INTERVAL '14 days')" in ddl
    assert "SELECT add_retention_policy('reception', drop_after => INTERVAL '14 days')" in ddl
    assert "SELECT add_retention_policy('gateway_heartbeat', drop_after => INTERVAL '31 days')" in ddl
    refreshes = [statement for statement in ddl if "add_continuous_aggregate_policy" in statement]
    assert all("start_offset => INTERVAL '400 days'" in statement for statement in refreshes)
    # Every add is preceded by its remove, so re-applying a changed value replaces the policy.
    for index, statement in enumerate(ddl):
        if statement.startswith("SELECT add_retention_policy"):
            table = statement.split("'")[1]
            assert f"SELECT remove_retention_policy('{table}', if_exists => true)" in ddl[:index]


@pytest.mark.parametrize(
    "arguments",
    [{"compress_after_days": 0}, {"readings_retention_days": 2}, {"raw_retention_days": 0}],
)
def test_policies_refuse_ages_that_cannot_work(arguments: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="days"):
        TimescalePolicies(**arguments)


@pytest.mark.parametrize(
    ("span", "literal"),
    [
        (timedelta(minutes=15), "INTERVAL '15 minutes'"),
        (timedelta(hours=1), "INTERVAL '1 hour'"),
        (timedelta(minutes=90), "INTERVAL '90 minutes'"),
        (timedelta(weeks=1), "INTERVAL '7 days'"),
        (timedelta(seconds=1.5), "INTERVAL '1500000 microseconds'"),
    ],
)
def test_interval_literals(span: timedelta, literal: str) -> None:
    assert interval_sql(span) == literal


def test_bucket_expressions() -> None:
    assert (
        bucket_expression(timedelta(hours=1), "time", timescale=True)
        == "time_bucket(INTERVAL '1 hour', time)"
    )
    assert bucket_expression(timedelta(weeks=1), "r.time", timescale=False) == (
        "date_bin(INTERVAL '7 days', r.time, TIMESTAMPTZ '2000-01-03 00:00:00+00')"
    )
    with pytest.raises(ValueError, match="column"):
        bucket_expression(timedelta(hours=1), "time; DROP TABLE reading", timescale=False)


@pytest.mark.parametrize("bucket", [*BUCKETS, timedelta(hours=7), timedelta(days=5)], ids=str)
def test_date_bin_on_postgres_agrees_with_python_bucket_starts(
    connection: Connection, bucket: timedelta
) -> None:
    expression = bucket_expression(bucket, "t", timescale=False)
    rows = connection.execute(
        text(
            f"SELECT t, {expression} FROM generate_series(timestamptz '1999-12-25', "
            "timestamptz '2027-02-01', interval '3 days 5 hours 17 minutes 13.25 seconds') AS t"
        )
    ).all()
    assert len(rows) > 3000
    for moment, start in rows:
        assert start == bucket_start(moment, bucket), moment


def test_time_bucket_column_leaves_out_the_default_origin() -> None:
    dialect = create_engine("postgresql+psycopg://").dialect
    compiled = time_bucket_column(timedelta(hours=1), column("time")).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True}
    )
    assert str(compiled) == "time_bucket(make_interval(secs=>3600.0), time)"


def test_weeks_start_on_monday_midnight_utc() -> None:
    start = bucket_start(datetime(2026, 11, 29, 23, 59, tzinfo=UTC), timedelta(weeks=1))
    assert start == datetime(2026, 11, 23, tzinfo=UTC)
    assert start.weekday() == 0


def test_covering_window_is_whole_buckets() -> None:
    hour = timedelta(hours=1)
    start, end = covering_window(
        datetime(2026, 5, 1, 10, 20, tzinfo=UTC), datetime(2026, 5, 1, 12, 0, tzinfo=UTC), hour
    )
    assert (start, end) == (datetime(2026, 5, 1, 10, tzinfo=UTC), datetime(2026, 5, 1, 12, tzinfo=UTC))
    _, end = covering_window(start, datetime(2026, 5, 1, 12, 0, 1, tzinfo=UTC), hour)
    assert end == datetime(2026, 5, 1, 13, tzinfo=UTC)


def test_hour_and_day_buckets_are_served_by_continuous_aggregates() -> None:
    assert continuous_aggregate_for(timedelta(hours=1)) == "reading_hourly"
    assert continuous_aggregate_for(timedelta(days=1)) == "reading_daily"
    assert continuous_aggregate_for(timedelta(minutes=15)) is None
    assert "FROM reading_hourly" in bucketed_readings_sql(timedelta(hours=1), "last", timescale=True)
    assert "FROM reading " in bucketed_readings_sql(timedelta(hours=1), "last", timescale=False)
    assert "time_bucket(" in bucketed_readings_sql(timedelta(minutes=15), "avg", timescale=True)


@pytest.mark.parametrize("bucket", BUCKETS, ids=str)
def test_bucketed_history_on_postgres_matches_python(connection: Connection, bucket: timedelta) -> None:
    generator = random.Random(7)
    first = datetime(2026, 3, 2, 22, 50, tzinfo=UTC)
    readings = [
        (
            first + timedelta(minutes=generator.randrange(0, 60 * 24 * 20)),
            device_id,
            quantity,
            generator.uniform(-5, 40),
        )
        for device_id in (101, 102)
        for quantity in ("temperature", "humidity")
        for _ in range(400)
    ]
    connection.execute(
        text(
            "INSERT INTO reading (time, device_id, quantity, value) VALUES (:t, :d, :q, :v) "
            "ON CONFLICT DO NOTHING"
        ),
        [{"t": t, "d": d, "q": q, "v": v} for t, d, q, v in readings],
    )
    stored: dict[tuple[datetime, int, str], float] = {}
    for t, d, q, v in readings:
        stored.setdefault((t, d, q), v)  # ON CONFLICT DO NOTHING: the first one stays
    window = covering_window(first + timedelta(days=2, minutes=3), first + timedelta(days=15), bucket)
    groups: dict[tuple[datetime, int, str], list[tuple[datetime, float]]] = defaultdict(list)
    for (t, d, q), v in stored.items():
        if window[0] <= t < window[1] and q == "temperature":
            groups[(bucket_start(t, bucket), d, q)].append((t, v))
    expected_by_aggregate: dict[str, dict[tuple[datetime, int, str], float]] = {
        "avg": {key: sum(v for _, v in values) / len(values) for key, values in groups.items()},
        "min": {key: min(v for _, v in values) for key, values in groups.items()},
        "max": {key: max(v for _, v in values) for key, values in groups.items()},
        "sum": {key: sum(v for _, v in values) for key, values in groups.items()},
        "count": {key: len(values) for key, values in groups.items()},
        "last": {key: max(values)[1] for key, values in groups.items()},
    }
    for aggregate in Aggregate:
        rows = connection.execute(
            text(bucketed_readings_sql(bucket, aggregate, timescale=False)),
            {"device_ids": [101, 102], "quantities": ["temperature"], "start": window[0], "end": window[1]},
        ).all()
        got = {(row.bucket, row.device_id, row.quantity): row.value for row in rows}
        expected = expected_by_aggregate[aggregate]
        assert got.keys() == expected.keys(), aggregate
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-12), (aggregate, key)


def test_print_sql_renders_migrations_and_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--print-sql", "--readings-retention-days", "90"]) == 0
    sql = capsys.readouterr().out
    assert "CREATE TABLE reading (" in sql
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS reading_hourly" in sql
    assert "SELECT add_retention_policy('reading', drop_after => INTERVAL '90 days');" in sql
    assert sql.index("CREATE TABLE reading (") < sql.index("create_hypertable('reading'")


def test_check_bundle_is_json_with_both_query_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check-bundle", "--readings-retention-days", "30", "--raw-retention-days", "14"]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert bundle["expected_retention_days"]["reading"] == 30
    assert bundle["changed_retention_days"]["uplink"] is None
    assert all(
        "date_bin(" in query["plain"] or "FROM reading " in query["plain"] for query in bundle["history"]
    )
    assert {query["name"].split()[-1] for query in bundle["history"]} == set(Aggregate)
