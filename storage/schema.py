"""Bringing a database to the current schema: Alembic, driven from code.

Why no alembic.ini: a municipal deployment runs `lorakom db upgrade` with the
same settings as everything else (LORAKOM_DB_URL), and tests migrate their own
throwaway databases; one function serves all three.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from storage import timescale
from storage.database import DatabaseSettings, create_database_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Apply every migration up to `revision` (idempotent: a current database is left alone)."""
    command.upgrade(alembic_config(url), revision)


def upgrade_and_apply_policies(url: str, settings: DatabaseSettings) -> bool:
    """Migrate, then (on TimescaleDB) apply the compression/retention policies of `settings`.

    Policies are not migrations: their ages are settings that an operator changes
    without a new release, so they are re-applied on every upgrade. Returns whether
    TimescaleDB is in use.
    """
    upgrade_database(url)
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            applied = timescale.apply_policies(conn, timescale.TimescalePolicies.from_settings(settings))
        if applied:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                timescale.materialize_new_aggregates(conn)
        return applied
    finally:
        engine.dispose()


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
