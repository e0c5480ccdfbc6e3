"""Connections: one URL, two drivers' views of it, and the driver's errors kept inside storage.

SQLAlchemy (for migrations and the API's ORM queries) wants
`postgresql+psycopg://…`; psycopg's own connections (the COPY ingest path)
want a libpq conninfo. `DatabaseSettings.url` is written once by the user in
either form and both views are derived from it.

Callers above storage hold psycopg connections only as `Connection` and see the
driver's failures only as `StorageUnavailable`, so that they import no driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import orjson
import psycopg
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from domain.errors import StorageUnavailable

DEFAULT_EMBEDDED_DIR = "var/postgres"


class DatabaseSettings(BaseSettings):
    """Where the data lives. Without a URL the composition root starts an embedded server."""

    model_config = SettingsConfigDict(env_prefix="LORAKOM_DB_", extra="forbid")

    url: SecretStr | None = None
    embedded_dir: str = DEFAULT_EMBEDDED_DIR
    pool_size: int = 20
    """Connections the API keeps once its concurrency has asked for them (opened lazily).
    Beyond it the pool opens overflow connections and closes them after each use: a new
    PostgreSQL backend, and a cold plan cache, for every request."""
    readings_retention_days: int | None = None
    raw_retention_days: int | None = None
    compress_after_days: int = 7


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy form of a PostgreSQL URL, forcing the psycopg 3 driver."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The libpq form (no `+driver`) of a PostgreSQL URL, for psycopg connections."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


Connection: TypeAlias = psycopg.Connection[Any]
"""A psycopg connection, named here so that ingest can hold one without importing the driver."""


def connect(url: str, *, timeout_s: int = 5) -> Connection:
    """A psycopg connection to `url` (libpq form); unreachable is `StorageUnavailable`."""
    with database_errors():
        return psycopg.connect(url, connect_timeout=timeout_s)


@contextmanager
def database_errors() -> Iterator[None]:
    """The driver's errors out of this block as `StorageUnavailable`: lost connection, refused query.

    For the reads and small writes around ingest (device lists, municipalities), where
    every failure means the same to the caller: drop the connection and try later.
    """
    try:
        yield
    except psycopg.Error as exc:
        raise StorageUnavailable(f"database: {exc}") from exc


def create_database_engine(url: str, *, pool_size: int = 5) -> Engine:
    """The SQLAlchemy engine of the API and the tools.

    JIT is off for these sessions: their queries are short, and PostgreSQL's JIT
    compiles for seconds whenever the planner's estimate crosses its threshold.
    JSON columns are read with orjson: with the standard library, reading device
    tags and metadata cost more than the queries of a page of latest values.
    """
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"options": "-c jit=off"},
        json_deserializer=orjson.loads,
        json_serializer=_json_text,
    )


def _json_text(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
