"""The few calls of Grafana's HTTP API that provisioning makes, and the errors it answers with.

Why Grafana's HTTP API and not its provisioning files: file provisioning cannot create
organisations or users, reads its files only at start (a new town would need a restart
and a new file), and a data source's password would have to sit in a file or in
Grafana's environment. Through the API a new town is a command away, and each
generated password goes straight into Grafana's encrypted `secureJsonData`. The
organisation API only answers a Grafana server admin signed in with basic auth
(service account tokens belong to one organisation), so this command needs the admin's
password, not a token.
"""

from __future__ import annotations

from typing import Any

import httpx

from cli.grafana.settings import CHANGE_MESSAGE, FOLDER_UID, GrafanaSettings
from cli.grafana.users import GrafanaRole, UserSpec
from domain.errors import ConfigurationError, PlatformError


class GrafanaRefused(PlatformError):
    """Grafana answered a provisioning call with an error the command cannot work around."""


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
