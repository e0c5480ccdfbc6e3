"""Makes Grafana match the municipality list: organisations, data sources, dashboards and users.

Run it again at any time: it creates what is missing and changes nothing else. A data
source whose login, host or database no longer matches, or that lost its password, gets
a new password; `--rotate-passwords` gives every login a new one. Dashboards are the
repository's: one that differs from `dashboards/*.json` is written again.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from cli.grafana.client import GrafanaApi
from cli.grafana.settings import (
    DATASOURCE_NAME,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    FOLDER_TITLE,
    FOLDER_UID,
    HOME_DASHBOARD_UID,
    GrafanaSettings,
)
from cli.grafana.users import REGION, UsersFile, UserSpec, org_key, users_for
from domain.errors import ConfigurationError
from storage.reader_roles import (
    ReaderSettings,
    ReaderTarget,
    ensure_reader_login,
    generate_password,
    reader_targets,
    retire_orphaned_logins,
)

log = logging.getLogger("cli.grafana")
"""The name the command's log lines have always carried, whichever module of the package logs."""


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
