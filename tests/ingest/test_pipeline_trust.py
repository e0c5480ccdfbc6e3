"""The pipeline's two distrusts: a DevEUI is answered for the source's town, a time against our clock.

Devices and ingest grants live in a real PostgreSQL (the cache reads them as the bridge
does); the clock is fixed so that "too far ahead" is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from decoders import CodecRegistry
from domain.decoding import DecodeStatus
from domain.ids import DevEui, GatewayId
from domain.uplink import DeviceStatus, GatewayStatus, Join, NetworkServer, Reception, Uplink
from ingest.config import IngestSettings, SourceConfig
from ingest.metrics import IngestCounters, Outcome
from ingest.pipeline import DeviceCache, Pipeline
from storage.device_registry import ensure_municipality
from storage.uplinks import prepare_connection, write_batch

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SOURCE = SourceConfig(name="a-source", kind="chirpstack-v4", municipality="town-a", host="localhost")
OWN, FOREIGN, GRANTED, UNKNOWN = (DevEui(f"00000000000000{n:02x}") for n in (1, 2, 3, 4))


@dataclass
class Towns:
    conn: psycopg.Connection[Any]
    a: int
    b: int
    c: int
    devices: DeviceCache
    counters: IngestCounters
    pipeline: Pipeline


@pytest.fixture
def towns(fresh_db_url: str) -> Iterator[Towns]:
    """A's source; A owns OWN, B owns FOREIGN, C owns GRANTED and lets A's sources deliver."""
    with psycopg.connect(fresh_db_url) as conn:
        prepare_connection(conn)
        a, b, c = (ensure_municipality(conn, slug) for slug in ("town-a", "town-b", "town-c"))
        for owner, dev_eui in ((a, OWN), (b, FOREIGN), (c, GRANTED)):
            conn.execute(
                "INSERT INTO device (municipality_id, dev_eui, name, decoder_source) "
                "VALUES (%s, %s, 'x', 'network')",
                (owner, dev_eui),
            )
        conn.execute(
            "INSERT INTO ingest_grant (owner_municipality_id, source_municipality_id, created_by) "
            "VALUES (%s, %s, 'test')",
            (c, a),
        )
        conn.commit()
        devices = DeviceCache()
        devices.refresh(conn)
        counters = IngestCounters()
        pipeline = Pipeline(devices, CodecRegistry(), {SOURCE.name: a}, counters, clock=lambda: NOW)
        yield Towns(conn, a, b, c, devices, counters, pipeline)


def uplink(dev_eui: DevEui, n: int, at: datetime = NOW - timedelta(minutes=1)) -> Uplink:
    return Uplink(
        network_server=NetworkServer.CHIRPSTACK_V4,
        uplink_key=f"trust-{dev_eui}-{n}",
        received_at=at,
        dev_eui=dev_eui,
        payload=b"\x01",
        f_port=2,
        f_cnt=n,
        decoded_by_network={"temperature": 20.0 + n},
        receptions=(Reception(GatewayId("aa555a00000000aa"), -90.0, 7.0),),
    )


def test_a_source_writes_for_its_own_towns_devices_and_granting_towns_only(towns: Towns) -> None:
    builder = towns.pipeline.new_batch()
    for n, dev_eui in enumerate((OWN, FOREIGN, GRANTED, UNKNOWN)):
        builder.add_event(SOURCE, uplink(dev_eui, n))
    batch = builder.finish()
    found = {
        record.uplink.dev_eui: (
            record.municipality_id,
            record.device_id is not None,
            record.decode_status,
            record.foreign,
        )
        for record in batch.uplinks
    }
    assert found == {
        OWN: (towns.a, True, DecodeStatus.DECODED, False),
        FOREIGN: (towns.a, False, DecodeStatus.UNCLAIMED, True),
        GRANTED: (towns.c, True, DecodeStatus.DECODED, False),
        UNKNOWN: (towns.a, False, DecodeStatus.UNCLAIMED, False),
    }
    assert towns.counters.snapshot()[SOURCE.name][Outcome.FOREIGN] == 1
    result = write_batch(towns.conn, batch)
    assert (result.foreign, result.uplinks_new) == (1, 4)
    assert towns.conn.execute(
        "SELECT count(*) FROM device_state s JOIN device d ON d.id = s.device_id WHERE d.dev_eui = %s",
        (FOREIGN,),
    ).fetchone() == (0,)


def test_joins_and_device_statuses_belong_to_the_town_the_source_may_write_for(towns: Towns) -> None:
    builder = towns.pipeline.new_batch()
    for dev_eui in (OWN, FOREIGN, GRANTED):
        builder.add_event(SOURCE, Join(NetworkServer.CHIRPSTACK_V4, NOW, dev_eui))
        builder.add_event(
            SOURCE, DeviceStatus(NetworkServer.CHIRPSTACK_V4, NOW, dev_eui, battery_percent=50.0)
        )
    batch = builder.finish()
    expected = [towns.a, towns.a, towns.c]
    assert [municipality for _, municipality, _ in batch.joins] == expected
    assert [municipality for municipality, _ in batch.statuses] == expected


def test_backfilled_events_follow_the_same_rule(towns: Towns) -> None:
    builder = towns.pipeline.new_batch()
    builder.add_events(SOURCE, [uplink(FOREIGN, 1)])
    (record,) = builder.finish().uplinks
    assert (record.municipality_id, record.device_id, record.foreign) == (towns.a, None, True)


def test_a_revoked_grant_ends_delivery_at_the_next_refresh(towns: Towns) -> None:
    towns.conn.execute("DELETE FROM ingest_grant")
    towns.conn.commit()
    towns.devices.refresh(towns.conn)
    assert towns.devices.for_source(GRANTED, towns.a).foreign
    assert towns.devices.for_source(GRANTED, towns.c).profile is not None


def test_times_too_far_ahead_are_replaced_by_the_bridges_and_kept_as_claimed(towns: Towns) -> None:
    builder = towns.pipeline.new_batch()
    believable = NOW + timedelta(minutes=4)
    builder.add_event(SOURCE, uplink(OWN, 1, at=believable))
    builder.add_event(SOURCE, uplink(OWN, 2, at=NOW + timedelta(minutes=6)))
    far = datetime(9999, 12, 31, tzinfo=UTC)
    builder.add_event(SOURCE, Join(NetworkServer.CHIRPSTACK_V4, far, OWN))
    builder.add_event(SOURCE, GatewayStatus(GatewayId("aa555a00000000aa"), far, online=True))
    batch = builder.finish()
    assert [(r.uplink.received_at, r.claimed_received_at) for r in batch.uplinks] == [
        (believable, None),
        (NOW, NOW + timedelta(minutes=6)),
    ]
    assert batch.joins[0][2].received_at == NOW
    assert batch.gateway_statuses[0][1].observed_at == NOW
    assert towns.counters.snapshot()[SOURCE.name][Outcome.FUTURE_TIME] == 3
    assert write_batch(towns.conn, batch).times_refused == 1


def test_how_far_ahead_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IngestSettings().max_future == timedelta(minutes=5)
    monkeypatch.setenv("LORAKOM_INGEST_MAX_FUTURE_S", "30")
    assert IngestSettings().max_future == timedelta(seconds=30)
