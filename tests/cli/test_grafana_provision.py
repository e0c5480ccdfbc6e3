"""`lorakom grafana provision` against a stand-in Grafana and the real PostgreSQL.

Grafana cannot be installed here, so tests/cli/grafana_stand_in.py answers the few
endpoints of Grafana's HTTP API the command calls, in their documented shapes, and
keeps Grafana's state. The database side is real: the logins the data sources name
exist in PostgreSQL, and the password each data source was given is checked against
the verifier PostgreSQL stores for that login.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from cli.grafana.client import GrafanaApi, GrafanaRefused
from cli.grafana.provisioner import DatabaseAddress, Provisioner, load_dashboards
from cli.grafana.settings import DATASOURCE_UID, FOLDER_UID, HOME_DASHBOARD_UID, GrafanaSettings
from cli.grafana.users import UsersFile
from cli.main import main
from domain.errors import ConfigurationError
from storage.database import create_database_engine
from storage.reader_roles import ReaderSettings
from storage.schema import upgrade_database
from tests.cli.grafana_stand_in import ADMIN_LOGIN, ADMIN_PASSWORD, GrafanaStandIn, running_stand_in
from tests.conftest import create_database, drop_database
from tests.storage.reader_logins import (
    drop_roles,
    scram_matches,
    stored_verifier,
    unique_prefix,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = load_dashboards(ROOT / "dashboards")


@pytest.fixture(scope="module")
def provision_db_url(postgres_server: str) -> Iterator[str]:
    """A database of this module's own: provisioning covers every municipality in it, so
    towns that other tests left in the session's database must not be there."""
    url = create_database(postgres_server, prefix="lorakom_grafana")
    upgrade_database(url)
    try:
        yield url
    finally:
        drop_database(postgres_server, url)


@pytest.fixture(scope="module")
def engine(provision_db_url: str) -> Iterator[Engine]:
    engine = create_database_engine(provision_db_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def readers(postgres_server: str) -> Iterator[ReaderSettings]:
    settings = ReaderSettings(role_prefix=unique_prefix(), connection_limit=5)
    try:
        yield settings
    finally:
        drop_roles(postgres_server, settings.role_prefix)


@pytest.fixture
def towns(engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """Two municipalities with the same display name: slugs tell their organisations apart."""
    made: list[dict[str, Any]] = []

    def add(name: str) -> dict[str, Any]:
        slug = f"gf-{uuid.uuid4().hex[:8]}"
        with engine.begin() as conn:
            town_id = conn.execute(
                text("INSERT INTO municipality (slug, name) VALUES (:slug, :name) RETURNING id"),
                {"slug": slug, "name": name},
            ).scalar_one()
        town = {"id": int(town_id), "slug": slug, "name": name, "add": add}
        made.append(town)
        return town

    add("Neustadt")
    add("Neustadt")
    yield made
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM municipality WHERE id = ANY(:ids)"), {"ids": [t["id"] for t in made]})


@pytest.fixture
def grafana() -> Iterator[tuple[GrafanaStandIn, str]]:
    with running_stand_in() as running:
        yield running


SETTINGS = GrafanaSettings(
    database_host="db.internal:5432", database_name="lorakom", region_org_name="Region"
)


def users_file(towns: list[dict[str, Any]]) -> UsersFile:
    return UsersFile.model_validate(
        {
            "town_user": [
                {"login": "{slug}-admin", "role": "Admin", "name": "{name} admin"},
                {"login": "{slug}-viewer", "role": "Viewer"},
            ],
            "user": [
                {"login": "kreis-analyst", "org": "region", "role": "Editor", "email": "a@kreis.example"}
            ],
        }
    )


def provision(
    grafana: tuple[GrafanaStandIn, str],
    engine: Engine,
    readers: ReaderSettings,
    users: UsersFile,
    *,
    rotate: bool = False,
) -> Any:
    _, url = grafana
    api = GrafanaApi(httpx.Client(base_url=url, auth=(ADMIN_LOGIN, ADMIN_PASSWORD)))
    try:
        return Provisioner(
            api, engine, SETTINGS, readers, DatabaseAddress("db.internal:5432", "lorakom"), DASHBOARDS, users
        ).run(rotate_passwords=rotate)
    finally:
        api.close()


def org_id(stand_in: GrafanaStandIn, name: str) -> int:
    found = stand_in.state.org_of_name(name)
    assert found is not None, f"no organisation {name!r} in {stand_in.state.orgs}"
    return found


def member_roles(stand_in: GrafanaStandIn, org: int) -> dict[str, str]:
    return {stand_in.state.users[uid]["login"]: role for uid, role in stand_in.state.members[org].items()}


def test_first_run_gives_each_town_and_the_region_an_organisation_reading_as_its_own_login(
    grafana: tuple[GrafanaStandIn, str],
    engine: Engine,
    readers: ReaderSettings,
    towns: list[dict[str, Any]],
    postgres_server: str,
) -> None:
    stand_in, _ = grafana
    report = provision(grafana, engine, readers, users_file(towns))

    logins = set()
    for town in towns:
        org = org_id(stand_in, f"Neustadt ({town['slug']})")
        datasource = stand_in.state.datasources[(org, DATASOURCE_UID)]
        role_name = f"{readers.role_prefix}{town['slug']}"
        assert datasource["user"] == role_name
        assert datasource["url"] == "db.internal:5432"
        assert datasource["jsonData"]["database"] == "lorakom"
        assert datasource["jsonData"]["maxOpenConns"] == 5
        assert scram_matches(
            stored_verifier(postgres_server, role_name), datasource["secureJsonData"]["password"]
        )
        with engine.connect() as conn:
            registered = conn.execute(
                text("SELECT municipality_id FROM reader_role WHERE role_name = :name"), {"name": role_name}
            ).scalar_one()
        assert registered == town["id"]
        assert {uid for (o, uid) in stand_in.state.dashboards if o == org} == {d["uid"] for d in DASHBOARDS}
        assert all(
            stored["folderUid"] == FOLDER_UID
            for (o, _), stored in stand_in.state.dashboards.items()
            if o == org
        )
        assert stand_in.state.preferences[org]["homeDashboardUID"] == HOME_DASHBOARD_UID
        assert member_roles(stand_in, org) == {
            ADMIN_LOGIN: "Admin",
            f"{town['slug']}-admin": "Admin",
            f"{town['slug']}-viewer": "Viewer",
        }
        logins.add(datasource["user"])

    region = org_id(stand_in, "Region")
    region_source = stand_in.state.datasources[(region, DATASOURCE_UID)]
    assert region_source["user"] == f"{readers.role_prefix}region_shared"
    assert member_roles(stand_in, region) == {ADMIN_LOGIN: "Admin", "kreis-analyst": "Editor"}
    assert len(logins | {region_source["user"]}) == 3, "no two organisations share a login"
    # The main organisation is left empty: no data source there can read anything.
    assert not [key for key in stand_in.state.datasources if key[0] == 1]
    assert {login for login, _ in report.new_user_passwords} == {
        "kreis-analyst",
        *(f"{t['slug']}-{kind}" for t in towns for kind in ("admin", "viewer")),
    }


def test_every_call_is_signed_in_and_acts_in_the_organisation_it_concerns(
    grafana: tuple[GrafanaStandIn, str], engine: Engine, readers: ReaderSettings, towns: list[dict[str, Any]]
) -> None:
    stand_in, _ = grafana
    provision(grafana, engine, readers, users_file(towns))
    per_org = ("/api/datasources", "/api/folders", "/api/dashboards", "/api/org/preferences")
    for call in stand_in.state.calls:
        if call.path.startswith(per_org):
            assert call.org_header is not None, call
            assert call.org_header != 1, "nothing is provisioned into the main organisation"
        else:
            assert call.org_header is None, call
    created = [
        call.body
        for call in stand_in.state.calls
        if call.method == "POST" and call.path == "/api/datasources"
    ]
    assert len(created) == 3
    for body in created:
        assert body["uid"] == DATASOURCE_UID
        assert body["type"] == "grafana-postgresql-datasource"
        assert set(body["secureJsonData"]) == {"password"}
        assert "password" not in body


def test_running_again_changes_nothing(
    grafana: tuple[GrafanaStandIn, str],
    engine: Engine,
    readers: ReaderSettings,
    towns: list[dict[str, Any]],
    postgres_server: str,
) -> None:
    stand_in, _ = grafana
    provision(grafana, engine, readers, users_file(towns))
    verifiers = {
        role: stored_verifier(postgres_server, role)
        for role in (f"{readers.role_prefix}{t['slug']}" for t in towns)
    }
    stand_in.state.calls.clear()

    report = provision(grafana, engine, readers, users_file(towns))

    assert report.changes == []
    assert report.new_user_passwords == []
    assert [call for call in stand_in.state.calls if call.changes_state] == []
    assert {role: stored_verifier(postgres_server, role) for role in verifiers} == verifiers


def test_a_new_town_gets_what_it_lacks_and_the_others_are_left_alone(
    grafana: tuple[GrafanaStandIn, str], engine: Engine, readers: ReaderSettings, towns: list[dict[str, Any]]
) -> None:
    stand_in, _ = grafana
    provision(grafana, engine, readers, users_file(towns))
    existing = set(stand_in.state.orgs)
    stand_in.state.calls.clear()
    newcomer = towns[0]["add"]("Altdorf")

    provision(grafana, engine, readers, users_file(towns))

    new_org = org_id(stand_in, f"Altdorf ({newcomer['slug']})")
    assert set(stand_in.state.orgs) == existing | {new_org}
    changing = [call for call in stand_in.state.calls if call.changes_state]
    assert changing
    for call in changing:
        assert (
            call.org_header == new_org
            or call.path in ("/api/orgs", "/api/admin/users")
            or (call.path.startswith(f"/api/orgs/{new_org}/users"))
        ), call
    assert (
        stand_in.state.datasources[(new_org, DATASOURCE_UID)]["user"]
        == f"{readers.role_prefix}{newcomer['slug']}"
    )


def test_rotation_gives_every_login_a_new_password_and_changes_nothing_else(
    grafana: tuple[GrafanaStandIn, str],
    engine: Engine,
    readers: ReaderSettings,
    towns: list[dict[str, Any]],
    postgres_server: str,
) -> None:
    stand_in, _ = grafana
    provision(grafana, engine, readers, users_file(towns))
    before = {key: ds["secureJsonData"]["password"] for key, ds in stand_in.state.datasources.items()}
    stand_in.state.calls.clear()

    provision(grafana, engine, readers, users_file(towns), rotate=True)

    changing = [call for call in stand_in.state.calls if call.changes_state]
    assert {(call.method, call.path) for call in changing} == {
        ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}")
    }
    assert len(changing) == len(before)
    for key, datasource in stand_in.state.datasources.items():
        password = datasource["secureJsonData"]["password"]
        assert password != before[key]
        assert scram_matches(stored_verifier(postgres_server, datasource["user"]), password)


def test_when_grafana_refuses_the_new_password_postgresql_keeps_the_old_one(
    grafana: tuple[GrafanaStandIn, str],
    engine: Engine,
    readers: ReaderSettings,
    towns: list[dict[str, Any]],
    postgres_server: str,
) -> None:
    stand_in, _ = grafana
    provision(grafana, engine, readers, users_file(towns))
    role_name = f"{readers.role_prefix}{towns[0]['slug']}"
    before = stored_verifier(postgres_server, role_name)
    stand_in.state.fail = lambda call: call.method == "PUT" and call.path.startswith("/api/datasources/")

    with pytest.raises(GrafanaRefused, match="500"):
        provision(grafana, engine, readers, users_file(towns), rotate=True)

    assert stored_verifier(postgres_server, role_name) == before
    org = org_id(stand_in, f"Neustadt ({towns[0]['slug']})")
    assert scram_matches(
        before, stand_in.state.datasources[(org, DATASOURCE_UID)]["secureJsonData"]["password"]
    )


def test_a_data_source_pointed_elsewhere_is_repaired_with_a_new_password(
    grafana: tuple[GrafanaStandIn, str],
    engine: Engine,
    readers: ReaderSettings,
    towns: list[dict[str, Any]],
    postgres_server: str,
) -> None:
    stand_in, _ = grafana
    provision(grafana, engine, readers, users_file(towns))
    first, second = towns[0], towns[1]
    org = org_id(stand_in, f"Neustadt ({first['slug']})")
    # An org admin re-points the data source at the neighbour's login (without its password).
    stand_in.state.datasources[(org, DATASOURCE_UID)]["user"] = f"{readers.role_prefix}{second['slug']}"

    provision(grafana, engine, readers, users_file(towns))

    repaired = stand_in.state.datasources[(org, DATASOURCE_UID)]
    own = f"{readers.role_prefix}{first['slug']}"
    assert repaired["user"] == own
    assert scram_matches(stored_verifier(postgres_server, own), repaired["secureJsonData"]["password"])


def test_a_dashboard_edited_in_grafana_is_written_again_from_the_repository(
    grafana: tuple[GrafanaStandIn, str], engine: Engine, readers: ReaderSettings, towns: list[dict[str, Any]]
) -> None:
    stand_in, _ = grafana
    provision(grafana, engine, readers, UsersFile())
    org = org_id(stand_in, f"Neustadt ({towns[0]['slug']})")
    stand_in.state.dashboards[(org, HOME_DASHBOARD_UID)]["dashboard"]["title"] = "edited by hand"
    stand_in.state.calls.clear()

    provision(grafana, engine, readers, UsersFile())

    saved = [call for call in stand_in.state.calls if call.changes_state]
    assert [(call.path, call.org_header, call.body["overwrite"]) for call in saved] == [
        ("/api/dashboards/db", org, True)
    ]
    wanted = next(d for d in DASHBOARDS if d["uid"] == HOME_DASHBOARD_UID)
    assert stand_in.state.dashboards[(org, HOME_DASHBOARD_UID)]["dashboard"]["title"] == wanted["title"]


def test_an_existing_user_joins_another_organisation_without_a_new_password(
    grafana: tuple[GrafanaStandIn, str], engine: Engine, readers: ReaderSettings, towns: list[dict[str, Any]]
) -> None:
    stand_in, _ = grafana
    both = UsersFile.model_validate(
        {
            "user": [
                {"login": "kreis-it", "org": towns[0]["slug"], "role": "Admin"},
                {"login": "kreis-it", "org": towns[1]["slug"], "role": "Viewer"},
            ]
        }
    )
    report = provision(grafana, engine, readers, both)
    assert [login for login, _ in report.new_user_passwords] == ["kreis-it"]
    for town, role in ((towns[0], "Admin"), (towns[1], "Viewer")):
        assert member_roles(stand_in, org_id(stand_in, f"Neustadt ({town['slug']})"))["kreis-it"] == role


def test_the_login_of_a_municipality_deleted_since_is_retired(
    grafana: tuple[GrafanaStandIn, str], engine: Engine, readers: ReaderSettings, towns: list[dict[str, Any]]
) -> None:
    provision(grafana, engine, readers, UsersFile())
    gone = towns[0]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM municipality WHERE id = :id"), {"id": gone["id"]})

    report = provision(grafana, engine, readers, UsersFile())

    role_name = f"{readers.role_prefix}{gone['slug']}"
    assert [change for change in report.changes if role_name in change] == [
        f"retired {role_name}: its municipality is gone (its organisation is left for you to delete)"
    ]
    with engine.connect() as conn:
        can_login = conn.execute(
            text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :name"), {"name": role_name}
        ).scalar_one()
    assert not can_login


def test_a_users_file_naming_an_unknown_town_stops_before_any_change(
    grafana: tuple[GrafanaStandIn, str], engine: Engine, readers: ReaderSettings, towns: list[dict[str, Any]]
) -> None:
    stand_in, _ = grafana
    users = UsersFile.model_validate({"user": [{"login": "x", "org": "atlantis"}]})
    with pytest.raises(ConfigurationError, match="atlantis"):
        provision(grafana, engine, readers, users)
    assert [call for call in stand_in.state.calls if call.changes_state] == []


def test_the_command_provisions_through_the_cli(
    grafana: tuple[GrafanaStandIn, str],
    readers: ReaderSettings,
    towns: list[dict[str, Any]],
    provision_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    stand_in, url = grafana
    users = tmp_path / "users.toml"
    users.write_text('[[town_user]]\nlogin = "{slug}-viewer"\nrole = "Viewer"\n')
    for name, value in {
        "LORAKOM_DB_URL": provision_db_url,
        "LORAKOM_GRAFANA_URL": url,
        "LORAKOM_GRAFANA_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LORAKOM_READERS_ROLE_PREFIX": readers.role_prefix,
    }.items():
        monkeypatch.setenv(name, value)
    arguments = ["grafana", "provision", "--users", str(users), "--dashboards", str(ROOT / "dashboards")]

    assert main(arguments) == 0
    first = capsys.readouterr().out
    assert main(arguments) == 0
    second = capsys.readouterr().out

    slug = towns[0]["slug"]
    assert f"{slug}-viewer" in first
    password = stand_in.state.users[stand_in.state.user_of_login(f"{slug}-viewer") or 0]["password"]
    assert first.count(password) == 1, "a new user's first password is shown once"
    assert "everything was in place" in second
    org = org_id(stand_in, f"Neustadt ({slug})")
    assert stand_in.state.datasources[(org, DATASOURCE_UID)]["user"] == f"{readers.role_prefix}{slug}"


def test_a_wrong_admin_password_is_a_configuration_error(
    grafana: tuple[GrafanaStandIn, str],
    readers: ReaderSettings,
    provision_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, url = grafana
    monkeypatch.setenv("LORAKOM_DB_URL", provision_db_url)
    monkeypatch.setenv("LORAKOM_GRAFANA_URL", url)
    monkeypatch.setenv("LORAKOM_GRAFANA_ADMIN_PASSWORD", "wrong")
    monkeypatch.setenv("LORAKOM_READERS_ROLE_PREFIX", readers.role_prefix)

    assert main(["grafana", "provision", "--dashboards", str(ROOT / "dashboards")]) == 2
    assert "server admin" in capsys.readouterr().err


def test_dashboards_keep_naming_the_data_source_every_organisation_has() -> None:
    """Each organisation's data source has the uid the dashboards name, so they work unchanged."""
    for dashboard in DASHBOARDS:
        text_of = json.dumps(dashboard)
        assert f'"uid": "{DATASOURCE_UID}"' in text_of
        uids = {match for match in _datasource_uids(dashboard)}
        assert uids == {DATASOURCE_UID}, dashboard["uid"]


def _datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            yield source["uid"]
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from _datasource_uids(value)
