"""The composition root picks how history is bucketed from what the database has."""

from __future__ import annotations

from sqlalchemy import create_engine

from cli.wiring import history_backend
from storage.database import create_database_engine


def test_plain_postgresql_buckets_raw_readings(migrated_db_url: str) -> None:
    engine = create_database_engine(migrated_db_url, pool_size=1)
    try:
        assert history_backend(engine) == {}
    finally:
        engine.dispose()


def test_an_unreachable_database_falls_back_to_raw_readings() -> None:
    engine = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    assert history_backend(engine) == {}
