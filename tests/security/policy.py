"""What every route of the API should answer, declared once, and how to name its targets.

`POLICY` classifies each route of the OpenAPI document by its door (who gets in) and,
for a town's routes, the action it needs and the use case it belongs to; it also knows
a valid request body for every route that takes one, so that the security suite's
probes reach the handlers (the isolation matrix) or start from something valid and
break one thing at a time (the hostile bodies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote

from starlette.testclient import TestClient

from api.access import Action
from api.app import create_app
from api.settings import ApiSettings
from decoders import CodecRegistry
from ingest.webhooks import WebhookIngest, webhook_router
from storage.sharing import SharedUseCase
from tests.api.data import device_body, unique_slug
from tests.security.world import World, codec_script_body, unknown_value


class Door(Enum):
    """How a route decides who gets in."""

    OPEN = "no key needed"
    ANY_KEY = "any valid key; shows the key's own town, or what is shared with the region"
    REGION_ONLY = "region admin only"
    TOWN = "a town's route: its keys (by action) and the region admin; shared use cases readable"
    SCRIPT_CREATE = "codec scripts are registered by admins"
    SCRIPT_READ = "codec scripts are global: every key reads every script, not who registered it"
    SCRIPT_TRY = "trying a script runs code on the platform's CPU: editors and up, not viewers"
    SCRIPT_OWNER = "a script is changed by its town's admins or the region admin"
    WEBHOOK = "a network server's webhook: its source's secret, which no API key is"
    METRICS = "Prometheus' scrape: the metrics token, which no API key is"


@dataclass(frozen=True)
class Target:
    """What a request points at: a slug (or none) and a value for each id kind."""

    slug: str | None
    ids: dict[str, str]

    def id(self, kind: str) -> str:
        return self.ids[kind]


BodyMaker = Callable[[World, Target], Any]


@dataclass(frozen=True)
class Policy:
    door: Door
    action: Action | None = None
    use_case: SharedUseCase | None = None
    success: int = 200
    body: BodyMaker | None = None
    upload: bool = False
    query: Callable[[Target], dict[str, str]] | None = None
    query_ids: tuple[str, ...] = ()
    consumes: bool = False
    """The request uses its target up (a delete): each one expected to succeed gets a fresh one."""
    upserts: bool = False
    """The path names something the request creates in the own town when absent (a zone, a soil type)."""
    names_grantors: bool = False
    """The own town's answer lists the towns that granted it something, by slug."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Resource kinds of path parameters whose name does not say it (`{source}` of which kind)."""

    def kind_of(self, parameter: str) -> str:
        return self.kinds.get(parameter, parameter)


def town(action: Action, use_case: SharedUseCase | None = None, success: int = 200, **more: Any) -> Policy:
    return Policy(Door.TOWN, action=action, use_case=use_case, success=success, **more)


def history_query(target: Target) -> dict[str, str]:
    return {"dev_eui": target.id("dev_eui"), "bucket": "1h"}


def csv_upload(world: World, target: Target) -> Any:
    return {"file": ("devices.csv", f"dev_eui,name\n{unknown_value('dev_eui')},Importiert\n", "text/csv")}


READ, GATEWAYS, DEVICES = Action.READ, Action.EDIT_GATEWAYS, Action.EDIT_DEVICES
KEYS, SHARE = Action.MANAGE_KEYS, Action.SHARE
PARKING, WASTE = SharedUseCase.PARKING, SharedUseCase.WASTE
SOIL, ENVIRONMENT = SharedUseCase.SOIL, SharedUseCase.ENVIRONMENT
T = "/v1/municipalities/{slug}"

POLICY: dict[tuple[str, str], Policy] = {
    ("GET", "/healthz"): Policy(Door.OPEN),
    ("GET", "/readyz"): Policy(Door.OPEN),
    # The suite's app has a metrics token (as a deployment that is scraped has), which no probe sends.
    ("GET", "/metrics"): Policy(Door.METRICS),
    ("GET", "/v1/me"): Policy(Door.ANY_KEY),
    ("GET", "/v1/municipalities"): Policy(Door.ANY_KEY),
    ("POST", "/v1/municipalities"): Policy(
        Door.REGION_ONLY,
        success=201,
        body=lambda world, target: {"slug": unique_slug("neu"), "name": "Neugründung"},
    ),
    ("GET", T): town(READ),
    # keys
    ("GET", T + "/api-keys"): town(KEYS),
    ("POST", T + "/api-keys"): town(
        KEYS, success=201, body=lambda world, target: {"name": "Leser", "role": "viewer"}
    ),
    ("DELETE", T + "/api-keys/{key_id}"): town(KEYS, consumes=True),
    # devices
    ("GET", T + "/devices"): town(READ),
    ("POST", T + "/devices"): town(DEVICES, success=201, body=lambda world, target: device_body()),
    ("GET", T + "/devices/export"): town(READ),
    ("POST", T + "/devices/import"): town(DEVICES, body=csv_upload, upload=True),
    ("GET", T + "/devices/{dev_eui}"): town(READ),
    ("PATCH", T + "/devices/{dev_eui}"): town(
        DEVICES,
        body=lambda world, target: {"latitude": 48.6, "longitude": 9.1, "metadata": {"bin_depth_mm": 1100.0}},
    ),
    ("DELETE", T + "/devices/{dev_eui}"): town(DEVICES, success=204, consumes=True),
    ("POST", T + "/devices/{dev_eui}/redecode"): town(Action.REDECODE, success=202),
    ("GET", T + "/unclaimed-devices"): town(READ),
    # gateways
    ("GET", T + "/gateways"): town(READ),
    ("GET", T + "/gateways/{gateway_id}"): town(READ),
    ("PATCH", T + "/gateways/{gateway_id}"): town(GATEWAYS, body=lambda world, target: {"altitude_m": 310}),
    # readings
    ("GET", T + "/readings/latest"): town(READ),
    ("GET", T + "/readings/latest/export"): town(READ, query=lambda target: {"format": "csv"}),
    ("GET", T + "/readings/history"): town(READ, query=history_query, query_ids=("dev_eui",)),
    ("GET", T + "/readings/history/export"): town(READ, query=history_query, query_ids=("dev_eui",)),
    # parking
    ("GET", T + "/parking/zones"): town(READ, PARKING),
    ("GET", T + "/parking/zones/{zone}"): town(READ, PARKING),
    ("PUT", T + "/parking/zones/{zone}/capacity"): town(
        DEVICES, body=lambda world, target: {"capacity": 20}, upserts=True
    ),
    ("GET", T + "/parking/zones/{zone}/spots"): town(READ, PARKING),
    ("GET", T + "/parking/zones/{zone}/occupancy"): town(READ, PARKING),
    ("GET", T + "/parking/zones/{zone}/typical-week"): town(READ, PARKING),
    # waste
    ("GET", T + "/waste/bins"): town(READ, WASTE),
    ("GET", T + "/waste/collection"): town(READ, WASTE),
    # A device outside a use case answers there like a missing one: these name a device of it.
    ("GET", T + "/waste/bins/{dev_eui}/emptyings"): town(READ, WASTE, kinds={"dev_eui": "waste-bin"}),
    # soil
    ("GET", T + "/soil/sensors"): town(READ, SOIL),
    ("GET", T + "/soil/areas"): town(READ, SOIL),
    ("GET", T + "/soil/needs-water"): town(READ, SOIL),
    ("GET", T + "/soil/thresholds"): town(READ, SOIL),
    ("PUT", T + "/soil/thresholds/{soil_type}"): town(
        KEYS,
        body=lambda world, target: {"yellow_below_percent": 25, "red_below_percent": 12},
        upserts=True,
    ),
    ("DELETE", T + "/soil/thresholds/{soil_type}"): town(KEYS, success=204, consumes=True),
    # environment
    ("GET", T + "/environment/latest"): town(READ, ENVIRONMENT),
    ("GET", T + "/environment/history"): town(
        READ,
        ENVIRONMENT,
        query=history_query,
        query_ids=("dev_eui",),
        kinds={"dev_eui": "environment-sensor"},
    ),
    # network health
    ("GET", T + "/health/gateways"): town(READ),
    ("GET", T + "/health/gateways/{gateway_id}"): town(READ),
    ("GET", T + "/health/devices"): town(READ),
    ("GET", T + "/health/devices/{dev_eui}"): town(READ),
    # alerts
    ("GET", T + "/alerts/rules"): town(READ),
    ("POST", T + "/alerts/rules"): town(
        KEYS,
        success=201,
        body=lambda world, target: {"name": "Stille", "kind": "device_silent", "duration_s": 7200},
    ),
    ("DELETE", T + "/alerts/rules/{rule_id}"): town(KEYS, success=204, consumes=True),
    ("GET", T + "/alerts/events"): town(READ),
    ("POST", T + "/alerts/events/{event_id}/ack"): town(GATEWAYS),
    ("GET", T + "/alerts/webhooks"): town(KEYS),
    ("POST", T + "/alerts/webhooks"): town(
        KEYS, success=201, body=lambda world, target: {"url": "https://alerts.example.com/neu"}
    ),
    ("DELETE", T + "/alerts/webhooks/{webhook_id}"): town(KEYS, success=204, consumes=True),
    ("GET", T + "/alerts/webhooks/{webhook_id}/deliveries"): town(KEYS),
    # sharing
    ("GET", T + "/sharing"): town(SHARE, names_grantors=True),
    ("POST", T + "/sharing"): town(
        SHARE, success=201, body=lambda world, target: {"use_case": "parking", "grantee": world.bystander()}
    ),
    ("DELETE", T + "/sharing/{grant_id}"): town(SHARE, success=204, consumes=True),
    # ingest grants: the owner of the devices grants and revokes; a source town lists those it received
    ("GET", T + "/ingest-grants"): town(SHARE, names_grantors=True),
    ("POST", T + "/ingest-grants"): town(
        SHARE, success=201, body=lambda world, target: {"source": world.bystander()}
    ),
    ("DELETE", T + "/ingest-grants/{ingest_grant_id}"): town(SHARE, success=204, consumes=True),
    # region views
    ("GET", "/v1/region/parking/zones"): Policy(Door.ANY_KEY),
    ("GET", "/v1/region/waste/bins"): Policy(Door.ANY_KEY),
    ("GET", "/v1/region/soil/sensors"): Policy(Door.ANY_KEY),
    ("GET", "/v1/region/environment/latest"): Policy(Door.ANY_KEY),
    # codecs
    ("GET", "/v1/codecs"): Policy(Door.ANY_KEY),
    ("GET", "/v1/codec-scripts"): Policy(Door.ANY_KEY),
    ("POST", "/v1/codec-scripts"): Policy(
        Door.SCRIPT_CREATE, success=201, body=lambda world, target: codec_script_body(world.new_codec_id())
    ),
    ("GET", "/v1/codec-scripts/{codec_id}"): Policy(Door.SCRIPT_READ),
    ("PUT", "/v1/codec-scripts/{codec_id}"): Policy(
        Door.SCRIPT_OWNER,
        body=lambda world, target: {
            key: value for key, value in codec_script_body(target.id("codec_id")).items() if key != "codec_id"
        },
    ),
    ("DELETE", "/v1/codec-scripts/{codec_id}"): Policy(Door.SCRIPT_OWNER, success=204, consumes=True),
    # webhook ingest
    ("POST", "/v1/ingest/tts/{source}"): Policy(Door.WEBHOOK, kinds={"source": "tts-source"}),
    ("POST", "/v1/ingest/chirpstack/{source}"): Policy(
        Door.WEBHOOK, kinds={"source": "chirpstack-source"}, query=lambda target: {"event": "up"}
    ),
    ("POST", "/v1/codec-scripts/{codec_id}/test"): Policy(
        Door.SCRIPT_TRY,
        body=lambda world, target: {"f_port": 1, "payload_hex": "2a", "metadata": {"bin_depth_mm": 900}},
    ),
}


# -- the routes of the document -----------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    path_ids: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def deployed_document() -> dict[str, Any]:
    """The OpenAPI document of the app as `lorakom run` composes it, webhook ingest included;
    for parametrizing tests when they are collected, before any app runs."""
    ingest = WebhookIngest([], "postgresql://unused", CodecRegistry())
    return create_app(ApiSettings(), extra_routers=[webhook_router(ingest)]).openapi()


def document_routes(client: TestClient) -> list[Route]:
    document: dict[str, Any] = client.app.openapi()  # type: ignore[attr-defined]
    routes = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = tuple(
                parameter["name"]
                for parameter in operation.get("parameters", [])
                if parameter["in"] == "path" and parameter["name"] != "slug"
            )
            routes.append(Route(method.upper(), path, names))
    return routes


def request_url(route: Route, target: Target) -> str:
    path = route.path
    if target.slug is not None:
        path = path.replace("{slug}", target.slug)
    for kind, value in target.ids.items():
        path = path.replace("{" + kind + "}", quote(value, safe="/"))
    return path
