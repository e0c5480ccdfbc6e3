"""Dashboard logins against the real PostgreSQL: creation, idempotency, passwords, the query guard."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from domain.errors import ConfigurationError, Conflict
from storage.database import create_database_engine, libpq_url
from storage.reader_roles import (
    MAX_ROLE_NAME,
    READER_GROUP,
    ReaderSettings,
    ReaderTarget,
    cancel_overrunning_reader_queries,
    ensure_reader_login,
    guard_privileges,
    reader_targets,
    region_role_name,
    retire_orphaned_logins,
    town_role_name,
)
from tests.storage.reader_logins import (
    drop_roles,
    reader_sleeps,
    scram_matches,
    unique_prefix,
    wait_until_active,
)


@pytest.fixture(scope="module")
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = create_database_engine(migrated_db_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(postgres_server: str) -> Iterator[ReaderSettings]:
    settings = ReaderSettings(role_prefix=unique_prefix(), statement_timeout_s=7, connection_limit=4)
    try:
        yield settings
    finally:
        drop_roles(postgres_server, settings.role_prefix)


@pytest.fixture
def town(engine: Engine) -> Iterator[tuple[int, str]]:
    slug = f"reader-town-{uuid.uuid4().hex[:6]}"
    with engine.begin() as conn:
        town_id = conn.execute(
            text("INSERT INTO municipality (slug, name) VALUES (:slug, 'Reader Town') RETURNING id"),
            {"slug": slug},
        ).scalar_one()
    yield int(town_id), slug
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM municipality WHERE id = :id"), {"id": town_id})


def town_target(engine: Engine, settings: ReaderSettings, slug: str) -> ReaderTarget:
    with engine.connect() as conn:
        (target,) = [t for t in reader_targets(conn, settings) if t.slug == slug]
    return target


def ensure(engine: Engine, target: ReaderTarget, settings: ReaderSettings, *, set_password: bool) -> Any:
    with engine.begin() as conn:
        return ensure_reader_login(conn, target, settings, set_password=set_password)


def role_facts(engine: Engine, role_name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                """
                SELECT a.rolcanlogin, a.rolsuper, a.rolbypassrls, a.rolcreaterole, a.rolinherit,
                       a.rolconnlimit, a.rolpassword,
                       (SELECT rolconfig FROM pg_roles r WHERE r.oid = a.oid) AS rolconfig,
                       pg_has_role(a.oid, :group, 'USAGE') AS reads,
                       (SELECT municipality_id FROM reader_role WHERE role_name = a.rolname) AS town,
                       EXISTS (SELECT FROM reader_role WHERE role_name = a.rolname) AS registered
                FROM pg_authid a WHERE a.rolname = :name
                """
            ),
            {"name": role_name, "group": READER_GROUP},
        ).one()
    return dict(row._mapping)


def test_town_login_is_created_confined_and_registered(
    engine: Engine, settings: ReaderSettings, town: tuple[int, str]
) -> None:
    town_id, slug = town
    target = town_target(engine, settings, slug)
    assert target.role_name == f"{settings.role_prefix}{slug}"

    login = ensure(engine, target, settings, set_password=False)

    assert login.created
    assert login.password is not None
    facts = role_facts(engine, target.role_name)
    assert facts["rolcanlogin"]
    assert facts["rolinherit"]
    assert not facts["rolsuper"]
    assert not facts["rolbypassrls"]
    assert not facts["rolcreaterole"]
    assert facts["rolconnlimit"] == 4
    assert facts["reads"]
    assert facts["town"] == town_id
    assert set(facts["rolconfig"]) == {"default_transaction_read_only=on", "statement_timeout=7s"}


def test_password_reaches_postgresql_only_as_a_verifier_of_the_password_handed_out(
    engine: Engine, settings: ReaderSettings, town: tuple[int, str]
) -> None:
    target = town_target(engine, settings, town[1])
    login = ensure(engine, target, settings, set_password=False)
    stored = role_facts(engine, target.role_name)["rolpassword"]
    assert login.password is not None
    assert login.password not in stored
    assert scram_matches(stored, login.password)
    assert not scram_matches(stored, login.password + "x")


def test_running_again_changes_nothing_and_rotation_changes_only_the_password(
    engine: Engine, settings: ReaderSettings, town: tuple[int, str]
) -> None:
    target = town_target(engine, settings, town[1])
    first = ensure(engine, target, settings, set_password=False)
    before = role_facts(engine, target.role_name)

    again = ensure(engine, target, settings, set_password=False)
    assert not again.created
    assert again.password is None
    assert role_facts(engine, target.role_name) == before

    rotated = ensure(engine, target, settings, set_password=True)
    after = role_facts(engine, target.role_name)
    assert rotated.password not in (None, first.password)
    assert scram_matches(after["rolpassword"], rotated.password)
    assert {k: v for k, v in after.items() if k != "rolpassword"} == {
        k: v for k, v in before.items() if k != "rolpassword"
    }


def test_a_loosened_login_is_tightened_again(
    engine: Engine, settings: ReaderSettings, town: tuple[int, str], postgres_server: str
) -> None:
    target = town_target(engine, settings, town[1])
    ensure(engine, target, settings, set_password=False)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'ALTER ROLE "{target.role_name}" SUPERUSER BYPASSRLS CREATEROLE CONNECTION LIMIT -1')
        conn.execute(f'REVOKE {READER_GROUP} FROM "{target.role_name}"')

    ensure(engine, target, settings, set_password=False)

    facts = role_facts(engine, target.role_name)
    assert (facts["rolsuper"], facts["rolbypassrls"], facts["rolcreaterole"]) == (False, False, False)
    assert facts["rolconnlimit"] == 4
    assert facts["reads"]


def test_a_role_lorakom_did_not_register_is_not_taken_over(
    engine: Engine, settings: ReaderSettings, town: tuple[int, str], postgres_server: str
) -> None:
    target = town_target(engine, settings, town[1])
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{target.role_name}\" LOGIN PASSWORD 'a person''s own'")
    before = role_facts(engine, target.role_name)

    with pytest.raises(Conflict, match="not a registered dashboard login"):
        ensure(engine, target, settings, set_password=True)

    assert role_facts(engine, target.role_name) == before
    assert not before["registered"]


def test_a_non_superuser_application_login_with_createrole_sets_logins_up(
    engine: Engine,
    settings: ReaderSettings,
    town: tuple[int, str],
    migrated_db_url: str,
    postgres_server: str,
) -> None:
    """As on a managed PostgreSQL, where lorakom's own login is no superuser."""
    manager = f"{settings.role_prefix}manager"
    with psycopg.connect(libpq_url(migrated_db_url), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{manager}" LOGIN CREATEROLE')
        conn.execute(f'GRANT SELECT, INSERT ON reader_role TO "{manager}"')
        # Row security keeps `reader_role` from everyone but its owner (lorakom's own login,
        # which ran the migrations); this manager stands in for that owner.
        conn.execute(
            f'CREATE POLICY manager_stand_in ON reader_role TO "{manager}" USING (true) WITH CHECK (true)'
        )
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None
        if int(version[0]) >= 160000:  # since 16, granting a role needs ADMIN on it
            conn.execute(f'GRANT {READER_GROUP} TO "{manager}" WITH ADMIN OPTION')
    target = town_target(engine, settings, town[1])
    as_manager = engine_as(migrated_db_url, manager)
    try:
        first = ensure(as_manager, target, settings, set_password=False)
        again = ensure(as_manager, target, settings, set_password=False)
        rotated = ensure(as_manager, target, settings, set_password=True)
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'ALTER ROLE "{target.role_name}" BYPASSRLS')
        with pytest.raises(ConfigurationError, match="CREATEROLE"):
            ensure(as_manager, target, settings, set_password=False)
    finally:
        as_manager.dispose()
        with psycopg.connect(libpq_url(migrated_db_url), autocommit=True) as conn:
            conn.execute("DROP POLICY manager_stand_in ON reader_role")
            conn.execute(f'REVOKE ALL ON reader_role FROM "{manager}"')
    assert first.created
    assert again.password is None
    facts = role_facts(engine, target.role_name)
    assert facts["reads"]
    assert facts["rolconnlimit"] == 4
    assert rotated.password is not None
    assert scram_matches(facts["rolpassword"], rotated.password)


def test_region_login_is_registered_without_a_municipality(engine: Engine, settings: ReaderSettings) -> None:
    with engine.connect() as conn:
        region = reader_targets(conn, settings)[-1]
    assert region.municipality_id is None
    assert region.role_name == region_role_name(settings.role_prefix)

    ensure(engine, region, settings, set_password=False)

    facts = role_facts(engine, region.role_name)
    assert facts["registered"]
    assert facts["town"] is None
    assert facts["reads"]


def test_the_login_of_a_deleted_municipality_can_no_longer_sign_in_or_read(
    engine: Engine, settings: ReaderSettings, postgres_server: str
) -> None:
    with engine.begin() as conn:
        town_id = conn.execute(
            text("INSERT INTO municipality (slug, name) VALUES (:slug, 'Gone') RETURNING id"),
            {"slug": f"gone-{uuid.uuid4().hex[:6]}"},
        ).scalar_one()
    target = next(t for t in reader_targets_of(engine, settings) if t.municipality_id == town_id)
    ensure(engine, target, settings, set_password=False)
    bystander = f"{settings.role_prefix}someone"  # a person's role that happens to share the prefix
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{bystander}" LOGIN')
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM municipality WHERE id = :id"), {"id": town_id})

    with engine.begin() as conn:
        retired = retire_orphaned_logins(conn, settings)
    with engine.begin() as conn:
        again = retire_orphaned_logins(conn, settings)

    assert retired == [target.role_name]
    assert again == []
    facts = role_facts(engine, target.role_name)
    assert not facts["rolcanlogin"]
    assert not facts["reads"]
    assert role_facts(engine, bystander)["rolcanlogin"]


def reader_targets_of(engine: Engine, settings: ReaderSettings) -> list[ReaderTarget]:
    with engine.connect() as conn:
        return reader_targets(conn, settings)


def test_role_names_fit_postgresql_and_never_collide() -> None:
    prefix = "lorakom_reader_"
    longest = "a" * 63
    near = "a" * 62 + "b"
    names = {town_role_name(slug, prefix) for slug in (longest, near, "region", "region-shared")}
    assert len(names) == 4
    assert all(len(name) <= MAX_ROLE_NAME for name in names)
    assert region_role_name(prefix) not in names
    assert town_role_name("paderborn", prefix) == "lorakom_reader_paderborn"


def cancel_until_stopped(engine: Engine, sleeper: threading.Thread, limit_s: float) -> list[Any]:
    cancelled: list[Any] = []
    while sleeper.is_alive():
        with engine.begin() as conn:
            cancelled += cancel_overrunning_reader_queries(conn, limit_s)
        sleeper.join(0.2)
    return cancelled


def test_a_reader_cannot_lift_the_query_limit(
    engine: Engine, settings: ReaderSettings, town: tuple[int, str], migrated_db_url: str
) -> None:
    target = town_target(engine, settings, town[1])
    ensure(engine, target, settings, set_password=False)
    outcome: dict[str, BaseException | None] = {}
    sleeper = threading.Thread(target=reader_sleeps, args=(migrated_db_url, target.role_name, 120, outcome))
    owner_outcome: dict[str, BaseException | None] = {}

    def owner_sleeps() -> None:
        try:
            with psycopg.connect(libpq_url(migrated_db_url)) as conn:
                conn.execute("SELECT pg_sleep(1.5)")
            owner_outcome["error"] = None
        except psycopg.Error as exc:
            owner_outcome["error"] = exc

    owner = threading.Thread(target=owner_sleeps)
    sleeper.start()
    owner.start()
    wait_until_active(engine, target.role_name)

    cancelled = cancel_until_stopped(engine, sleeper, limit_s=0.5)

    assert isinstance(outcome["error"], psycopg.errors.QueryCanceled)
    assert [query.role_name for query in cancelled] == [target.role_name]
    assert cancelled[0].running_s >= 0.5
    owner.join()
    assert owner_outcome == {"error": None}, "the application's own long query was left alone"


def test_a_reader_idle_inside_an_open_transaction_is_ended(
    engine: Engine, settings: ReaderSettings, town: tuple[int, str], migrated_db_url: str
) -> None:
    """It runs nothing but holds its locks: a migration queued behind them would stall the table."""
    target = town_target(engine, settings, town[1])
    ensure(engine, target, settings, set_password=False)
    with psycopg.connect(libpq_url(migrated_db_url), user=target.role_name, password="unused") as reader:
        reader.execute("SET idle_in_transaction_session_timeout = 0")
        reader.execute("SELECT 1")  # psycopg opened a transaction; it now stays open and idle
        cancelled: list[Any] = []
        while not cancelled:
            with engine.begin() as conn:
                cancelled = cancel_overrunning_reader_queries(conn, 0.3)
            threading.Event().wait(0.1)
        with pytest.raises(psycopg.OperationalError):
            reader.execute("SELECT 1")
    assert [(query.role_name, query.ended_session) for query in cancelled] == [(target.role_name, True)]


@pytest.fixture
def guardian(postgres_server: str, settings: ReaderSettings) -> str:
    """A login like a managed database's application login: no superuser (dropped with the prefix)."""
    name = f"{settings.role_prefix}guardian"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER')
    return name


def engine_as(url: str, role_name: str) -> Engine:
    from sqlalchemy.engine import make_url

    return create_database_engine(make_url(url).set(username=role_name).render_as_string(False), pool_size=1)


def test_the_guard_needs_only_pg_signal_backend_and_pg_read_all_stats(
    engine: Engine,
    settings: ReaderSettings,
    town: tuple[int, str],
    migrated_db_url: str,
    postgres_server: str,
    guardian: str,
) -> None:
    target = town_target(engine, settings, town[1])
    ensure(engine, target, settings, set_password=False)
    as_guardian = engine_as(migrated_db_url, guardian)
    try:
        with as_guardian.connect() as conn:
            assert guard_privileges(conn) == ["pg_signal_backend", "pg_read_all_stats"]
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'GRANT pg_signal_backend, pg_read_all_stats TO "{guardian}"')
        with as_guardian.connect() as conn:
            assert guard_privileges(conn) == []

        outcome: dict[str, BaseException | None] = {}
        sleeper = threading.Thread(
            target=reader_sleeps, args=(migrated_db_url, target.role_name, 120, outcome)
        )
        sleeper.start()
        wait_until_active(engine, target.role_name)
        cancelled = cancel_until_stopped(as_guardian, sleeper, limit_s=0.2)
    finally:
        as_guardian.dispose()
    assert isinstance(outcome["error"], psycopg.errors.QueryCanceled)
    assert [query.role_name for query in cancelled] == [target.role_name]
