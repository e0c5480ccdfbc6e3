"""Dashboard logins: one PostgreSQL login per municipality, and one for the region.

Grafana (or any reporting tool) reads lorakom's database directly, so the database
itself must keep each town to its own rows. A login made here is a member of the
group role `lorakom_reader` (which holds the SELECT grants) and is registered in
`reader_role`, the table the row-level security policies read to know which town a
login belongs to (NULL: the region, which sees what towns shared with it). The
mapping is a table and never a setting, because a reader may SET any setting.

Passwords are generated here, handed to the caller once (for Grafana's encrypted
`secureJsonData`) and never kept: PostgreSQL receives a SCRAM verifier computed on
this side, so the clear text does not even reach the server's statement log.

A reader can lift every per-role default given here (`statement_timeout`,
`default_transaction_read_only`): SET is always allowed to a session. The limit it
cannot lift is `cancel_overrunning_reader_queries`, run by lorakom's background jobs
with the rights of the application's login (superuser, or member of
`pg_signal_backend` and `pg_read_all_stats`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from domain.errors import ConfigurationError, Conflict

READER_GROUP = "lorakom_reader"
"""The NOLOGIN group role whose grants every dashboard login inherits (made by a migration)."""

MAX_ROLE_NAME = 63
"""PostgreSQL cuts longer identifiers silently (NAMEDATALEN - 1): two towns could share a login."""


class ReaderSettings(BaseSettings):
    """The dashboard logins' names and the limits put on them."""

    model_config = SettingsConfigDict(env_prefix="LORAKOM_READERS_", extra="forbid")

    role_prefix: str = "lorakom_reader_"
    """Town logins are `<prefix><slug>`. Roles are cluster-wide: two installations on one
    PostgreSQL cluster need different prefixes, or they would share (and re-key) logins."""
    statement_timeout_s: int = 30
    """Each login's default statement timeout: stops a slow panel early (the reader may lift it)."""
    connection_limit: int = 10
    """Connections one login may hold; Grafana's pool for the data source is sized to it."""
    query_limit_s: float = 120.0
    """The limit a reader cannot lift: the background guard cancels queries running longer."""
    guard_interval_s: float = 5.0
    """How often the guard looks for overrunning reader queries."""


@dataclass(frozen=True)
class ReaderTarget:
    """Whom a login reads for: a municipality, or the region (`municipality_id` None)."""

    role_name: str
    municipality_id: int | None
    slug: str | None
    name: str


@dataclass(frozen=True)
class ReaderLogin:
    """A login after `ensure_reader_login`; `password` is set only when it was (re)set now."""

    role_name: str
    created: bool
    password: str | None


@dataclass(frozen=True)
class CancelledQuery:
    pid: int
    role_name: str
    running_s: float
    ended_session: bool = False
    """True when the session sat idle in an open transaction and was ended, not just cancelled."""


def town_role_name(slug: str, prefix: str) -> str:
    """`<prefix><slug>`, shortened with a hash of the slug where PostgreSQL would cut it.

    Slugs keep their hyphens (role names are always quoted here), so a town login can
    never contain an underscore after the prefix: the region's name below has one.
    """
    name = f"{prefix}{slug}"
    if len(name.encode()) <= MAX_ROLE_NAME:
        return name
    digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
    keep = MAX_ROLE_NAME - len(prefix.encode()) - len(digest) - 1
    if keep < 1:
        raise ConfigurationError(f"LORAKOM_READERS_ROLE_PREFIX {prefix!r} is too long for a role name")
    return f"{prefix}{slug[:keep]}-{digest}"


def region_role_name(prefix: str) -> str:
    """The region's login: the underscore in it is a character no slug has."""
    name = f"{prefix}region_shared"
    if len(name.encode()) > MAX_ROLE_NAME:
        raise ConfigurationError(f"LORAKOM_READERS_ROLE_PREFIX {prefix!r} is too long for a role name")
    return name


def reader_targets(conn: Connection, settings: ReaderSettings) -> list[ReaderTarget]:
    """Every municipality's login (ordered by slug), then the region's."""
    rows = conn.execute(text("SELECT id, slug, name FROM municipality ORDER BY slug")).all()
    towns = [
        ReaderTarget(town_role_name(row.slug, settings.role_prefix), int(row.id), row.slug, row.name)
        for row in rows
    ]
    return [*towns, ReaderTarget(region_role_name(settings.role_prefix), None, None, "Region")]


def generate_password() -> str:
    """256 random bits, URL-safe: no character a connection string or JSON would need escaped."""
    return secrets.token_urlsafe(32)


ATTRIBUTES = {
    "rolsuper": "SUPERUSER",
    "rolinherit": "INHERIT",
    "rolcreaterole": "CREATEROLE",
    "rolcreatedb": "CREATEDB",
    "rolcanlogin": "LOGIN",
    "rolreplication": "REPLICATION",
    "rolbypassrls": "BYPASSRLS",
}
"""pg_roles' columns and the ALTER ROLE keyword of each (NO<keyword> takes it away)."""

WANTED_ATTRIBUTES = {
    "rolsuper": False,
    "rolinherit": True,  # the group's SELECT grants reach the login only by inheritance
    "rolcreaterole": False,
    "rolcreatedb": False,
    "rolcanlogin": True,
    "rolreplication": False,
    "rolbypassrls": False,
}


def ensure_reader_login(
    conn: Connection, target: ReaderTarget, settings: ReaderSettings, *, set_password: bool
) -> ReaderLogin:
    """Create or re-assert `target`'s login; give it a new password if asked or if it is new.

    Run in the caller's transaction: the role, its membership and its registration are
    committed together or not at all. The safety properties (no superuser, no
    BYPASSRLS, connection limit, read-only default, membership) are checked on every
    run and only what differs is altered, so a login loosened by hand is tightened again
    and a login in order is not written to. That also lets a non-superuser application
    login (CREATEROLE) run it: PostgreSQL lets only a superuser even *name* the
    SUPERUSER, REPLICATION or BYPASSRLS attribute. A role of that name that lorakom did
    not register for this municipality is refused rather than taken over: it may be a
    person's login, or another installation's.
    """
    registered = conn.execute(
        text("SELECT municipality_id FROM reader_role WHERE role_name = :name"), {"name": target.role_name}
    ).first()
    current = conn.execute(
        text(
            """
            SELECT r.*, EXISTS (
                SELECT FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                WHERE m.member = r.oid AND g.rolname = :group) AS in_group
            FROM pg_roles r WHERE r.rolname = :name
            """
        ),
        {"name": target.role_name, "group": READER_GROUP},
    ).first()
    if current is not None and registered is None:
        raise Conflict(
            f"a database role {target.role_name!r} exists and is not a registered dashboard login;"
            " choose another LORAKOM_READERS_ROLE_PREFIX or drop that role"
        )
    if registered is not None and registered.municipality_id != target.municipality_id:
        raise Conflict(f"dashboard login {target.role_name!r} is registered for another municipality")

    role = sql.Identifier(target.role_name)
    password = generate_password() if set_password or current is None else None
    statements: list[sql.Composable] = []
    if current is None:
        # PostgreSQL's defaults are the wanted attributes apart from LOGIN.
        statements.append(
            sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT {}").format(
                role, sql.Literal(settings.connection_limit)
            )
        )
        config: set[str] = set()
    else:
        changes: list[sql.Composable] = [
            sql.SQL(("" if wanted else "NO") + ATTRIBUTES[column])
            for column, wanted in WANTED_ATTRIBUTES.items()
            if getattr(current, column) != wanted
        ]
        if current.rolconnlimit != settings.connection_limit:
            changes.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(settings.connection_limit)))
        if changes:
            statements.append(sql.SQL("ALTER ROLE {} WITH {}").format(role, sql.SQL(" ").join(changes)))
        config = set(current.rolconfig or [])
    if password is not None:
        verifier = _scram_verifier(conn, target.role_name, password)
        statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(verifier)))
    for name, value in (
        ("default_transaction_read_only", "on"),
        ("statement_timeout", f"{settings.statement_timeout_s}s"),
    ):
        if f"{name}={value}" not in config:
            statements.append(
                sql.SQL("ALTER ROLE {} SET {} = {}").format(role, sql.Identifier(name), sql.Literal(value))
            )
    if current is None or not current.in_group:
        statements.append(sql.SQL("GRANT {} TO {}").format(sql.Identifier(READER_GROUP), role))
    raw = _driver_connection(conn)
    try:
        for statement in statements:
            conn.exec_driver_sql(statement.as_string(raw))
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.errors.InsufficientPrivilege):
            raise ConfigurationError(
                f"lorakom's database login may not set up {target.role_name!r}: {exc.orig}"
                " (it needs CREATEROLE and ADMIN on lorakom_reader; deploy/README.md)"
            ) from exc
        raise
    if registered is None:
        conn.execute(
            text("INSERT INTO reader_role (role_name, municipality_id) VALUES (:name, :town)"),
            {"name": target.role_name, "town": target.municipality_id},
        )
    return ReaderLogin(target.role_name, created=current is None, password=password)


def retire_orphaned_logins(conn: Connection, settings: ReaderSettings) -> list[str]:
    """Take sign-in and the group's grants from this installation's logins no longer registered.

    Deleting a municipality deletes its `reader_role` row (ON DELETE CASCADE) but not
    the cluster-wide role: a login that no registration maps to must not keep reading,
    whatever the policies make of an unmapped login. Only members of `lorakom_reader`
    with this installation's prefix are touched (a person's role is never a member), and
    a retired login is no longer one, so running again finds nothing. Returns the names.
    """
    rows = conn.execute(
        text(
            """
            SELECT r.rolname FROM pg_roles r
            WHERE starts_with(r.rolname, :prefix)
              AND NOT EXISTS (SELECT FROM reader_role rr WHERE rr.role_name = r.rolname)
              AND EXISTS (
                  SELECT FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                  WHERE m.member = r.oid AND g.rolname = :group)
            ORDER BY r.rolname
            """
        ),
        {"prefix": settings.role_prefix, "group": READER_GROUP},
    ).all()
    raw = _driver_connection(conn)
    for row in rows:
        role = sql.Identifier(row.rolname)
        conn.exec_driver_sql(
            sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(READER_GROUP), role).as_string(raw)
        )
        conn.exec_driver_sql(sql.SQL("ALTER ROLE {} NOLOGIN").format(role).as_string(raw))
    return [str(row.rolname) for row in rows]


def cancel_overrunning_reader_queries(conn: Connection, limit_s: float) -> list[CancelledQuery]:
    """Stop what a dashboard login in this database has been doing for longer than `limit_s`.

    A running query is cancelled. A session idle inside an open transaction is ended: it
    runs nothing, but holds its tables' locks, and a migration's ALTER TABLE queued behind
    such a lock stops every other query on that table (Grafana itself never leaves a
    transaction open). Dashboard logins are the members of `lorakom_reader`, looked up by
    name so that the guard runs (finding nothing) where the group does not exist yet.
    Signalling another login's backend needs superuser, or `pg_signal_backend`; seeing
    its state needs `pg_read_all_stats` (without it, `state` reads NULL and nothing is
    found): `guard_privileges` tells which is missing.
    """
    rows = conn.execute(
        text(
            """
            SELECT a.pid, a.usename, a.state,
                   extract(epoch FROM clock_timestamp() - a.state_change) AS running_s,
                   CASE WHEN a.state = 'active' THEN pg_cancel_backend(a.pid)
                        ELSE pg_terminate_backend(a.pid) END AS stopped
            FROM pg_stat_activity a
            WHERE a.datname = current_database()
              AND a.pid <> pg_backend_pid()
              AND a.state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
              AND a.state_change < clock_timestamp() - make_interval(secs => :limit_s)
              AND EXISTS (
                  SELECT FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                  WHERE m.member = a.usesysid AND g.rolname = :group
              )
            """
        ),
        {"limit_s": limit_s, "group": READER_GROUP},
    ).all()
    return [
        CancelledQuery(int(row.pid), row.usename, float(row.running_s), ended_session=row.state != "active")
        for row in rows
        if row.stopped
    ]


def guard_privileges(conn: Connection) -> list[str]:
    """The predefined roles the guard's login lacks (empty for a superuser or a login holding both)."""
    row = conn.execute(
        text(
            """
            SELECT r.rolsuper,
                   pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS may_signal,
                   pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS may_read_stats
            FROM pg_roles r WHERE r.rolname = current_user
            """
        )
    ).one()
    if row.rolsuper:
        return []
    missing = []
    if not row.may_signal:
        missing.append("pg_signal_backend")
    if not row.may_read_stats:
        missing.append("pg_read_all_stats")
    return missing


def _driver_connection(conn: Connection) -> psycopg.Connection[Any]:
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise ConfigurationError("dashboard logins need the psycopg 3 driver")
    return raw


def _scram_verifier(conn: Connection, role_name: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier libpq computes for `password`: what PostgreSQL stores anyway."""
    pgconn = _driver_connection(conn).pgconn
    return pgconn.encrypt_password(password.encode(), role_name.encode(), b"scram-sha-256").decode()
