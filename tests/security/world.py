"""Towns with one of each kind of resource, for the security suite's probes to point at.

A probe fills a route's path parameters with the ids of a chosen town, so one
`World` serves every route: the own town whose keys make the requests, another
town that shares nothing with it, one town per use case that shares exactly that
use case with the own town, and unknown ids and slugs. Resources are made the
first time a parameter of their kind is asked for, through the API with the
region admin's key where the API can make them (so they are what users make),
directly in the database where only the platform makes them (gateways, events).

Every resource's name carries its town's slug, so a town's slug showing up in an
answer to another town's key is a leak of that town's data.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from ingest.config import SourceConfig
from services.waste import FILL_LEVEL
from storage.api_keys import Role, create_api_key, revoke_api_key
from storage.models_usecases import AlertEvent
from storage.municipalities import create_municipality
from storage.sharing import SharedUseCase
from tests.api.data import (
    MUNICIPAL_ROLES,
    Tenant,
    add_gateway,
    add_readings,
    auth,
    device_id,
    register,
    unique_slug,
)

LARGEST_ID = 2**31 - 1

WEBHOOK_SECRET_ENV = "LORAKOM_SECURITY_SUITE_WEBHOOK_SECRET"
WEBHOOK_SOURCES = (
    SourceConfig(name="quelle-tts", kind="tts", municipality="quelle", webhook_secret_env=WEBHOOK_SECRET_ENV),
    SourceConfig(
        name="quelle-chirpstack",
        kind="chirpstack-v4",
        municipality="quelle",
        webhook_secret_env=WEBHOOK_SECRET_ENV,
    ),
)
"""The webhook sources of the suite's app. Their secret is made per session and never sent:
no probe knows it, as no attacker does."""

CODEC_SCRIPT = """\
function decodeUplink(input) {
  return { data: { temperature: input.bytes.length ? input.bytes[0] / 2 : 0 } };
}
"""


def codec_script_body(codec_id: str) -> dict[str, Any]:
    return {"codec_id": codec_id, "style": "decodeUplink", "script": CODEC_SCRIPT, "use_case": "environment"}


def new_codec_id() -> str:
    return f"probe-{uuid.uuid4().hex[:10]}/codec"


def marker(slug: str) -> str:
    """A resource name that names its town, so that it is recognised wherever it leaks to."""
    return f"geheim-{slug}"


@dataclass
class Town:
    """A municipality with a key of every municipal role, a revoked key, and its resources."""

    id: int
    slug: str
    keys: dict[str, str]
    revoked_key: str
    resources: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return auth(self.keys[role])


ResourceMaker = Callable[["World", Town], str]


@dataclass
class World:
    """The towns of one test module, made once, and the resources made in them on demand."""

    client: TestClient
    engine: Engine
    region_key: str
    own: Town
    other: Town
    sharers: dict[SharedUseCase, Town]
    codec_ids: list[str] = field(default_factory=list)

    @property
    def towns(self) -> list[Town]:
        return [self.own, self.other, *self.sharers.values()]

    def region(self, method: str, url: str, **kwargs: Any) -> Any:
        """A setup request of the region admin, which must succeed."""
        response = self.client.request(method, url, headers=auth(self.region_key), **kwargs)
        assert response.status_code < 300, f"{method} {url}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def value(self, kind: str, town: Town, *, fresh: bool = False) -> str:
        """An id of kind `kind` (a path parameter's name) naming a resource of `town`.

        `fresh` makes a new resource, for a request that uses its target up (a delete).
        """
        if kind not in MAKERS:
            raise KeyError(f"the suite cannot yet make a resource for the path parameter {{{kind}}}")
        if fresh:
            return MAKERS[kind](self, town)
        if kind not in town.resources:
            town.resources[kind] = MAKERS[kind](self, town)
        return town.resources[kind]

    def new_codec_id(self) -> str:
        """A codec id whose script is deleted when the module ends (no isolate outlives it)."""
        self.codec_ids.append(new_codec_id())
        return self.codec_ids[-1]

    def bystander(self) -> str:
        """A new municipality without keys, for grants that must not collide with one another."""
        slug = unique_slug("zuschauer")
        with self.session() as session:
            create_municipality(session, slug=slug, name=marker(slug), district="Esslingen")
            session.commit()
        return slug

    def close(self) -> None:
        for codec_id in self.codec_ids:
            self.client.delete(f"/v1/codec-scripts/{codec_id}", headers=auth(self.region_key))

    def session(self) -> Session:
        """The one place this module opens a database session of its own."""
        return Session(self.engine)


def unknown_value(kind: str) -> str:
    """An id of kind `kind` that names nothing anywhere, but is well-formed."""
    if kind in ("dev_eui", "gateway_id", "waste-bin", "environment-sensor"):
        return secrets.token_hex(8)
    if kind in ("zone", "soil_type", "tts-source", "chirpstack-source"):
        return f"unbekannt-{secrets.token_hex(5)}"
    if kind == "codec_id":
        return f"unbekannt-{secrets.token_hex(5)}/codec"
    if kind == "slug":
        return unique_slug("unbekannt")
    return str(LARGEST_ID - secrets.randbelow(1_000_000))


def make_town(client: TestClient, engine: Engine) -> Town:
    slug = unique_slug("stadt")
    with Session(engine) as session:
        municipality = create_municipality(session, slug=slug, name=marker(slug), district="Esslingen")
        keys = {
            role: create_api_key(session, municipality_slug=slug, role=role, name=marker(slug))[0]
            for role in MUNICIPAL_ROLES
        }
        revoked, row = create_api_key(
            session, municipality_slug=slug, role=Role.ADMIN.value, name=marker(slug)
        )
        revoke_api_key(session, municipality_id=municipality.id, key_id=row.id)
        session.commit()
        return Town(id=municipality.id, slug=slug, keys=keys, revoked_key=revoked)


def make_world(client: TestClient, engine: Engine, region_key: str) -> World:
    """The own town, another, and a town per use case sharing just that use case with the own town."""
    own = make_town(client, engine)
    world = World(
        client=client,
        engine=engine,
        region_key=region_key,
        own=own,
        other=make_town(client, engine),
        sharers={use_case: make_town(client, engine) for use_case in SharedUseCase},
    )
    for use_case, sharer in world.sharers.items():
        world.region(
            "POST",
            f"/v1/municipalities/{sharer.slug}/sharing",
            json={"use_case": use_case.value, "grantee": own.slug},
        )
    # One ingest grant the own town received, so that its list of them has a foreign row to show.
    world.region(
        "POST",
        f"/v1/municipalities/{world.sharers[SharedUseCase.WASTE].slug}/ingest-grants",
        json={"source": own.slug},
    )
    # One of each resource in every town up front, so that every list has rows to leak.
    for town in world.towns:
        for kind in TOWN_RESOURCES:
            world.value(kind, town)
    return world


# -- one maker per path parameter ---------------------------------------------------------------


def _device(world: World, town: Town) -> str:
    tenant = Tenant(id=town.id, slug=town.slug, keys={"editor": world.region_key})
    dev_eui: str = register(world.client, tenant, name=marker(town.slug))["dev_eui"]
    return dev_eui


def _measuring_device(use_case: SharedUseCase, quantity: str, value: float) -> ResourceMaker:
    """A device of `use_case` with a latest value of `quantity`: what the use case's views show
    (a bin is a device with a fill level); any other device they answer like a missing one."""

    def make(world: World, town: Town) -> str:
        tenant = Tenant(id=town.id, slug=town.slug, keys={"editor": world.region_key})
        device = register(world.client, tenant, name=marker(town.slug), use_case=use_case.value)
        dev_eui: str = device["dev_eui"]
        heard = datetime.now(UTC) - timedelta(minutes=5)
        add_readings(world.engine, [(heard, device_id(world.engine, dev_eui), quantity, value)])
        return dev_eui

    return make


def _gateway(world: World, town: Town) -> str:
    return add_gateway(world.engine, town.id, name=marker(town.slug))


def _key(world: World, town: Town) -> str:
    body = {"name": marker(town.slug), "role": "viewer"}
    return str(world.region("POST", f"/v1/municipalities/{town.slug}/api-keys", json=body)["id"])


def _rule(world: World, town: Town) -> str:
    body = {"name": marker(town.slug), "kind": "device_silent", "duration_s": 3600}
    return str(world.region("POST", f"/v1/municipalities/{town.slug}/alerts/rules", json=body)["id"])


def _event(world: World, town: Town) -> str:
    rule_id = int(_rule(world, town))
    with world.session() as session:
        event = AlertEvent(
            rule_id=rule_id,
            municipality_id=town.id,
            subject_kind="device",
            subject=world.value("dev_eui", town),
            message=marker(town.slug),
            opened_at=datetime.now(UTC),
        )
        session.add(event)
        session.commit()
        return str(event.id)


def _webhook(world: World, town: Town) -> str:
    body = {"url": "https://alerts.example.com/lorakom", "description": marker(town.slug)}
    return str(world.region("POST", f"/v1/municipalities/{town.slug}/alerts/webhooks", json=body)["id"])


def _grant(world: World, town: Town) -> str:
    body = {"use_case": "soil", "grantee": world.bystander()}
    return str(world.region("POST", f"/v1/municipalities/{town.slug}/sharing", json=body)["id"])


def _ingest_grant(world: World, town: Town) -> str:
    body = {"source": world.bystander()}
    return str(world.region("POST", f"/v1/municipalities/{town.slug}/ingest-grants", json=body)["id"])


def _zone(world: World, town: Town) -> str:
    zone = f"zone-{secrets.token_hex(4)}"
    world.region(
        "PUT", f"/v1/municipalities/{town.slug}/parking/zones/{zone}/capacity", json={"capacity": 12}
    )
    return zone


def _soil_type(world: World, town: Town) -> str:
    soil_type = f"boden-{secrets.token_hex(4)}"
    body = {"yellow_below_percent": 20, "red_below_percent": 10}
    world.region("PUT", f"/v1/municipalities/{town.slug}/soil/thresholds/{soil_type}", json=body)
    return soil_type


def _codec_script(world: World, town: Town) -> str:
    """Registered with the town's admin key, so that the town owns it."""
    codec_id = world.new_codec_id()
    response = world.client.post(
        "/v1/codec-scripts", json=codec_script_body(codec_id), headers=town.headers("admin")
    )
    assert response.status_code == 201, response.text
    return codec_id


TOWN_RESOURCES = (
    "dev_eui",
    "gateway_id",
    "key_id",
    "rule_id",
    "event_id",
    "webhook_id",
    "grant_id",
    "ingest_grant_id",
    "zone",
    "soil_type",
    "codec_id",
)
MAKERS: dict[str, ResourceMaker] = {
    # Sources belong to the app's configuration, not to a town of the module: the own town
    # stands for the route's own kind of source, any other town for a source of the other
    # kind, a known name that the route must answer like an unknown one.
    "tts-source": lambda world, town: WEBHOOK_SOURCES[0 if town is world.own else 1].name,
    "chirpstack-source": lambda world, town: WEBHOOK_SOURCES[1 if town is world.own else 0].name,
    "dev_eui": _device,
    "waste-bin": _measuring_device(SharedUseCase.WASTE, FILL_LEVEL, 64.0),
    "environment-sensor": _measuring_device(SharedUseCase.ENVIRONMENT, "temperature", 21.5),
    "gateway_id": _gateway,
    "key_id": _key,
    "rule_id": _rule,
    "event_id": _event,
    "webhook_id": _webhook,
    "grant_id": _grant,
    "ingest_grant_id": _ingest_grant,
    "zone": _zone,
    "soil_type": _soil_type,
    "codec_id": _codec_script,
}
