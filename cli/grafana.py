"""`lorakom grafana provision`: one Grafana organisation per municipality, and one for the region.

Each organisation holds one PostgreSQL data source that logs in as that town's own
database login (storage/reader_roles.py), so what a town's dashboards can show is
decided by PostgreSQL's row-level security, not by a dashboard variable anyone can
change. The region's organisation logs in as the region login, which sees what towns
shared with the region.

Why Grafana's HTTP API and not its provisioning files: file provisioning cannot create
organisations or users, reads its files only at start (a new town would need a restart
and a new file), and a data source's password would have to sit in a file or in
Grafana's environment. Through the API a new town is a command away, and each
generated password goes straight into Grafana's encrypted `secureJsonData`. The
organisation API only answers a Grafana server admin signed in with basic auth
(service account tokens belong to one organisation), so this command needs the admin's
password, not a token.

Run it again at any time: it creates what is missing and changes nothing else. A data
source whose login, host or database no longer matches, or that lost its password, gets
a new password; `--rotate-passwords` gives every login a new one. Dashboards are the
repository's: one that differs from `dashboards/*.json` is written again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from domain.errors import ConfigurationError, PlatformError
from storage.reader_roles import (
    ReaderSettings,
    ReaderTarget,
    ensure_reader_login,
    generate_password,
    reader_targets,
    retire_orphaned_logins,
)

log = logging.getLogger(__name__)

DATASOURCE_UID = "lorakom-postgres"
"""Every dashboard in dashboards/ names its data source by this uid; uids are unique per organisation."""
DATASOURCE_NAME = "lorakom"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
FOLDER_UID = "lorakom"
FOLDER_TITLE = "lorakom"
HOME_DASHBOARD_UID = "lorakom-overview"
REGION = "region"
"""How the users file names the region's organisation (no slug can be mistaken for it: see `org_key`)."""
CHANGE_MESSAGE = "lorakom grafana provision"

GrafanaRole = Literal["Viewer", "Editor", "Admin"]


class GrafanaSettings(BaseSettings):
    """Where Grafana is, how to sign in to it, and how Grafana reaches the database."""

    model_config = SettingsConfigDict(env_prefix="LORAKOM_GRAFANA_", extra="forbid")

    url: str = "http://127.0.0.1:3000"
    admin_user: str = "admin"
    admin_password: SecretStr | None = None
    database_host: str | None = None
    """`host:port` of PostgreSQL as Grafana reaches it; default: the host of LORAKOM_DB_URL."""
    database_name: str | None = None
    """Default: the database of LORAKOM_DB_URL."""
    sslmode: str = "disable"
    timescaledb: bool = True
    region_org_name: str = "Region"
    timeout_s: float = 30.0


class GrafanaRefused(PlatformError):
    """Grafana answered a provisioning call with an error the command cannot work around."""


# --- the users file --------------------------------------------------------------------


class TownUser(BaseModel):
    """A user made in every town's organisation; `{slug}` in login, name and email is the town's slug."""

    model_config = ConfigDict(extra="forbid")

    login: str
    role: GrafanaRole = "Viewer"
    name: str | None = None
    email: str | None = None


class NamedUser(BaseModel):
    """A user of one organisation: `org` is a municipality slug or "region"."""

    model_config = ConfigDict(extra="forbid")

    login: str
    org: str
    role: GrafanaRole = "Viewer"
    name: str | None = None
    email: str | None = None
    password_env: str | None = None
    """The environment variable holding the first password; without it one is generated and shown once."""


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    town_user: list[TownUser] = []
    user: list[NamedUser] = []


def load_users(path: Path | None) -> UsersFile:
    if path is None:
        return UsersFile()
    try:
        return UsersFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"users file {path} does not exist (copy the example next to it)") from exc
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigurationError(f"users file {path}: {exc}") from exc


@dataclass(frozen=True)
class UserSpec:
    login: str
    role: GrafanaRole
    name: str | None
    email: str | None
    password_env: str | None


def org_key(target: ReaderTarget) -> str:
    return target.slug if target.slug is not None else REGION


def users_for(target: ReaderTarget, users: UsersFile) -> list[UserSpec]:
    specs = []
    if target.slug is not None:
        for template in users.town_user:
            fill = {"slug": target.slug, "name": target.name}
            specs.append(
                UserSpec(
                    template.login.format(**fill),
                    template.role,
                    template.name.format(**fill) if template.name else None,
                    template.email.format(**fill) if template.email else None,
                    None,
                )
            )
    for named in users.user:
        if named.org == org_key(target):
            specs.append(UserSpec(named.login, named.role, named.name, named.email, named.password_env))
    return specs


# --- the HTTP API ----------------------------------------------------------------------


class GrafanaApi:
    """The few calls of Grafana's HTTP API this command makes, each in its documented shape.

    Calls inside an organisation carry `X-Grafana-Org-Id`: the server admin signed in
    with basic auth acts in any organisation it is a member of.
    """

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    @classmethod
    def signed_in(cls, settings: GrafanaSettings) -> GrafanaApi:
        if settings.admin_password is None:
            raise ConfigurationError(
                "set LORAKOM_GRAFANA_ADMIN_PASSWORD to the password of Grafana's server admin"
                f" ({settings.admin_user!r}; LORAKOM_GRAFANA_ADMIN_USER)"
            )
        auth = (settings.admin_user, settings.admin_password.get_secret_value())
        return cls(httpx.Client(base_url=settings.url, auth=auth, timeout=settings.timeout_s))

    def close(self) -> None:
        self.client.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        org_id: int | None = None,
        body: Any = None,
        params: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if org_id is not None:
            headers["X-Grafana-Org-Id"] = str(org_id)
        try:
            response = self.client.request(method, path, headers=headers, json=body, params=params)
        except httpx.HTTPError as exc:
            raise ConfigurationError(f"Grafana at {self.client.base_url} did not answer: {exc}") from exc
        if response.status_code in (401, 403):
            raise ConfigurationError(
                f"Grafana refused {method} {path} ({response.status_code}): the command needs a server"
                " admin's login and password (LORAKOM_GRAFANA_ADMIN_USER, LORAKOM_GRAFANA_ADMIN_PASSWORD)"
            )
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise GrafanaRefused(
                f"Grafana refused {method} {path}: {response.status_code} {_message(response)}"
            )
        return response.json() if response.content else None

    # organisations
    def orgs(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page, per_page = 1, 1000
        while True:
            batch = self._call("GET", "/api/orgs", params={"perpage": per_page, "page": page})
            found += batch
            if len(batch) < per_page:
                return found
            page += 1

    def create_org(self, name: str) -> int:
        return int(self._call("POST", "/api/orgs", body={"name": name})["orgId"])

    def org_users(self, org_id: int) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = self._call("GET", f"/api/orgs/{org_id}/users")
        return users

    def add_org_user(self, org_id: int, login: str, role: GrafanaRole) -> None:
        self._call("POST", f"/api/orgs/{org_id}/users", body={"loginOrEmail": login, "role": role})

    def set_org_user_role(self, org_id: int, user_id: int, role: GrafanaRole) -> None:
        self._call("PATCH", f"/api/orgs/{org_id}/users/{user_id}", body={"role": role})

    # users
    def user(self, login: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call(
            "GET", "/api/users/lookup", params={"loginOrEmail": login}, missing_ok=True
        )
        return found

    def create_user(self, spec: UserSpec, password: str, org_id: int) -> int:
        body: dict[str, Any] = {"login": spec.login, "password": password, "OrgId": org_id}
        if spec.name:
            body["name"] = spec.name
        if spec.email:
            body["email"] = spec.email
        return int(self._call("POST", "/api/admin/users", body=body)["id"])

    # data sources
    def datasource(self, org_id: int, uid: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call(
            "GET", f"/api/datasources/uid/{uid}", org_id=org_id, missing_ok=True
        )
        return found

    def create_datasource(self, org_id: int, body: dict[str, Any]) -> None:
        self._call("POST", "/api/datasources", org_id=org_id, body=body)

    def update_datasource(self, org_id: int, uid: str, body: dict[str, Any]) -> None:
        self._call("PUT", f"/api/datasources/uid/{uid}", org_id=org_id, body=body)

    # folders and dashboards
    def folder(self, org_id: int, uid: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call(
            "GET", f"/api/folders/{uid}", org_id=org_id, missing_ok=True
        )
        return found

    def create_folder(self, org_id: int, uid: str, title: str) -> None:
        self._call("POST", "/api/folders", org_id=org_id, body={"uid": uid, "title": title})

    def dashboard(self, org_id: int, uid: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call(
            "GET", f"/api/dashboards/uid/{uid}", org_id=org_id, missing_ok=True
        )
        return found

    def save_dashboard(self, org_id: int, dashboard: dict[str, Any], *, overwrite: bool) -> None:
        body = {
            "dashboard": {**dashboard, "id": None},
            "folderUid": FOLDER_UID,
            "overwrite": overwrite,
            "message": CHANGE_MESSAGE,
        }
        self._call("POST", "/api/dashboards/db", org_id=org_id, body=body)

    def org_preferences(self, org_id: int) -> dict[str, Any]:
        preferences: dict[str, Any] = self._call("GET", "/api/org/preferences", org_id=org_id)
        return preferences

    def set_home_dashboard(self, org_id: int, uid: str) -> None:
        self._call("PATCH", "/api/org/preferences", org_id=org_id, body={"homeDashboardUID": uid})


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except (ValueError, AttributeError):
        return response.text[:200]


# --- provisioning ------------------------------------------------------------------------


@dataclass
class ProvisionReport:
    changes: list[str] = field(default_factory=list)
    new_user_passwords: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class DatabaseAddress:
    """PostgreSQL as Grafana's server reaches it (in compose: the `timescaledb` service)."""

    host: str
    database: str

    @classmethod
    def of(cls, database_url: str, settings: GrafanaSettings) -> DatabaseAddress:
        url = make_url(database_url)
        host = settings.database_host or f"{url.host or '127.0.0.1'}:{url.port or 5432}"
        database = settings.database_name or url.database
        if not database:
            raise ConfigurationError("LORAKOM_DB_URL names no database; set LORAKOM_GRAFANA_DATABASE_NAME")
        return cls(host, database)


def load_dashboards(folder: Path) -> list[dict[str, Any]]:
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise ConfigurationError(f"no dashboards (*.json) in {folder}")
    dashboards = []
    for path in paths:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        if not dashboard.get("uid"):
            raise ConfigurationError(f"dashboard {path} has no uid: provisioning could not find it again")
        dashboards.append(dashboard)
    return dashboards


def org_name(target: ReaderTarget, settings: GrafanaSettings) -> str:
    """`Name (slug)`: municipality names need not be unique, slugs are; the region has its own name."""
    return settings.region_org_name if target.slug is None else f"{target.name} ({target.slug})"


_SLUG_SUFFIX = re.compile(r"\(([a-z0-9-]+)\)$")


class Provisioner:
    def __init__(
        self,
        api: GrafanaApi,
        engine: Engine,
        settings: GrafanaSettings,
        readers: ReaderSettings,
        address: DatabaseAddress,
        dashboards: list[dict[str, Any]],
        users: UsersFile,
    ) -> None:
        self.api = api
        self.engine = engine
        self.settings = settings
        self.readers = readers
        self.address = address
        self.dashboards = dashboards
        self.users = users
        self.report = ProvisionReport()

    def run(self, *, rotate_passwords: bool) -> ProvisionReport:
        with self.engine.connect() as conn:
            targets = reader_targets(conn, self.readers)
        self._check_user_orgs(targets)
        orgs = self._orgs_by_key()
        for target in targets:
            org_id = orgs.get(org_key(target))
            if org_id is None:
                org_id = self.api.create_org(org_name(target, self.settings))
                self._changed(f"created organisation {org_name(target, self.settings)!r} (id {org_id})")
            members = self._with_admin(org_id)
            self._datasource(org_id, target, rotate_passwords=rotate_passwords)
            self._dashboards(org_id)
            self._users(org_id, target, members)
        with self.engine.begin() as conn:
            retired = retire_orphaned_logins(conn, self.readers)
        for role_name in retired:
            self._changed(
                f"retired {role_name}: its municipality is gone (its organisation is left for you to delete)"
            )
        return self.report

    def _changed(self, what: str) -> None:
        log.info("grafana: %s", what)
        self.report.changes.append(what)

    def _check_user_orgs(self, targets: list[ReaderTarget]) -> None:
        known = {org_key(target) for target in targets}
        unknown = sorted({user.org for user in self.users.user} - known)
        if unknown:
            raise ConfigurationError(f"users file names unknown organisations: {', '.join(unknown)}")

    def _orgs_by_key(self) -> dict[str, int]:
        """Town organisations are found by the slug in their name, so a renamed town keeps its own."""
        found: dict[str, int] = {}
        for org in self.api.orgs():
            if org["name"] == self.settings.region_org_name:
                found[REGION] = int(org["id"])
            elif match := _SLUG_SUFFIX.search(org["name"]):
                found[match.group(1)] = int(org["id"])
        return found

    def _with_admin(self, org_id: int) -> dict[str, dict[str, Any]]:
        """The organisation's members by login; the admin joins first if it is not one (X-Grafana-Org-Id)."""
        members = {member["login"]: member for member in self.api.org_users(org_id)}
        if self.settings.admin_user not in members:
            self.api.add_org_user(org_id, self.settings.admin_user, "Admin")
            self._changed(f"added {self.settings.admin_user!r} to organisation {org_id} to provision it")
        return members

    def _datasource(self, org_id: int, target: ReaderTarget, *, rotate_passwords: bool) -> None:
        current = self.api.datasource(org_id, DATASOURCE_UID)
        stale = current is None or not self._datasource_matches(current, target)
        # One transaction around the login and Grafana's answer: when Grafana refuses the
        # new password, PostgreSQL keeps the old one and the two stay in step.
        with self.engine.begin() as conn:
            login = ensure_reader_login(conn, target, self.readers, set_password=rotate_passwords or stale)
            if login.password is None:
                return
            body = self._datasource_body(target.role_name, login.password)
            if current is None:
                self.api.create_datasource(org_id, body)
                self._changed(f"created data source in organisation {org_id} as {target.role_name}")
            else:
                self.api.update_datasource(org_id, DATASOURCE_UID, body)
                self._changed(f"new password for {target.role_name} in organisation {org_id}")

    def _datasource_matches(self, current: dict[str, Any], target: ReaderTarget) -> bool:
        return (
            current.get("user") == target.role_name
            and current.get("url") == self.address.host
            and (current.get("jsonData") or {}).get("database") == self.address.database
            and bool((current.get("secureJsonFields") or {}).get("password"))
        )

    def _datasource_body(self, role_name: str, password: str) -> dict[str, Any]:
        return {
            "uid": DATASOURCE_UID,
            "name": DATASOURCE_NAME,
            "type": DATASOURCE_TYPE,
            "access": "proxy",
            "url": self.address.host,
            "user": role_name,
            "isDefault": True,
            "jsonData": {
                "database": self.address.database,
                "sslmode": self.settings.sslmode,
                "postgresVersion": 1700,
                "timescaledb": self.settings.timescaledb,
                # Grafana's pool stays within the login's CONNECTION LIMIT.
                "maxOpenConns": self.readers.connection_limit,
                "maxIdleConns": min(2, self.readers.connection_limit),
                "connMaxLifetime": 14400,
            },
            "secureJsonData": {"password": password},
        }

    def _dashboards(self, org_id: int) -> None:
        if self.api.folder(org_id, FOLDER_UID) is None:
            self.api.create_folder(org_id, FOLDER_UID, FOLDER_TITLE)
            self._changed(f"created folder {FOLDER_TITLE!r} in organisation {org_id}")
        for dashboard in self.dashboards:
            stored = self.api.dashboard(org_id, dashboard["uid"])
            if stored is None:
                self.api.save_dashboard(org_id, dashboard, overwrite=False)
                self._changed(f"created dashboard {dashboard['uid']} in organisation {org_id}")
            elif not _same_dashboard(stored, dashboard):
                self.api.save_dashboard(org_id, dashboard, overwrite=True)
                self._changed(
                    f"wrote dashboard {dashboard['uid']} in organisation {org_id} as in the repository"
                )
        preferences = self.api.org_preferences(org_id)
        if not preferences.get("homeDashboardUID") and not preferences.get("homeDashboardId"):
            self.api.set_home_dashboard(org_id, HOME_DASHBOARD_UID)
            self._changed(f"home dashboard of organisation {org_id}: {HOME_DASHBOARD_UID}")

    def _users(self, org_id: int, target: ReaderTarget, members: dict[str, dict[str, Any]]) -> None:
        for spec in users_for(target, self.users):
            if spec.login in members:
                if members[spec.login].get("role") != spec.role:
                    log.info(
                        "grafana: %s is %s in organisation %d, not %s as the users file says; left as it is",
                        spec.login,
                        members[spec.login].get("role"),
                        org_id,
                        spec.role,
                    )
                continue
            if self.api.user(spec.login) is not None:
                self.api.add_org_user(org_id, spec.login, spec.role)
                self._changed(f"added {spec.login} to organisation {org_id} as {spec.role}")
                continue
            password = self._first_password(spec)
            user_id = self.api.create_user(spec, password, org_id)
            now = {member["login"]: member for member in self.api.org_users(org_id)}
            if spec.login not in now:
                self.api.add_org_user(org_id, spec.login, spec.role)
            elif now[spec.login].get("role") != spec.role:
                self.api.set_org_user_role(org_id, user_id, spec.role)
            self._changed(f"created user {spec.login} ({spec.role}) in organisation {org_id}")

    def _first_password(self, spec: UserSpec) -> str:
        if spec.password_env is not None:
            value = os.environ.get(spec.password_env)
            if not value:
                raise ConfigurationError(f"{spec.password_env} (password of {spec.login}) is not set")
            return value
        password = generate_password()
        self.report.new_user_passwords.append((spec.login, password))
        return password


def _same_dashboard(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Equal apart from what Grafana numbers itself (id, version), and in lorakom's folder."""

    def comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in dashboard.items() if key not in {"id", "version"}}

    in_folder = (stored.get("meta") or {}).get("folderUid") == FOLDER_UID
    return in_folder and comparable(stored.get("dashboard") or {}) == comparable(wanted)


# --- the command ---------------------------------------------------------------------------


def add_grafana_commands(commands: Any) -> None:
    """`lorakom grafana provision` on the main parser's subcommands."""
    grafana = commands.add_parser("grafana", help="Grafana organisations per municipality")
    grafana_commands = grafana.add_subparsers(dest="grafana_command", required=True)
    provision = grafana_commands.add_parser(
        "provision", help="organisations, data sources, dashboards and users from the municipality list"
    )
    provision.add_argument("--users", type=Path, help="TOML file of Grafana users (see deploy/grafana/)")
    provision.add_argument("--dashboards", type=Path, default=Path("dashboards"), help="folder of *.json")
    provision.add_argument(
        "--rotate-passwords", action="store_true", help="give every dashboard login a new password"
    )
    provision.set_defaults(handler=command_provision)


def command_provision(args: argparse.Namespace) -> int:
    from cli.services import database
    from storage.database import DatabaseSettings, create_database_engine
    from storage.schema import upgrade_and_apply_policies

    settings = GrafanaSettings()
    users = load_users(args.users)
    dashboards = load_dashboards(args.dashboards)
    api = GrafanaApi.signed_in(settings)
    try:
        with database(DatabaseSettings()) as url:
            upgrade_and_apply_policies(url, DatabaseSettings())
            engine = create_database_engine(url, pool_size=1)
            try:
                report = Provisioner(
                    api,
                    engine,
                    settings,
                    ReaderSettings(),
                    DatabaseAddress.of(url, settings),
                    dashboards,
                    users,
                ).run(rotate_passwords=args.rotate_passwords)
            finally:
                engine.dispose()
    finally:
        api.close()
    print(
        f"grafana: {len(report.changes)} change(s)" + ("" if report.changes else ", everything was in place")
    )
    for change in report.changes:
        print(f"  {change}")
    if report.new_user_passwords:
        print("first passwords of the new Grafana users (shown once; hand them over safely):")
        for login, password in report.new_user_passwords:
            print(f"  {login}  {password}")
    return 0
