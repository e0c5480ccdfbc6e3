"""The ingest write path against a real PostgreSQL: idempotence, latest state, activity, gateways."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from domain.decoding import DecodeStatus
from domain.ids import DevEui, GatewayId
from domain.reading import Quality, Reading
from domain.uplink import DeviceStatus, GatewayStatus, Location, NetworkServer, Radio, Reception, Uplink
from storage.device_registry import ensure_municipality, load_devices
from storage.uplinks import (
    IngestBatch,
    RejectedRecord,
    UplinkRecord,
    gateway_rollup_statements,
    prepare_connection,
    write_batch,
)

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
EUI = DevEui("70b3d57ed0000001")


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fresh_db_url) as connection:
        prepare_connection(connection)
        yield connection


def register(conn: psycopg.Connection[Any], municipality_id: int, dev_eui: str) -> int:
    row = conn.execute(
        "INSERT INTO device (municipality_id, dev_eui, name, codec_id) VALUES (%s, %s, %s, %s) RETURNING id",
        (municipality_id, dev_eui, "Bin 1", "dragino/ldds75-codec"),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def uplink(
    n: int, *, at: datetime | None = None, gateways: tuple[str, ...] = ("aa555a0000000001",)
) -> Uplink:
    return Uplink(
        network_server=NetworkServer.CHIRPSTACK_V4,
        uplink_key=f"key-{n}",
        received_at=at or T0 + timedelta(minutes=n),
        dev_eui=EUI,
        payload=bytes([n % 256, 1, 2]),
        f_port=2,
        f_cnt=n,
        receptions=tuple(
            Reception(
                gateway_id=GatewayId(g),
                rssi_dbm=-100.0 + i,
                snr_db=5.0 + i,
                channel=i,
                gateway_location=Location(51.7, 8.75),
            )
            for i, g in enumerate(gateways)
        ),
        radio=Radio(spreading_factor=7, bandwidth_hz=125000, frequency_hz=868100000),
    )


def record(up: Uplink, municipality_id: int, device_id: int | None, value: float) -> UplinkRecord:
    return UplinkRecord(
        uplink=up,
        source="test-source",
        municipality_id=municipality_id,
        device_id=device_id,
        decode_status=DecodeStatus.DECODED if device_id else DecodeStatus.UNCLAIMED,
        decoded={"distance": value},
        readings=(Reading("distance", value), Reading("battery_voltage", 3.6, Quality.GOOD))
        if device_id
        else (),
    )


def count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_a_batch_written_twice_is_stored_once(conn: psycopg.Connection[Any]) -> None:
    municipality = ensure_municipality(conn, "paderborn")
    device = register(conn, municipality, EUI)
    batch = IngestBatch(
        uplinks=[
            record(uplink(n, gateways=("aa555a0000000001", "aa555a0000000002")), municipality, device, n)
            for n in range(10)
        ]
    )
    first = write_batch(conn, batch)
    second = write_batch(conn, batch)
    assert first.uplinks_new == 10
    assert first.readings_new == 20
    assert second.uplinks_new == 0
    assert second.readings_new == 0
    assert count(conn, "uplink") == 10
    assert count(conn, "reception") == 20
    assert count(conn, "reading") == 20
    activity = conn.execute("SELECT uplink_count, last_f_cnt FROM device_activity").fetchall()
    assert activity == [(10, 9)]


def test_repeats_inside_one_batch_are_dropped(conn: psycopg.Connection[Any]) -> None:
    municipality = ensure_municipality(conn, "lippstadt")
    device = register(conn, municipality, EUI)
    one = record(uplink(1), municipality, device, 1.0)
    result = write_batch(conn, IngestBatch(uplinks=[one, one, one]))
    assert result.new_by_source == {"test-source": 1}
    assert count(conn, "reading") == 2
    assert conn.execute("SELECT uplink_count FROM device_activity").fetchall() == [(1,)]


def test_device_state_only_moves_forward(conn: psycopg.Connection[Any]) -> None:
    municipality = ensure_municipality(conn, "bad-driburg")
    device = register(conn, municipality, EUI)
    write_batch(conn, IngestBatch(uplinks=[record(uplink(5), municipality, device, 500.0)]))
    # An older uplink arriving late (backfill, redelivery) must not replace the newer state.
    write_batch(conn, IngestBatch(uplinks=[record(uplink(1), municipality, device, 100.0)]))
    state = conn.execute(
        "SELECT value, time FROM device_state WHERE device_id = %s AND quantity = 'distance'", (device,)
    ).fetchone()
    assert state == (500.0, T0 + timedelta(minutes=5))
    assert count(conn, "reading") == 4


def test_unclaimed_uplinks_keep_raw_data_and_activity(conn: psycopg.Connection[Any]) -> None:
    municipality = ensure_municipality(conn, "paderborn")
    write_batch(conn, IngestBatch(uplinks=[record(uplink(n), municipality, None, 0) for n in range(3)]))
    statuses = conn.execute("SELECT DISTINCT decode_status FROM uplink").fetchall()
    assert statuses == [(DecodeStatus.UNCLAIMED,)]
    assert count(conn, "reading") == 0
    row = conn.execute(
        "SELECT municipality_id, first_seen_at, last_seen_at, uplink_count, last_payload FROM device_activity"
    ).fetchone()
    assert row == (municipality, T0, T0 + timedelta(minutes=2), 3, bytes([2, 1, 2]))


def test_gateways_appear_from_uplinks_and_status(conn: psycopg.Connection[Any]) -> None:
    municipality = ensure_municipality(conn, "paderborn")
    write_batch(conn, IngestBatch(uplinks=[record(uplink(1), municipality, None, 0)]))
    gateway = conn.execute(
        "SELECT municipality_id, latitude, last_uplink_at, online FROM gateway WHERE gateway_id = %s",
        ("aa555a0000000001",),
    ).fetchone()
    assert gateway == (municipality, 51.7, T0 + timedelta(minutes=1), None)
    heard = conn.execute("SELECT gateway_id, municipality_id, last_heard_at FROM gateway_heard").fetchall()
    assert heard == [("aa555a0000000001", municipality, T0 + timedelta(minutes=1))]
    status = GatewayStatus(GatewayId("aa555a0000000001"), T0 + timedelta(minutes=2), online=False)
    write_batch(conn, IngestBatch(gateway_statuses=[(municipality, status)]))
    online = conn.execute("SELECT online, status_changed_at FROM gateway").fetchone()
    assert online == (False, T0 + timedelta(minutes=2))
    assert count(conn, "gateway_heartbeat") == 1


def test_gateway_traffic_is_kept_in_bins_and_pairs_to_the_hour(conn: psycopg.Connection[Any]) -> None:
    municipality = ensure_municipality(conn, "paderborn")
    device = register(conn, municipality, EUI)  # pairs are kept for registered devices only
    both = ("aa555a0000000001", "aa555a0000000002")
    # minutes 0..11 at T0: bins 08:00 and 08:05 and 08:10; a redelivery adds nothing
    batch = IngestBatch(
        uplinks=[record(uplink(n, gateways=both), municipality, device, 0) for n in range(12)]
    )
    write_batch(conn, batch)
    write_batch(conn, batch)
    bins = conn.execute(
        "SELECT gateway_id, bin_start, receptions FROM gateway_activity ORDER BY 1, 2"
    ).fetchall()
    minutes = [(T0 + timedelta(minutes=m), n) for m, n in ((0, 5), (5, 5), (10, 2))]
    assert bins == [(gateway, start, n) for gateway in both for start, n in minutes]
    pairs = conn.execute("SELECT gateway_id, dev_eui, heard_at FROM gateway_device ORDER BY 1").fetchall()
    assert pairs == [(gateway, EUI, T0 + timedelta(minutes=11)) for gateway in both]

    # within the hour the pair's time is left alone (no write); past it, it moves on
    write_batch(conn, IngestBatch(uplinks=[record(uplink(50, gateways=both[:1]), municipality, device, 0)]))
    heard = "SELECT heard_at FROM gateway_device WHERE gateway_id = %s"
    assert conn.execute(heard, (both[0],)).fetchone() == (T0 + timedelta(minutes=11),)
    write_batch(conn, IngestBatch(uplinks=[record(uplink(72, gateways=both[:1]), municipality, device, 0)]))
    assert conn.execute(heard, (both[0],)).fetchone() == (T0 + timedelta(minutes=72),)
    assert conn.execute(heard, (both[1],)).fetchone() == (T0 + timedelta(minutes=11),)


def test_rollups_recomputed_from_receptions_match_what_ingest_kept(conn: psycopg.Connection[Any]) -> None:
    municipality = ensure_municipality(conn, "paderborn")
    device = register(conn, municipality, EUI)
    both = ("aa555a0000000001", "aa555a0000000002")
    batch = IngestBatch(
        uplinks=[record(uplink(n, gateways=both), municipality, device, 0) for n in range(40)]
    )
    write_batch(conn, batch)
    tables = {
        "gateway_activity": "SELECT * FROM gateway_activity ORDER BY 1, 2",
        "gateway_device": "SELECT * FROM gateway_device ORDER BY 1, 2",
        "gateway_heard": "SELECT * FROM gateway_heard ORDER BY 1, 2",
    }
    kept = {name: conn.execute(query).fetchall() for name, query in tables.items()}
    assert len(kept["gateway_activity"]) == 2 * 8

    for name in tables:
        conn.execute(f"DELETE FROM {name}")
    for statement in gateway_rollup_statements():
        conn.execute(statement)
    assert {name: conn.execute(query).fetchall() for name, query in tables.items()} == kept

    # From a time on: the bins from there are rebuilt, earlier ones left alone.
    conn.execute(
        "UPDATE gateway_activity SET receptions = 99 WHERE bin_start >= %s", (T0 + timedelta(minutes=20),)
    )
    conn.execute(
        "UPDATE gateway_activity SET receptions = 77 WHERE bin_start < %s", (T0 + timedelta(minutes=5),)
    )
    for statement in gateway_rollup_statements(since=T0 + timedelta(minutes=22)):
        conn.execute(statement)
    bins = dict(
        ((gateway, start), n) for gateway, start, n in conn.execute(tables["gateway_activity"]).fetchall()
    )
    assert {n for (_, start), n in bins.items() if start >= T0 + timedelta(minutes=20)} == {5}
    assert {n for (_, start), n in bins.items() if start < T0 + timedelta(minutes=5)} == {77}


def test_rejected_messages_are_kept_whole(conn: psycopg.Connection[Any]) -> None:
    body = b"\x00not json"
    write_batch(conn, IngestBatch(rejected=[RejectedRecord("s", "v3/a/devices/b/up", "not JSON", body)]))
    assert conn.execute("SELECT topic, reason, payload FROM rejected_message").fetchall() == [
        ("v3/a/devices/b/up", "not JSON", body)
    ]


def test_device_registry_sees_changes_after_a_time(conn: psycopg.Connection[Any]) -> None:
    municipality = ensure_municipality(conn, "paderborn")
    register(conn, municipality, EUI)
    everything = load_devices(conn)
    assert [d.dev_eui for d in everything] == [EUI]
    assert load_devices(conn, changed_after=everything[0].updated_at) == []


def test_another_towns_source_keeps_its_own_activity_row(conn: psycopg.Connection[Any]) -> None:
    """device_activity is per (municipality, DevEUI): A hearing B's DevEUI never moves B's row."""
    town_b, town_a = ensure_municipality(conn, "town-b"), ensure_municipality(conn, "town-a")
    device = register(conn, town_b, EUI)
    write_batch(conn, IngestBatch(uplinks=[record(uplink(1), town_b, device, 100.0)]))
    foreign = record(uplink(5), town_a, None, 0)
    foreign.foreign = True
    result = write_batch(conn, IngestBatch(uplinks=[foreign]))
    assert result.foreign == 1
    activity = conn.execute(
        "SELECT municipality_id, last_seen_at, uplink_count, source FROM device_activity ORDER BY 1"
    ).fetchall()
    assert sorted(activity) == sorted(
        [
            (town_b, T0 + timedelta(minutes=1), 1, "test-source"),
            (town_a, T0 + timedelta(minutes=5), 1, "test-source"),
        ]
    )
    # The gateway-device pair says which gateways hear B's registered device: A's frame adds none.
    assert conn.execute("SELECT heard_at FROM gateway_device").fetchall() == [(T0 + timedelta(minutes=1),)]
    status = DeviceStatus(NetworkServer.CHIRPSTACK_V4, T0, EUI, battery_percent=3.0)
    write_batch(conn, IngestBatch(statuses=[(town_a, status)]))
    battery = "SELECT network_battery_percent FROM device_activity WHERE municipality_id = %s"
    assert conn.execute(battery, (town_b,)).fetchone() == (None,)
    assert conn.execute(battery, (town_a,)).fetchone() == (3.0,)


def test_a_gateway_status_moves_only_gateways_of_the_sources_town_or_nobodys(
    conn: psycopg.Connection[Any],
) -> None:
    town_a, town_c = ensure_municipality(conn, "town-a"), ensure_municipality(conn, "town-c")
    conn.execute(
        "INSERT INTO gateway (gateway_id, municipality_id, online, last_status_at) "
        "VALUES ('gw-c', %s, true, %s)",
        (town_c, T0),
    )
    conn.commit()
    offline = GatewayStatus(GatewayId("gw-c"), T0 + timedelta(minutes=1), online=False)
    write_batch(conn, IngestBatch(gateway_statuses=[(town_a, offline)]))
    assert conn.execute("SELECT online, last_status_at FROM gateway").fetchone() == (True, T0)
    assert count(conn, "gateway_heartbeat") == 0
    write_batch(conn, IngestBatch(gateway_statuses=[(town_c, offline)]))
    assert conn.execute("SELECT online, last_status_at FROM gateway").fetchone() == (
        False,
        offline.observed_at,
    )
    assert count(conn, "gateway_heartbeat") == 1


def test_a_refused_time_is_stored_once_however_often_it_comes(conn: psycopg.Connection[Any]) -> None:
    """A refused frame carries the bridge's time, new on each redelivery: its key and claim dedupe it."""
    municipality = ensure_municipality(conn, "paderborn")
    device = register(conn, municipality, EUI)
    claimed = datetime(9999, 12, 31, tzinfo=UTC)

    def delivered(bridge_time: datetime) -> UplinkRecord:
        refused = record(replace(uplink(1), received_at=bridge_time), municipality, device, 10.0)
        refused.claimed_received_at = claimed
        return refused

    first = write_batch(conn, IngestBatch(uplinks=[delivered(T0), delivered(T0 + timedelta(seconds=1))]))
    again = write_batch(conn, IngestBatch(uplinks=[delivered(T0 + timedelta(seconds=9))]))
    assert (first.uplinks_new, first.times_refused, again.uplinks_new) == (1, 1, 0)
    assert conn.execute("SELECT received_at, claimed_received_at FROM uplink").fetchall() == [(T0, claimed)]
    assert conn.execute("SELECT max(time) FROM device_state").fetchone() == (T0,)
    # Another town's refused frame of the same key is that town's own, not a duplicate.
    other = ensure_municipality(conn, "elsewhere")
    theirs = delivered(T0 + timedelta(seconds=20))
    theirs.municipality_id, theirs.device_id, theirs.readings = other, None, ()
    assert write_batch(conn, IngestBatch(uplinks=[theirs])).uplinks_new == 1


def test_rollups_pair_gateways_only_with_devices_of_the_receptions_town(
    conn: psycopg.Connection[Any],
) -> None:
    town_b, town_a = ensure_municipality(conn, "town-b"), ensure_municipality(conn, "town-a")
    register(conn, town_b, EUI)
    write_batch(conn, IngestBatch(uplinks=[record(uplink(n), town_a, None, 0) for n in range(3)]))
    conn.execute("DELETE FROM gateway_device")
    for statement in gateway_rollup_statements():
        conn.execute(statement)
    assert count(conn, "gateway_device") == 0
