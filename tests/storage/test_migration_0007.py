"""Migration 0007 and the models agree: the ingest grants, activity per town, the refused-time column."""

from __future__ import annotations

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import storage.models_sharing  # noqa: F401  (registers ingest_grant on Base.metadata)
from storage.database import create_database_engine
from storage.device_registry import ensure_municipality
from storage.models import Base
from storage.schema import alembic_config, upgrade_database


def test_the_migration_matches_the_model(migrated_db_url: str) -> None:
    engine = create_database_engine(migrated_db_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    ours = ("ingest_grant", "device_activity", "claimed_received_at", "ix_uplink_time_refused")
    assert [d for d in differences if any(name in repr(d) for name in ours)] == []


def test_downgrading_keeps_one_activity_row_per_devEUI(fresh_db_url: str) -> None:
    """Before 0007 a DevEUI had one activity row: the most recently heard town's stays."""
    with psycopg.connect(fresh_db_url) as conn:
        towns = [ensure_municipality(conn, slug) for slug in ("first", "second")]
        for town, seen in zip(towns, ("2026-12-01T00:00Z", "2026-12-02T00:00Z"), strict=True):
            conn.execute(
                "INSERT INTO device_activity (dev_eui, municipality_id, source, first_seen_at, last_seen_at) "
                "VALUES ('0000000000000001', %s, 's', %s, %s)",
                (town, seen, seen),
            )
        conn.commit()
    command.downgrade(alembic_config(fresh_db_url), "0006")
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT municipality_id FROM device_activity").fetchall() == [(towns[1],)]
    upgrade_database(fresh_db_url)
