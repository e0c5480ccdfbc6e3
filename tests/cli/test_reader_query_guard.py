"""The background guard, as `lorakom run` starts it, cancels a reader query that lifted its own timeout."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text

from cli.jobs import ReaderQueryGuard
from storage.database import create_database_engine
from storage.reader_roles import ReaderSettings, ReaderTarget, ensure_reader_login
from tests.storage.reader_logins import (
    drop_roles,
    reader_sleeps,
    unique_prefix,
    wait_until_active,
)


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = create_database_engine(migrated_db_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(postgres_server: str) -> Iterator[ReaderSettings]:
    settings = ReaderSettings(role_prefix=unique_prefix(), query_limit_s=0.5, guard_interval_s=0.1)
    try:
        yield settings
    finally:
        drop_roles(postgres_server, settings.role_prefix)


def test_the_guard_thread_cancels_a_reader_query_over_the_limit(
    engine: Engine, settings: ReaderSettings, migrated_db_url: str
) -> None:
    with engine.begin() as conn:
        town = conn.execute(
            text("INSERT INTO municipality (slug, name) VALUES (:slug, 'Guarded') RETURNING id"),
            {"slug": f"guarded-{uuid.uuid4().hex[:6]}"},
        ).scalar_one()
        target = ReaderTarget(f"{settings.role_prefix}guarded", int(town), None, "Guarded")
        ensure_reader_login(conn, target, settings, set_password=False)
    stop = threading.Event()
    guard = ReaderQueryGuard(engine, stop, settings).start()
    outcome: dict[str, BaseException | None] = {}
    try:
        sleeper = threading.Thread(
            target=reader_sleeps, args=(migrated_db_url, target.role_name, 120, outcome)
        )
        sleeper.start()
        wait_until_active(engine, target.role_name)
        sleeper.join()
    finally:
        stop.set()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM municipality WHERE id = :id"), {"id": town})
    assert isinstance(outcome["error"], psycopg.errors.QueryCanceled)
    assert guard.cancelled == 1
