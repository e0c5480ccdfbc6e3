"""Isolation between municipalities in PostgreSQL itself (migration 0009, `storage.tenancy`).

Two towns with rows in every tenant table, a third with almost nothing; B shares waste
with A and parking with the region. As the API's tenant role acting for A, and as a
dashboard login mapped to A, every table shows A's rows and what B shared with A for
that use case, nothing else; writes into B's rows are refused; secrets are not readable
at all; a dashboard login cannot choose another town. Every Grafana panel's SQL, run as
A's login, answers as if only A existed.

The module runs on a database of its own, so the expected row sets are exact: no other
test's municipalities (or their region-wide grants) are around. Roles are cluster-wide,
so the logins made here have unique names and are dropped afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import MunicipalityDep, SessionDep
from api.settings import ApiSettings
from storage.database import create_database_engine, libpq_url
from storage.devices import registered_elsewhere
from storage.schema import upgrade_database
from storage.tenancy import act_as_platform, act_as_tenant, tenant_of, tenant_session
from tests.api.data import Tenant, auth
from tests.conftest import create_database, drop_database
from tests.deploy.test_dashboards import FOREIGN, HOME, QUERIES, Query, expand, insert_sample_rows

NOW = datetime.now(UTC)


@dataclass
class Towns:
    """What was inserted, by table: the key of each row, and whose it is."""

    url: str
    a: int
    b: int
    c: int
    own: dict[str, set[Any]] = field(default_factory=dict)  # A's rows
    shared: dict[str, set[Any]] = field(default_factory=dict)  # B's rows that B shared with A
    foreign: dict[str, set[Any]] = field(default_factory=dict)  # B's and C's rows A must never see

    def add(self, kind: str, table: str, key: Any) -> None:
        getattr(self, kind).setdefault(table, set()).add(key)


# The key that names a row of each table, as the tenant and the reader select it.
KEYS: dict[str, str] = {
    "device": "SELECT dev_eui FROM device",
    "device_state": "SELECT d.dev_eui FROM device_state s JOIN device d ON d.id = s.device_id",
    "reading": "SELECT d.dev_eui FROM reading r JOIN device d ON d.id = r.device_id",
    "uplink": "SELECT uplink_key FROM uplink",
    "reception": "SELECT uplink_key FROM reception",
    "device_activity": "SELECT dev_eui FROM device_activity",
    "gateway": "SELECT gateway_id FROM gateway",
    "gateway_heard": "SELECT gateway_id FROM gateway_heard",
    "gateway_activity": "SELECT gateway_id FROM gateway_activity",
    "gateway_device": "SELECT dev_eui FROM gateway_device",
    "gateway_heartbeat": "SELECT gateway_id FROM gateway_heartbeat",
    "alert_rule": "SELECT name FROM alert_rule",
    "alert_event": "SELECT subject FROM alert_event",
    "parking_zone": "SELECT name FROM parking_zone",
    "soil_threshold": "SELECT soil_type FROM soil_threshold",
    "codec_script": "SELECT codec_id FROM codec_script",
    "sharing_grant": "SELECT use_case FROM sharing_grant",
    "municipality": "SELECT slug FROM municipality",
    "rejected_message": "SELECT source FROM rejected_message",
    "webhook_subscription": "SELECT url FROM webhook_subscription",
    "webhook_delivery": "SELECT transition FROM webhook_delivery",
    "webhook_attempt": "SELECT duration_ms FROM webhook_attempt",
    "api_key": "SELECT prefix FROM api_key",
}
# An attempt keeps only its outcome's class, so its duration tells whose it is.
ATTEMPT_MS = {"a": 1.0, "b": 2.0, "c": 3.0}
SECRETS = ("api_key", "webhook_subscription", "webhook_delivery", "webhook_attempt", "reader_role")


def _populate(conn: psycopg.Connection[Any], towns: dict[str, int]) -> Towns:
    """Rows of A and B in every tenant table (and one device of C), inserted as the owner."""

    def one(statement: str, params: tuple[Any, ...]) -> Any:
        row = conn.execute(statement.encode(), params).fetchone()
        assert row is not None
        return row[0]

    found = Towns(url="", a=towns["a"], b=towns["b"], c=towns["c"])
    hour = NOW - timedelta(hours=1)
    devices = [  # (town, tag, use case, kind for A)
        ("a", "a1", "waste", "own"),
        ("a", "a2", "soil", "own"),
        ("b", "b1", "waste", "shared"),  # shared with A directly
        ("b", "b2", "parking", "shared"),  # shared with the region, so with A too
        ("b", "b3", "soil", "foreign"),
        ("c", "c1", "waste", "foreign"),
    ]
    for town, tag, use_case, kind in devices:
        dev_eui = f"{tag}00000000000000"[:16]
        device_id = one(
            "INSERT INTO device (municipality_id, dev_eui, name, use_case) VALUES (%s, %s, %s, %s)"
            " RETURNING id",
            (towns[town], dev_eui, f"device {tag}", use_case),
        )
        conn.execute(
            "INSERT INTO device_state (device_id, quantity, time, value) VALUES (%s, 'battery', %s, 90)",
            (device_id, hour),
        )
        conn.execute(
            "INSERT INTO reading (device_id, quantity, time, value) VALUES (%s, 'battery', %s, 90)",
            (device_id, hour),
        )
        for table in ("device", "device_state", "reading"):
            found.add(kind, table, dev_eui)
    for town in ("a", "b"):
        kind = "own" if town == "a" else "foreign"
        town_id = towns[town]
        dev_eui, gateway = f"{town}100000000000000", f"gw-{town}"  # the DevEUI of its first device
        conn.execute(
            "INSERT INTO uplink (received_at, uplink_key, municipality_id, source, network_server, dev_eui,"
            " payload, decode_status) VALUES (%s, %s, %s, 'src', 'tts', %s, '\\x01', 'decoded')",
            (hour, f"up-{town}", town_id, dev_eui),
        )
        conn.execute(
            "INSERT INTO reception (received_at, uplink_key, gateway_id, antenna, dev_eui, municipality_id)"
            " VALUES (%s, %s, %s, 0, %s, %s)",
            (hour, f"up-{town}", gateway, dev_eui, town_id),
        )
        conn.execute(
            "INSERT INTO device_activity (dev_eui, municipality_id, source, first_seen_at, last_seen_at,"
            " last_gateway_id) VALUES (%s, %s, 'src', %s, %s, %s)",
            (dev_eui, town_id, hour, hour, gateway),
        )
        conn.execute(
            "INSERT INTO gateway (gateway_id, municipality_id, name) VALUES (%s, %s, %s)",
            (gateway, town_id, f"gateway {town}"),
        )
        conn.execute(
            "INSERT INTO gateway_heard (gateway_id, municipality_id, last_heard_at) VALUES (%s, %s, %s)",
            (gateway, town_id, hour),
        )
        conn.execute(
            "INSERT INTO gateway_activity (gateway_id, bin_start, receptions) VALUES (%s, %s, 3)",
            (gateway, hour),
        )
        conn.execute(
            "INSERT INTO gateway_heartbeat (time, gateway_id, online) VALUES (%s, %s, true)", (hour, gateway)
        )
        conn.execute(
            "INSERT INTO gateway_device (gateway_id, dev_eui, heard_at) VALUES (%s, %s, %s)",
            (gateway, dev_eui, hour),
        )
        rule = one(
            "INSERT INTO alert_rule (municipality_id, name, kind) VALUES (%s, %s, 'silent') RETURNING id",
            (town_id, f"rule {town}"),
        )
        event = one(
            "INSERT INTO alert_event (rule_id, municipality_id, subject_kind, subject, message, opened_at)"
            " VALUES (%s, %s, 'device', %s, 'quiet', %s) RETURNING id",
            (rule, town_id, f"subject {town}", hour),
        )
        subscription = one(
            "INSERT INTO webhook_subscription (municipality_id, url, secret_ciphertext) VALUES (%s, %s, %s)"
            " RETURNING id",
            (town_id, f"https://{town}.example/hook", f"secret-of-{town}"),
        )
        delivery = one(
            "INSERT INTO webhook_delivery (subscription_id, event_id, transition, next_attempt_at)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (subscription, event, f"open-{town}", hour),
        )
        conn.execute(
            "INSERT INTO webhook_attempt (delivery_id, attempted_at, outcome, duration_ms)"
            " VALUES (%s, %s, '5xx', %s)",
            (delivery, hour, ATTEMPT_MS[town]),
        )
        conn.execute(
            "INSERT INTO parking_zone (municipality_id, name, capacity) VALUES (%s, %s, 10)",
            (town_id, f"zone {town}"),
        )
        conn.execute(
            "INSERT INTO soil_threshold (municipality_id, soil_type, yellow_below_percent, red_below_percent)"
            " VALUES (%s, %s, 20, 10)",
            (town_id, f"loam {town}"),
        )
        conn.execute(
            "INSERT INTO codec_script (codec_id, style, script, owner_municipality_id)"
            " VALUES (%s, 'tts', 'function decodeUplink(i) { return {data: {}}; }', %s)",
            (f"town-{town}/codec", town_id),
        )
        conn.execute(
            "INSERT INTO api_key (prefix, secret_hash, name, role, municipality_id)"
            " VALUES (%s, 'hash', 'key', 'viewer', %s)",
            (f"key{town}", town_id),
        )
        for table, key in [
            ("uplink", f"up-{town}"),
            ("reception", f"up-{town}"),
            ("device_activity", dev_eui),
            ("gateway", gateway),
            ("gateway_heard", gateway),
            ("gateway_activity", gateway),
            ("gateway_heartbeat", gateway),
            ("gateway_device", dev_eui),
            ("alert_rule", f"rule {town}"),
            ("alert_event", f"subject {town}"),
            ("webhook_subscription", f"https://{town}.example/hook"),
            ("webhook_delivery", f"open-{town}"),
            ("webhook_attempt", ATTEMPT_MS[town]),
            ("soil_threshold", f"loam {town}"),
            ("codec_script", f"town-{town}/codec"),
            ("api_key", f"key{town}"),
        ]:
            found.add(kind, table, key)
        found.add(kind if town == "a" else "shared", "parking_zone", f"zone {town}")
    # B's DevEUI heard on A's gateway: A sees its gateway, never the neighbour's DevEUI on it.
    conn.execute(
        "INSERT INTO gateway_device (gateway_id, dev_eui, heard_at) VALUES ('gw-a', 'b100000000000000', %s)",
        (hour,),
    )
    conn.execute(
        "INSERT INTO codec_script (codec_id, style, script) VALUES ('region/codec', 'tts', 'function x() {}')"
    )
    found.add("own", "codec_script", "region/codec")
    conn.execute(
        "INSERT INTO sharing_grant (owner_municipality_id, use_case, grantee_municipality_id, created_by)"
        " VALUES (%s, 'waste', %s, 'kb'), (%s, 'parking', NULL, 'kb'), (%s, 'soil', %s, 'kb')",
        (towns["b"], towns["a"], towns["b"], towns["b"], towns["c"]),
    )
    found.add("shared", "sharing_grant", "waste")
    found.add("shared", "sharing_grant", "parking")
    found.add("foreign", "sharing_grant", "soil")  # B's grant to C is none of A's business
    conn.execute(
        "INSERT INTO rejected_message (source, topic, reason, payload) VALUES ('src', 't', 'bad', '\\x00')"
    )
    found.add("foreign", "rejected_message", "src")
    return found


@pytest.fixture(scope="module")
def towns(postgres_server: str) -> Iterator[Towns]:
    url = create_database(postgres_server, prefix="lorakom_rls")
    try:
        upgrade_database(url)
        with psycopg.connect(libpq_url(url)) as conn:
            ids = {
                town: conn.execute(
                    "INSERT INTO municipality (slug, name) VALUES (%s, %s) RETURNING id",
                    (f"town-{town}", town),
                ).fetchone()[0]  # type: ignore[index]
                for town in ("a", "b", "c")
            }
            found = _populate(conn, ids)
        found.url = url
        yield found
    finally:
        drop_database(postgres_server, url)


@pytest.fixture(scope="module")
def rls_engine(towns: Towns) -> Iterator[Engine]:
    engine = create_database_engine(towns.url, pool_size=2)
    yield engine
    engine.dispose()


@dataclass(frozen=True)
class Login:
    name: str
    url: str

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, user=self.name)


def make_login(url: str, municipality_id: int | None, *, mapped: bool = True) -> Login:
    """A dashboard login as provisioning makes it: a member of `lorakom_reader`, mapped to a town."""
    name = f"reader_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE lorakom_reader").format(sql.Identifier(name)))
        database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = lorakom_scoped, public").format(
                sql.Identifier(name), sql.Identifier(database)
            )
        )
        if mapped:
            conn.execute(
                "INSERT INTO reader_role (role_name, municipality_id) VALUES (%s, %s)",
                (name, municipality_id),
            )
    return Login(name, libpq_url(url))


def drop_login(login: Login) -> None:
    with psycopg.connect(login.url, autocommit=True) as conn:
        conn.execute("DELETE FROM reader_role WHERE role_name = %s", (login.name,))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login.name)))


@pytest.fixture(scope="module")
def reader(towns: Towns) -> Iterator[Login]:
    login = make_login(towns.url, towns.a)
    yield login
    drop_login(login)


def expected_for_a(towns: Towns, table: str) -> set[Any]:
    return towns.own.get(table, set()) | towns.shared.get(table, set())


TENANT_TABLES = [table for table in KEYS if table not in ("municipality",)]
READER_TABLES = [table for table in KEYS if table not in ("municipality", *SECRETS)]


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_the_tenant_role_sees_its_own_and_shared_rows_only(
    towns: Towns, rls_engine: Engine, table: str
) -> None:
    with tenant_session(rls_engine, towns.a) as session:
        visible = set(session.scalars(text(KEYS[table])))
    assert visible == expected_for_a(towns, table)
    assert not visible & towns.foreign.get(table, set())


@pytest.mark.parametrize("table", READER_TABLES)
def test_a_dashboard_login_sees_its_towns_rows_and_shared_rows_only(
    towns: Towns, reader: Login, table: str
) -> None:
    with reader.connect() as conn:
        visible = {row[0] for row in conn.execute(KEYS[table].encode())}
    assert visible == expected_for_a(towns, table)


def test_the_reader_sees_its_town_and_the_towns_sharing_with_it(towns: Towns, reader: Login) -> None:
    with reader.connect() as conn:
        slugs = {row[0] for row in conn.execute(b"SELECT slug FROM municipality")}
    assert slugs == {"town-a", "town-b"}  # C shares nothing with A


@pytest.mark.parametrize("table", SECRETS)
def test_secrets_are_not_readable_by_a_dashboard_login(reader: Login, table: str) -> None:
    with reader.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"SELECT * FROM public.{table}".encode())


@pytest.mark.parametrize("table", ["reader_role", "uplink", "reading", "reception", "gateway_heartbeat"])
def test_the_tenant_cannot_read_the_mapping_nor_the_unfiltered_time_series(
    towns: Towns, rls_engine: Engine, table: str
) -> None:
    with tenant_session(rls_engine, towns.a) as session, pytest.raises(DBAPIError) as raised:
        session.execute(text(f"SELECT count(*) FROM public.{table}"))
    assert isinstance(raised.value.orig, psycopg.errors.InsufficientPrivilege)


def test_a_reader_cannot_choose_another_town(towns: Towns, reader: Login) -> None:
    with reader.connect() as conn:
        conn.execute(b"SELECT set_config('lorakom.municipality_id', %s, false)", (str(towns.b),))
        assert {row[0] for row in conn.execute(KEYS["uplink"].encode())} == {"up-a"}
        conn.execute(b"SET ROLE lorakom_reader")  # the group role: still this login's town
        assert {row[0] for row in conn.execute(KEYS["alert_rule"].encode())} == {"rule a"}
        conn.execute(b"RESET ROLE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(b"SET ROLE lorakom_tenant")


def test_a_reader_writes_nothing(reader: Login) -> None:
    with reader.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(b"UPDATE device SET name = 'changed'")


def test_a_login_without_a_mapping_sees_nothing(towns: Towns) -> None:
    login = make_login(towns.url, None, mapped=False)
    try:
        with login.connect() as conn:
            conn.execute(b"SELECT set_config('lorakom.municipality_id', %s, false)", (str(towns.a),))
            for table in ("device", "uplink", "reading", "municipality"):
                assert conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone() == (0,), table
    finally:
        drop_login(login)


def test_the_region_login_sees_what_was_shared_with_the_region(towns: Towns) -> None:
    login = make_login(towns.url, None)
    try:
        with login.connect() as conn:
            assert {row[0] for row in conn.execute(KEYS["device"].encode())} == {"b200000000000000"}
            assert {row[0] for row in conn.execute(KEYS["reading"].encode())} == {"b200000000000000"}
            assert {row[0] for row in conn.execute(KEYS["uplink"].encode())} == set()
    finally:
        drop_login(login)


def test_the_tenant_cannot_write_into_another_towns_rows(towns: Towns, rls_engine: Engine) -> None:
    with tenant_session(rls_engine, towns.a) as session:
        # Shared for reading: visible, yet an update or delete touches nothing.
        changed = session.execute(text("UPDATE device SET name = 'taken' WHERE dev_eui LIKE 'b%'"))
        assert changed.rowcount == 0  # type: ignore[attr-defined]
        removed = session.execute(text("DELETE FROM parking_zone WHERE name = 'zone b'"))
        assert removed.rowcount == 0  # type: ignore[attr-defined]
        for statement in (
            f"INSERT INTO device (municipality_id, dev_eui, name) VALUES ({towns.b}, 'a9a9a9a9a9a9a9a9', '')",
            f"UPDATE device SET municipality_id = {towns.b} WHERE dev_eui = 'a100000000000000'",
            f"INSERT INTO alert_rule (municipality_id, name, kind) VALUES ({towns.b}, 'planted', 'silent')",
            "INSERT INTO sharing_grant (owner_municipality_id, use_case, created_by) "
            f"VALUES ({towns.b}, 'soil', 'k')",
        ):
            with pytest.raises(DBAPIError) as raised, session.begin_nested():
                session.execute(text(statement))
            assert isinstance(raised.value.orig, psycopg.errors.InsufficientPrivilege), statement
        # Its own rows it writes: the confinement is no read-only mode.
        renamed = session.execute(text("UPDATE device SET name = 'renamed' WHERE dev_eui LIKE 'a1%'"))
        assert renamed.rowcount == 1  # type: ignore[attr-defined]
        session.rollback()


def test_an_unfiltered_query_through_a_tenant_session_returns_own_rows_only(
    towns: Towns, rls_engine: Engine
) -> None:
    """A query that forgot its municipality filter, as the API would run it: still one town's."""
    with Session(rls_engine) as session:
        act_as_tenant(session, towns.a)
        owners = set(session.scalars(text("SELECT DISTINCT municipality_id FROM uplink")))
        session.commit()  # a commit mid-request keeps the confinement
        alerts = set(session.scalars(text("SELECT DISTINCT municipality_id FROM alert_event")))
        assert tenant_of(session) == towns.a
    assert owners == {towns.a}
    assert alerts == {towns.a}


def test_leaving_the_confinement_is_explicit(towns: Towns, rls_engine: Engine) -> None:
    with Session(rls_engine) as session:
        act_as_tenant(session, towns.a)
        assert set(session.scalars(text("SELECT DISTINCT municipality_id FROM uplink"))) == {towns.a}
        act_as_platform(session)
        everyone = set(session.scalars(text("SELECT DISTINCT municipality_id FROM uplink")))
        assert everyone == {towns.a, towns.b}
        assert session.scalar(text("SELECT current_user")) != "lorakom_tenant"


def test_registration_learns_only_that_a_dev_eui_is_taken_elsewhere(towns: Towns, rls_engine: Engine) -> None:
    with tenant_session(rls_engine, towns.a) as session:
        taken = registered_elsewhere(session, towns.a, ["a100000000000000", "b100000000000000", "ffff"])
    assert taken == {"b100000000000000"}


def test_every_table_is_covered_by_row_security_or_kept_from_both_roles(towns: Towns) -> None:
    """A table added later without a policy must not open to the tenant or the readers."""
    with psycopg.connect(libpq_url(towns.url)) as conn:
        rows = conn.execute(
            b"SELECT c.relname, c.relrowsecurity, "
            b"has_table_privilege('lorakom_tenant', c.oid, 'SELECT'), "
            b"has_table_privilege('lorakom_reader', c.oid, 'SELECT') "
            b"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            b"WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')"
        ).fetchall()
    exposed = [name for name, secured, tenant, reader in rows if (tenant or reader) and not secured]
    assert exposed == []
    assert {name for name, *_ in rows} >= set(KEYS)


# --- the dashboards, as a town's login runs them ----------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard_db(postgres_server: str) -> Iterator[tuple[str, Login]]:
    """The dashboards' sample rows (a home and a foreign town), committed, and a login mapped to home."""
    url = create_database(postgres_server, prefix="lorakom_rls_dash")
    login: Login | None = None
    try:
        upgrade_database(url)
        with psycopg.connect(libpq_url(url)) as conn:
            insert_sample_rows(conn)
            home = conn.execute(b"SELECT id FROM municipality WHERE slug = %s", (HOME,)).fetchone()
            assert home is not None
        login = make_login(url, home[0])
        yield libpq_url(url), login
    finally:
        if login is not None:
            drop_login(login)
        drop_database(postgres_server, url)


FOREIGN_MARKERS = ("d0d0000000000007", "Foreign Bin", "b0b0000000000001", FOREIGN)


def _rows(conn: psycopg.Connection[Any], query: Query, municipalities: list[str]) -> list[Any]:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(expand(query.sql, municipalities).encode())
        return cursor.fetchall()


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.id)
def test_every_dashboard_panel_answers_a_towns_login_with_that_towns_rows_only(
    dashboard_db: tuple[str, Login], query: Query
) -> None:
    owner_url, login = dashboard_db
    with login.connect() as conn, conn.transaction():  # one transaction: one now() for both runs
        asked_for_both = _rows(conn, query, [HOME, FOREIGN])
        asked_for_home = _rows(conn, query, [HOME])
    assert asked_for_both == asked_for_home, "the foreign town's rows reached the home town's login"
    assert not any(marker in json.dumps(asked_for_both, default=str) for marker in FOREIGN_MARKERS)
    # Rejected messages are kept by source, no town's: the login sees none. A variable lists
    # the towns to choose from: the login has its own to choose only.
    if "rejected_message" not in query.sql and not query.title.startswith("$"):
        with psycopg.connect(owner_url) as owner:
            assert len(asked_for_home) == len(_rows(owner, query, [HOME])), "the login misses own rows"


# --- the API's own requests ---------------------------------------------------------------------------


def test_a_municipality_routes_queries_are_confined_by_the_database(
    settings: ApiSettings, engine: Engine, tenant: Tenant, neighbour: Tenant, region_key: str
) -> None:
    """A route that forgets its municipality filter, behind the ordinary dependencies: as the
    tenant's key, and as the region admin's key asking for the tenant, it sees one town only."""
    moment = datetime.now(UTC)
    with Session(engine) as owner:
        for town in (tenant, neighbour):
            owner.execute(
                text(
                    "INSERT INTO uplink (received_at, uplink_key, municipality_id, source, network_server, "
                    "payload, decode_status) VALUES (:at, :key, :town, 'src', 'tts', '\\x01', 'decoded')"
                ),
                {"at": moment, "key": uuid.uuid4().hex, "town": town.id},
            )
        owner.commit()

    def careless(municipality: MunicipalityDep, session: SessionDep) -> dict[str, Any]:
        towns = session.scalars(text("SELECT DISTINCT municipality_id FROM uplink"))
        return {"role": session.scalar(text("SELECT current_user")), "towns": sorted(towns)}

    app = create_app(settings, engine=engine)
    app.add_api_route("/v1/municipalities/{slug}/careless", careless)
    with TestClient(app) as client:
        for headers in (tenant.headers("viewer"), auth(region_key)):
            answer = client.get(tenant.url("/careless"), headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"role": "lorakom_tenant", "towns": [tenant.id]}


def test_a_non_superuser_app_login_migrates_switches_and_still_writes_for_every_town(
    postgres_server: str,
) -> None:
    """Production's app login owns the tables without being a superuser: the migration makes
    it a member of the tenant role, it switches per transaction, and outside a tenant it still
    writes for every municipality (the tables' owner is not subject to the policies)."""
    app_login = f"app_{uuid.uuid4().hex[:12]}"
    database = f"lorakom_rls_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(app_login)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(app_login))
        )
    url = make_url(postgres_server).set(database=database, username=app_login).render_as_string(False)
    engine: Engine | None = None
    try:
        upgrade_database(url)
        engine = create_database_engine(url, pool_size=1)
        with Session(engine) as session:
            towns = [
                session.scalar(
                    text("INSERT INTO municipality (slug, name) VALUES (:slug, :slug) RETURNING id"),
                    {"slug": slug},
                )
                for slug in ("one", "two")
            ]
            for town in towns:
                session.execute(
                    text("INSERT INTO alert_rule (municipality_id, name, kind) VALUES (:town, '', 'silent')"),
                    {"town": town},
                )
            session.commit()
        with tenant_session(engine, towns[0]) as session:
            assert session.scalar(text("SELECT current_user")) == "lorakom_tenant"
            assert list(session.scalars(text("SELECT municipality_id FROM alert_rule"))) == [towns[0]]
    finally:
        if engine is not None:
            engine.dispose()
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(app_login)))
