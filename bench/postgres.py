"""The PostgreSQL server a benchmark measures against, and its freshly migrated databases.

Shared by the benchmarks so they agree on where they run: LORAKOM_BENCH_POSTGRES_URL when
set, else the local server on 5432 when it answers, else an embedded one in `workdir`.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from cli.backing_services import port_answers, with_database
from storage.embedded import EmbeddedPostgres
from storage.schema import upgrade_database

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def benchmark_server(workdir: Path) -> tuple[str, EmbeddedPostgres | None]:
    """A URL of the server's `postgres` database, and the embedded server to stop (if one was started)."""
    if os.environ.get("LORAKOM_BENCH_POSTGRES_URL"):
        return os.environ["LORAKOM_BENCH_POSTGRES_URL"], None
    if port_answers("127.0.0.1", 5432):
        return LOCAL_SERVER, None
    server = EmbeddedPostgres(workdir / "pg")
    return server.start(), server


def fresh_migrated_database(server_url: str, name: str) -> str:
    """Drop and create database `name`, bring it to the newest schema, return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    upgrade_database(url)
    return url
