"""Test support for dashboard logins: unique role names, and their removal afterwards.

Roles are cluster-wide while each test session has its own database, so every test
takes a prefix of its own and drops what it made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy import Engine, text

from storage.database import libpq_url


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}_reader_"


def drop_roles(server_url: str, prefix: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        names = conn.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
        ).fetchall()
        for (name,) in names:
            # Connections of a login that a failed test left open would keep it from being dropped.
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@contextmanager
def roles_dropped_after(server_url: str, prefix: str) -> Iterator[str]:
    try:
        yield prefix
    finally:
        drop_roles(server_url, prefix)


def reader_sleeps(url: str, role_name: str, seconds: int, outcome: dict[str, BaseException | None]) -> None:
    """As a dashboard user would: lift the role's timeout, then run a long query."""
    try:
        with psycopg.connect(libpq_url(url), user=role_name, password="unused-under-trust") as conn:
            conn.execute("SET statement_timeout = 0")
            conn.execute("SELECT pg_sleep(%s)", (seconds,))
        outcome["error"] = None
    except psycopg.Error as exc:
        outcome["error"] = exc


def wait_until_active(engine: Engine, role_name: str) -> None:
    """Until the reader's sleep is running (a barrier, not a deadline: the test's timeout bounds it)."""
    while True:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_stat_activity WHERE usename = :name AND query LIKE '%pg_sleep%'"),
                {"name": role_name},
            ).first()
        if found:
            return
        threading.Event().wait(0.05)


def scram_matches(verifier: str, password: str) -> bool:
    """RFC 5802/7677: whether `verifier` (as PostgreSQL stores it) was made from `password`."""
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, _server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)


def stored_verifier(server_url: str, role_name: str) -> str:
    with psycopg.connect(server_url) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role_name,)).fetchone()
    assert row is not None
    return str(row[0])
