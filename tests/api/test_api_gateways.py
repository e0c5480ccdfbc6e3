"""Gateways: owned and hearing gateways listed, edits by owner only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from domain.decoding import DecodeStatus
from domain.ids import DevEui, GatewayId
from domain.uplink import NetworkServer, Reception, Uplink
from storage.database import libpq_url
from storage.uplinks import IngestBatch, UplinkRecord, prepare_connection, write_batch
from tests.api.data import Tenant, add_activity, add_gateway, auth, register


def heard_by(engine: Engine, gateway_id: str, dev_eui: str, municipality_id: int) -> None:
    """An uplink of `dev_eui` heard by `gateway_id`, written through the ingest write path."""
    uplink = Uplink(
        network_server=NetworkServer.CHIRPSTACK_V4,
        uplink_key=f"k-{gateway_id}-{dev_eui}",
        received_at=datetime.now(UTC) - timedelta(days=1),  # older than the device's last activity
        dev_eui=DevEui(dev_eui),
        payload=b"\x01",
        receptions=(Reception(GatewayId(gateway_id), rssi_dbm=-100.0),),
    )
    record = UplinkRecord(uplink, "test", municipality_id, None, DecodeStatus.UNCLAIMED)
    with psycopg.connect(libpq_url(engine.url.render_as_string(hide_password=False))) as conn:
        prepare_connection(conn)
        write_batch(conn, IngestBatch(uplinks=[record]))


def test_list_shows_owned_and_hearing_gateways_only(
    client: TestClient, engine: Engine, tenant: Tenant, neighbour: Tenant
) -> None:
    owned = add_gateway(engine, tenant.id, name="Rathaus")
    carrier = add_gateway(engine, neighbour.id, name="Nachbar Kirchturm")
    last_heard = add_gateway(engine, None)
    elsewhere = add_gateway(engine, neighbour.id, name="Nachbar Schule")
    ours = register(client, tenant)["dev_eui"]
    add_activity(engine, tenant.id, ours, last_gateway_id=last_heard)
    heard_by(engine, carrier, ours, tenant.id)
    listed = client.get(tenant.url("/gateways"), headers=tenant.headers("viewer")).json()["items"]
    assert {item["gateway_id"] for item in listed} == {owned, carrier, last_heard}
    by_id = {item["gateway_id"]: item for item in listed}
    assert by_id[owned]["owner"] == tenant.slug
    assert by_id[last_heard]["owner"] is None
    assert (
        client.get(tenant.url(f"/gateways/{elsewhere}"), headers=tenant.headers("viewer")).status_code == 404
    )


def test_gateway_ids_are_normalised(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    gateway_id = add_gateway(engine, tenant.id, gateway_id="b827ebfffe6c1234")
    response = client.get(tenant.url("/gateways/eui-B827EBFFFE6C1234"), headers=tenant.headers("viewer"))
    assert response.status_code == 200
    assert response.json()["gateway_id"] == gateway_id


@pytest.mark.parametrize("role", ["technician", "editor", "admin"])
def test_field_roles_name_and_place_own_gateways(
    client: TestClient, engine: Engine, tenant: Tenant, role: str
) -> None:
    gateway_id = add_gateway(engine, tenant.id)
    body = {"name": "Wasserturm", "latitude": 48.7, "longitude": 9.4, "altitude_m": 310.0}
    response = client.patch(tenant.url(f"/gateways/{gateway_id}"), json=body, headers=tenant.headers(role))
    assert response.status_code == 200, response.text
    assert {name: response.json()[name] for name in body} == body


def test_viewers_cannot_edit_gateways(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    gateway_id = add_gateway(engine, tenant.id)
    response = client.patch(
        tenant.url(f"/gateways/{gateway_id}"), json={"name": "x"}, headers=tenant.headers("viewer")
    )
    assert response.status_code == 403


def test_a_neighbours_gateway_is_seen_but_not_edited(
    client: TestClient, engine: Engine, tenant: Tenant, neighbour: Tenant
) -> None:
    carrier = add_gateway(engine, neighbour.id, name="Nachbar")
    heard_by(engine, carrier, register(client, tenant)["dev_eui"], tenant.id)
    url = tenant.url(f"/gateways/{carrier}")
    assert client.get(url, headers=tenant.headers("viewer")).status_code == 200
    assert client.patch(url, json={"name": "Ours now"}, headers=tenant.headers("admin")).status_code == 403
    assert client.patch(url, json={"owner": tenant.slug}, headers=tenant.headers("admin")).status_code == 403


def test_an_unassigned_gateway_can_be_taken_over_and_released(
    client: TestClient, engine: Engine, tenant: Tenant, neighbour: Tenant
) -> None:
    free = add_gateway(engine, None)
    add_activity(engine, tenant.id, register(client, tenant)["dev_eui"], last_gateway_id=free)
    url = tenant.url(f"/gateways/{free}")
    headers = tenant.headers("technician")
    assert client.patch(url, json={"owner": neighbour.slug}, headers=headers).status_code == 403
    assert client.patch(url, json={"owner": tenant.slug}, headers=headers).json()["owner"] == tenant.slug
    assert client.patch(url, json={"owner": None}, headers=headers).json()["owner"] is None


def test_the_region_admin_assigns_gateways_anywhere(
    client: TestClient, engine: Engine, tenant: Tenant, neighbour: Tenant, region_key: str
) -> None:
    gateway_id = add_gateway(engine, tenant.id)
    response = client.patch(
        tenant.url(f"/gateways/{gateway_id}"), json={"owner": neighbour.slug}, headers=auth(region_key)
    )
    assert response.json()["owner"] == neighbour.slug
    assert (
        client.get(neighbour.url(f"/gateways/{gateway_id}"), headers=neighbour.headers("viewer")).status_code
        == 200
    )
