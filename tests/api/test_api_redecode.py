"""Claiming an unclaimed device decodes its history; an admin can have any device decoded again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings
from cli.wiring import redecode_hook, redecode_since_hook
from domain.decoding import DecodeStatus
from domain.ids import DevEui, GatewayId
from domain.uplink import NetworkServer, Reception, Uplink
from storage.api_keys import create_api_key
from storage.database import create_database_engine
from storage.device_registry import ensure_municipality
from storage.uplinks import IngestBatch, UplinkRecord, prepare_connection, write_batch

EUI = DevEui("24e1241234567890")
T0 = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def app_client(fresh_db_url: str) -> Iterator[tuple[TestClient, str]]:
    engine = create_database_engine(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn:
        prepare_connection(conn)
        municipality = ensure_municipality(conn, "altenbeken")
        frames = [
            UplinkRecord(
                uplink=Uplink(
                    network_server=NetworkServer.TTS,
                    uplink_key=f"claim-{n}",
                    received_at=T0 + timedelta(minutes=10 * n),
                    dev_eui=EUI,
                    payload=bytes([0x01, 0x75, 90, 0x03, 0x82]) + (800 + n).to_bytes(2, "little"),
                    f_port=85,
                    f_cnt=n,
                    receptions=(Reception(GatewayId("aa555a00000000aa"), -99.0, 4.5),),
                ),
                source="altenbeken-tts",
                municipality_id=municipality,
                device_id=None,
                decode_status=DecodeStatus.UNCLAIMED,
            )
            for n in range(30)
        ]
        write_batch(conn, IngestBatch(uplinks=frames))
    with Session(engine) as session:
        admin, _ = create_api_key(session, municipality_slug="altenbeken", role="admin", name="a")
        editor, _ = create_api_key(session, municipality_slug="altenbeken", role="editor", name="e")
        session.commit()
    app = create_app(
        ApiSettings(), engine=engine, on_device_registered=redecode_hook(), redecode=redecode_since_hook()
    )
    with TestClient(app) as client:
        client.headers["X-Test-Editor"] = editor
        yield client, admin
    engine.dispose()


def readings(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT quantity, count(*) FROM reading GROUP BY quantity ORDER BY quantity"
        ).fetchall()


def test_claiming_decodes_history_and_redecode_is_idempotent(
    app_client: tuple[TestClient, str], fresh_db_url: str
) -> None:
    client, admin = app_client
    editor = {"X-API-Key": client.headers["X-Test-Editor"]}
    unclaimed = client.get("/v1/municipalities/altenbeken/unclaimed-devices", headers=editor).json()
    assert [item["dev_eui"] for item in unclaimed["items"]] == [EUI]
    created = client.post(
        "/v1/municipalities/altenbeken/devices",
        json={"dev_eui": EUI.upper(), "name": "Pegel Beke", "codec_id": "milesight-iot/em500-udl-codec"},
        headers=editor,
    )
    assert created.status_code == 201, created.text
    assert readings(fresh_db_url) == [("battery", 30), ("distance", 30)]
    latest = client.get("/v1/municipalities/altenbeken/readings/latest", headers=editor).json()
    assert latest["items"][0]["values"]["distance"]["value"] == 829.0

    forbidden = client.post(f"/v1/municipalities/altenbeken/devices/{EUI}/redecode", headers=editor)
    assert forbidden.status_code == 403
    since = (T0 + timedelta(minutes=100)).isoformat()
    again = client.post(
        f"/v1/municipalities/altenbeken/devices/{EUI}/redecode",
        params={"since": since},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert again.status_code == 202, again.text
    assert again.json()["frames"] == 20
    assert readings(fresh_db_url) == [("battery", 30), ("distance", 30)]


def test_the_codec_list_names_use_cases_and_sources(app_client: tuple[TestClient, str]) -> None:
    client, admin = app_client
    codecs = client.get("/v1/codecs", headers={"Authorization": f"Bearer {admin}"}).json()
    by_id = {codec["codec_id"]: codec for codec in codecs}
    assert by_id["milesight-iot/em500-udl-codec"]["source"] == "builtin"
    assert by_id["nwave/nps405-codec"]["use_case"] == "parking"
    assert client.get("/v1/codecs").status_code == 401
