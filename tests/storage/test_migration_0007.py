"""Migration 0007 and the models agree: the ingest grants, activity per town, the refused-time column."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import storage.models_sharing  # noqa: F401  (registers ingest_grant on Base.metadata)
from storage.database import create_database_engine
from storage.models import Base


def test_the_migration_matches_the_model(migrated_db_url: str) -> None:
    engine = create_database_engine(migrated_db_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    ours = ("ingest_grant", "device_activity", "claimed_received_at", "ix_uplink_time_refused")
    assert [d for d in differences if any(name in repr(d) for name in ours)] == []
