"""A stand-in for Grafana's HTTP API: the few endpoints `lorakom grafana provision` calls.

Grafana itself cannot be installed on the test machines, so this server keeps the
state Grafana would (organisations, members, users, data sources, folders, dashboards,
organisation preferences) and answers as Grafana's HTTP API documentation describes:
the same paths and bodies, basic auth for the server admin, `X-Grafana-Org-Id` to act
in an organisation the admin is a member of, 404 for what does not exist, 409/412 for
what exists already. Every request is recorded so tests can check the calls' shapes
and that a second run sends nothing that changes state.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "stand-in-admin-password"
ROLES = {"Viewer", "Editor", "Admin"}


@dataclass
class Call:
    method: str
    path: str
    org_header: int | None
    body: Any

    @property
    def changes_state(self) -> bool:
        return self.method != "GET"


class Reply(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass
class GrafanaState:
    orgs: dict[int, str] = field(default_factory=lambda: {1: "Main Org."})
    members: dict[int, dict[int, str]] = field(default_factory=lambda: {1: {1: "Admin"}})
    users: dict[int, dict[str, Any]] = field(
        default_factory=lambda: {1: {"login": ADMIN_LOGIN, "email": "admin@localhost", "name": ""}}
    )
    datasources: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    folders: dict[tuple[int, str], str] = field(default_factory=dict)
    dashboards: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    preferences: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    fail: Callable[[Call], bool] = lambda call: False
    """Tests set it to make Grafana answer 500 to some calls."""
    next_id: int = 100

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def org_of_name(self, name: str) -> int | None:
        return next((org_id for org_id, org in self.orgs.items() if org == name), None)

    def user_of_login(self, login: str) -> int | None:
        return next(
            (uid for uid, user in self.users.items() if login in (user["login"], user.get("email"))), None
        )


def require(condition: bool, message: str, status: int = 400) -> None:
    if not condition:
        raise Reply(status, {"message": message})


class GrafanaStandIn:
    def __init__(self) -> None:
        self.state = GrafanaState()
        self.lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(r"/api/orgs"), self.list_orgs),
            ("POST", re.compile(r"/api/orgs"), self.create_org),
            ("GET", re.compile(r"/api/orgs/(\d+)/users"), self.org_users),
            ("POST", re.compile(r"/api/orgs/(\d+)/users"), self.add_org_user),
            ("PATCH", re.compile(r"/api/orgs/(\d+)/users/(\d+)"), self.set_org_user_role),
            ("GET", re.compile(r"/api/users/lookup"), self.lookup_user),
            ("POST", re.compile(r"/api/admin/users"), self.create_user),
            ("GET", re.compile(r"/api/datasources/uid/([^/]+)"), self.get_datasource),
            ("POST", re.compile(r"/api/datasources"), self.create_datasource),
            ("PUT", re.compile(r"/api/datasources/uid/([^/]+)"), self.update_datasource),
            ("GET", re.compile(r"/api/folders/([^/]+)"), self.get_folder),
            ("POST", re.compile(r"/api/folders"), self.create_folder),
            ("GET", re.compile(r"/api/dashboards/uid/([^/]+)"), self.get_dashboard),
            ("POST", re.compile(r"/api/dashboards/db"), self.save_dashboard),
            ("GET", re.compile(r"/api/org/preferences"), self.get_preferences),
            ("PATCH", re.compile(r"/api/org/preferences"), self.patch_preferences),
        ]

    # --- dispatch ----------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        parts = urlsplit(target)
        body = json.loads(raw) if raw else None
        org_header = headers.get("x-grafana-org-id")
        call = Call(method, parts.path, int(org_header) if org_header else None, body)
        with self.lock:
            self.state.calls.append(call)
            try:
                self.authenticate(headers.get("authorization", ""))
                org_id = self.acting_org(call)
                if self.state.fail(call):
                    return 500, {"message": "stand-in told to fail"}
                for route_method, pattern, handler in self.routes:
                    match = pattern.fullmatch(parts.path)
                    if match and route_method == method:
                        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
                        return 200, handler(org_id, body, query, *match.groups())
                return 404, {"message": "Not found"}
            except Reply as reply:
                return reply.status, reply.body

    def authenticate(self, authorization: str) -> None:
        expected = base64.b64encode(f"{ADMIN_LOGIN}:{ADMIN_PASSWORD}".encode()).decode()
        require(authorization == f"Basic {expected}", "Invalid username or password", 401)

    def acting_org(self, call: Call) -> int:
        """The admin's current organisation is 1; the header switches to one it is a member of."""
        if call.org_header is None:
            return 1
        require(call.org_header in self.state.orgs, "organization not found", 401)
        require(1 in self.state.members[call.org_header], "User is not a member of the organization", 401)
        return call.org_header

    # --- organisations ---------------------------------------------------------------------

    def list_orgs(self, org_id: int, body: Any, query: dict[str, str]) -> Any:
        per_page, page = int(query.get("perpage", 1000)), max(int(query.get("page", 1)), 1)
        ordered = [{"id": oid, "name": name} for oid, name in sorted(self.state.orgs.items())]
        return ordered[(page - 1) * per_page : page * per_page]

    def create_org(self, org_id: int, body: Any, query: dict[str, str]) -> Any:
        require(
            isinstance(body, dict) and isinstance(body.get("name"), str) and body["name"], "name required"
        )
        require(self.state.org_of_name(body["name"]) is None, "Organization name taken", 409)
        new = self.state.new_id()
        self.state.orgs[new] = body["name"]
        self.state.members[new] = {1: "Admin"}  # Grafana makes the creating user an Admin of it
        return {"orgId": new, "message": "Organization created"}

    def org_users(self, org_id: int, body: Any, query: dict[str, str], org: str) -> Any:
        members = self.state.members.get(int(org))
        require(members is not None, "Organization not found", 404)
        assert members is not None
        return [
            {"orgId": int(org), "userId": uid, "login": self.state.users[uid]["login"], "role": role}
            for uid, role in members.items()
        ]

    def add_org_user(self, org_id: int, body: Any, query: dict[str, str], org: str) -> Any:
        require(set(body) == {"loginOrEmail", "role"} and body["role"] in ROLES, f"bad body {body}")
        members = self.state.members.get(int(org))
        require(members is not None, "Organization not found", 404)
        assert members is not None
        uid = self.state.user_of_login(body["loginOrEmail"])
        require(uid is not None, "User not found", 404)
        assert uid is not None
        require(uid not in members, "User is already member of this organization", 409)
        members[uid] = body["role"]
        return {"message": "User added to organization", "userId": uid}

    def set_org_user_role(self, org_id: int, body: Any, query: dict[str, str], org: str, user: str) -> Any:
        require(set(body) == {"role"} and body["role"] in ROLES, f"bad body {body}")
        members = self.state.members.get(int(org), {})
        require(int(user) in members, "User not found in organization", 404)
        members[int(user)] = body["role"]
        return {"message": "Organization user updated"}

    # --- users ---------------------------------------------------------------------------------

    def lookup_user(self, org_id: int, body: Any, query: dict[str, str]) -> Any:
        uid = self.state.user_of_login(query.get("loginOrEmail", ""))
        require(uid is not None, "user not found", 404)
        assert uid is not None
        return {"id": uid, **{k: v for k, v in self.state.users[uid].items() if k != "password"}}

    def create_user(self, org_id: int, body: Any, query: dict[str, str]) -> Any:
        require(body.keys() <= {"name", "email", "login", "password", "OrgId"}, f"unknown fields {body}")
        require(bool(body.get("login")) and bool(body.get("password")), "login and password required")
        require(self.state.user_of_login(body["login"]) is None, "user already exists", 412)
        uid = self.state.new_id()
        self.state.users[uid] = {
            "login": body["login"],
            "email": body.get("email") or body["login"],
            "name": body.get("name", ""),
            "password": body["password"],
        }
        target = body.get("OrgId") or 1
        require(target in self.state.orgs, "organization not found", 400)
        self.state.members[target][uid] = "Viewer"  # auto_assign_org_role
        return {"id": uid, "message": "User created"}

    # --- data sources ------------------------------------------------------------------------

    DATASOURCE_FIELDS = frozenset(
        {"uid", "name", "type", "access", "url", "user", "isDefault", "jsonData", "secureJsonData"}
    )

    def check_datasource(self, body: Any) -> None:
        require(isinstance(body, dict) and body.keys() <= self.DATASOURCE_FIELDS, f"unexpected fields {body}")
        require(body.get("type") == "grafana-postgresql-datasource", "type must be the PostgreSQL plugin")
        require(body.get("access") == "proxy", "access must be proxy")
        require(bool(body.get("user")) and bool(body.get("url")), "user and url required")
        require(bool((body.get("jsonData") or {}).get("database")), "jsonData.database required")
        require("password" not in body, "a password belongs into secureJsonData")

    def get_datasource(self, org_id: int, body: Any, query: dict[str, str], uid: str) -> Any:
        stored = self.state.datasources.get((org_id, uid))
        require(stored is not None, "Data source not found", 404)
        assert stored is not None
        shown = {k: v for k, v in stored.items() if k != "secureJsonData"}
        shown["secureJsonFields"] = {name: True for name in stored.get("secureJsonData") or {}}
        return {**shown, "orgId": org_id}

    def create_datasource(self, org_id: int, body: Any, query: dict[str, str]) -> Any:
        self.check_datasource(body)
        require(
            bool((body.get("secureJsonData") or {}).get("password")), "a new data source needs a password"
        )
        in_org = [ds for (org, _), ds in self.state.datasources.items() if org == org_id]
        require(
            all(ds["name"] != body["name"] for ds in in_org), "data source with the same name exists", 409
        )
        require(
            (org_id, body["uid"]) not in self.state.datasources, "data source with the same uid exists", 409
        )
        self.state.datasources[(org_id, body["uid"])] = {**body, "id": self.state.new_id(), "version": 1}
        return {"message": "Datasource added", "name": body["name"]}

    def update_datasource(self, org_id: int, body: Any, query: dict[str, str], uid: str) -> Any:
        stored = self.state.datasources.get((org_id, uid))
        require(stored is not None, "Data source not found", 404)
        assert stored is not None
        self.check_datasource(body)
        secure = body.get("secureJsonData") or stored.get("secureJsonData")
        self.state.datasources[(org_id, uid)] = {
            **body,
            "secureJsonData": secure,
            "id": stored["id"],
            "version": stored["version"] + 1,
        }
        return {"message": "Datasource updated"}

    # --- folders, dashboards, preferences ------------------------------------------------

    def get_folder(self, org_id: int, body: Any, query: dict[str, str], uid: str) -> Any:
        title = self.state.folders.get((org_id, uid))
        require(title is not None, "folder not found", 404)
        return {"uid": uid, "title": title}

    def create_folder(self, org_id: int, body: Any, query: dict[str, str]) -> Any:
        require(set(body) == {"uid", "title"}, f"bad body {body}")
        require((org_id, body["uid"]) not in self.state.folders, "a folder with the same uid exists", 409)
        self.state.folders[(org_id, body["uid"])] = body["title"]
        return {"uid": body["uid"], "title": body["title"]}

    def get_dashboard(self, org_id: int, body: Any, query: dict[str, str], uid: str) -> Any:
        stored = self.state.dashboards.get((org_id, uid))
        require(stored is not None, "Dashboard not found", 404)
        assert stored is not None
        return {"dashboard": stored["dashboard"], "meta": {"folderUid": stored["folderUid"]}}

    def save_dashboard(self, org_id: int, body: Any, query: dict[str, str]) -> Any:
        require(set(body) <= {"dashboard", "folderUid", "overwrite", "message"}, f"bad body {body.keys()}")
        dashboard = body["dashboard"]
        require(dashboard.get("id") is None, "a provisioned dashboard is saved by uid, id null")
        require(bool(dashboard.get("uid")) and bool(dashboard.get("title")), "uid and title required")
        require((org_id, body.get("folderUid")) in self.state.folders, "folder not found", 400)
        existing = self.state.dashboards.get((org_id, dashboard["uid"]))
        if existing is not None and not body.get("overwrite"):
            raise Reply(
                412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
            )
        version = existing["dashboard"]["version"] + 1 if existing else 1
        identity = existing["dashboard"]["id"] if existing else self.state.new_id()
        self.state.dashboards[(org_id, dashboard["uid"])] = {
            "dashboard": {**dashboard, "id": identity, "version": version},
            "folderUid": body["folderUid"],
        }
        return {"id": identity, "uid": dashboard["uid"], "status": "success", "version": version}

    def get_preferences(self, org_id: int, body: Any, query: dict[str, str]) -> Any:
        return {
            "theme": "",
            "homeDashboardId": 0,
            "homeDashboardUID": "",
            **self.state.preferences.get(org_id, {}),
        }

    def patch_preferences(self, org_id: int, body: Any, query: dict[str, str]) -> Any:
        uid = body.get("homeDashboardUID")
        require((org_id, uid) in self.state.dashboards, "Dashboard not found", 404)
        self.state.preferences.setdefault(org_id, {}).update(body)
        return {"message": "Preferences updated"}


@contextmanager
def running_stand_in() -> Iterator[tuple[GrafanaStandIn, str]]:
    """The stand-in on a free local port, in a thread; yields it and its base URL."""
    stand_in = GrafanaStandIn()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, body = stand_in.handle(self.command, self.path, headers, self.rfile.read(length))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer  # noqa: N815 (http.server names them)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="grafana-stand-in", daemon=True)
    thread.start()
    try:
        yield stand_in, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
