"""Loading the benchmark's database: registry, readings, frames, and what ingest keeps beside them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from bench.api_fleet import CODEC, SLOT_S, SPOTS_PER_ZONE, Fleet
from bench.api_frames import Links, Window, reception_blocks, uplink_blocks
from bench.api_values import SALT_PAYLOAD, device_series, link_signal, lost, mix, slot_times
from bench.binary_copy import Block, copy_blocks, pg_time
from storage.uplinks import gateway_rollup_statements


@dataclass(slots=True)
class LoadReport:
    tables: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Table -> (rows, seconds)."""
    vacuum_s: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)
    database_bytes: int = 0

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.tables.values()) + self.vacuum_s


def load_registry(conn: psycopg.Connection[Any], fleet: Fleet) -> None:
    """Municipalities, gateways, devices and parking capacities: few rows, plain COPY."""
    with conn.cursor() as cur:
        with cur.copy("COPY municipality (id, slug, name, district) FROM STDIN") as copy:
            for index, town in enumerate(fleet.towns):
                copy.write_row((index + 1, town.slug, town.name, "Landkreis Muster"))
        with cur.copy(
            "COPY device (id, municipality_id, dev_eui, name, codec_id, decoder_source, use_case, "
            "latitude, longitude, tags, metadata) FROM STDIN"
        ) as copy:
            for device in fleet.devices:
                copy.write_row(
                    (
                        device.id,
                        device.town + 1,
                        device.dev_eui,
                        device.name,
                        CODEC[device.quantity],
                        "builtin",
                        device.use_case,
                        device.latitude,
                        device.longitude,
                        Jsonb(device.tags),
                        Jsonb(device.metadata),
                    )
                )
        with cur.copy("COPY parking_zone (municipality_id, name, capacity) FROM STDIN") as copy:
            for index, town in enumerate(fleet.towns):
                for number, zone in enumerate(town.zones):
                    if number % 2 == 0:  # half the zones have spots without a sensor
                        copy.write_row((index + 1, zone, SPOTS_PER_ZONE + 4))
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('municipality', 'id'), (SELECT max(id) FROM municipality))"
        )
        cur.execute("SELECT setval(pg_get_serial_sequence('device', 'id'), (SELECT max(id) FROM device))")
    conn.commit()


def reading_blocks(fleet: Fleet, states: list[tuple[int, str, int, float]]) -> Iterator[Block]:
    """Readings device by device; each series' last reading is noted for `device_state`."""
    total = 0
    started = reported = time.perf_counter()
    for number, device in enumerate(fleet.devices, start=1):
        for series in device_series(fleet, device):
            if series.times_s.size == 0:
                continue
            yield (
                series.times_s.size,
                {
                    "device_id": device.id,
                    "quantity": series.quantity.encode(),
                    "time": pg_time(series.times_s),
                    "value": series.values,
                    "quality": 0,
                },
            )
            total += series.times_s.size
            states.append((device.id, series.quantity, int(series.times_s[-1]), float(series.values[-1])))
        if time.perf_counter() - reported > 30 or number == len(fleet.devices):
            reported = time.perf_counter()
            print(
                f"    readings: {number:,}/{len(fleet.devices):,} devices, {total:,} rows, "
                f"{total / (reported - started):,.0f} rows/s",
                flush=True,
            )


def load_activity(
    conn: psycopg.Connection[Any], fleet: Fleet, links: Links, heard_range: dict[int, tuple[int, int]]
) -> int:
    """`device_activity` from each device's last frame, and the gateways as ingest would leave them."""
    slots = np.arange(fleet.first_slot, fleet.end_slot, dtype=np.int64)
    with conn.cursor() as cur:
        with cur.copy(
            "COPY device_activity (dev_eui, municipality_id, source, first_seen_at, last_seen_at, "
            "uplink_count, last_f_cnt, last_f_port, last_payload, last_gateway_id, last_rssi_dbm, "
            "last_snr_db, last_spreading_factor) FROM STDIN"
        ) as copy:
            for index, device in enumerate(fleet.devices):
                kept = slots[~lost(device.id, slots)]
                times = slot_times(device.id, device.phase_s, kept[[0, -1]])
                last = kept[-1:]
                rssi, snr = link_signal(
                    links.ids[index : index + 1], last, 0, links.rssi_dbm[index : index + 1, 0]
                )
                payload = mix(device.id, last, SALT_PAYLOAD).astype(">u8").tobytes()
                copy.write_row(
                    (
                        device.dev_eui,
                        device.town + 1,
                        "bench",
                        datetime.fromtimestamp(int(times[0]), UTC),
                        datetime.fromtimestamp(int(times[1]), UTC),
                        int(kept.size),
                        int(last[0] - fleet.first_slot),
                        2,
                        payload,
                        fleet.gateways[device.gateways[0]].gateway_id,
                        float(rssi[0]),
                        float(snr[0]),
                        device.spreading_factor,
                    )
                )
        with cur.copy(
            "COPY gateway (gateway_id, municipality_id, name, latitude, longitude, altitude_m, "
            "first_seen_at, last_seen_at, last_uplink_at) FROM STDIN"
        ) as copy:
            for index, gateway in enumerate(fleet.gateways):
                first, last_heard = heard_range.get(index, (fleet.uplink_first_slot * SLOT_S,) * 2)
                copy.write_row(
                    (
                        gateway.gateway_id,
                        gateway.town + 1,
                        gateway.name,
                        gateway.latitude,
                        gateway.longitude,
                        gateway.altitude_m,
                        datetime.fromtimestamp(first, UTC),
                        datetime.fromtimestamp(last_heard, UTC),
                        datetime.fromtimestamp(last_heard, UTC),
                    )
                )
    conn.commit()
    return len(fleet.devices) + len(fleet.gateways)


def load(url: str, fleet: Fleet) -> LoadReport:
    report = LoadReport()
    links = Links.of(fleet)
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        started = time.perf_counter()
        load_registry(conn, fleet)
        report.tables["registry"] = (len(fleet.towns) + len(fleet.devices), time.perf_counter() - started)

        states: list[tuple[int, str, int, float]] = []
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute("TRUNCATE reading")
            rows = copy_blocks(cur, "reading", reading_blocks(fleet, states), freeze=True)
        conn.commit()
        report.tables["reading"] = (rows, time.perf_counter() - started)

        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY device_state (device_id, quantity, time, value) FROM STDIN") as copy,
        ):
            for device_id, quantity, moment, value in states:
                copy.write_row((device_id, quantity, datetime.fromtimestamp(moment, UTC), value))
        conn.commit()
        report.tables["device_state"] = (len(states), time.perf_counter() - started)

        heard_range: dict[int, tuple[int, int]] = {}
        for table, blocks in (
            ("uplink", uplink_blocks(fleet, links, Window())),
            ("reception", reception_blocks(fleet, links, Window(), heard_range)),
        ):
            started = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute(f"TRUNCATE {table}")
                rows = copy_blocks(cur, table, blocks, freeze=True)
            conn.commit()
            report.tables[table] = (rows, time.perf_counter() - started)
            print(f"    {table}: {rows:,} rows, {rows / report.tables[table][1]:,.0f} rows/s", flush=True)

        started = time.perf_counter()
        rows = load_activity(conn, fleet, links, heard_range)
        # What ingest keeps about gateways while it writes receptions.
        for statement in gateway_rollup_statements():
            conn.execute(statement)
        conn.commit()
        report.tables["device_activity, gateway"] = (rows, time.perf_counter() - started)

    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        report.vacuum_s = time.perf_counter() - started
        for table in ("reading", "uplink", "reception", "device_state"):
            size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()
            report.sizes[table] = int(size[0]) if size else 0
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        report.database_bytes = int(total[0]) if total else 0
    return report


def top_up_frames(url: str, fleet: Fleet, links: Links) -> int:
    """Frames from the newest stored one up to now, so that gateways look as live as they are.

    Gateway status has a 15-minute horizon, and loading and the earlier scenarios take
    longer than that; readings are left as loaded.
    """
    now = int(time.time())
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        row = cur.execute("SELECT extract(epoch FROM max(received_at))::int8 FROM uplink").fetchone()
        after = int(row[0]) if row and row[0] is not None else fleet.end_s - 1
        if now <= after:
            return 0
        span = replace(fleet, uplink_first_slot=after // SLOT_S, end_slot=now // SLOT_S + 1)
        window = Window(after, now)
        heard: dict[int, tuple[int, int]] = {}
        rows = copy_blocks(cur, "uplink", uplink_blocks(span, links, window), freeze=False)
        copy_blocks(cur, "reception", reception_blocks(span, links, window, heard), freeze=False)
        for index, (_, last) in heard.items():
            cur.execute(
                "UPDATE gateway SET last_seen_at = greatest(last_seen_at, %(at)s), "
                "last_uplink_at = greatest(last_uplink_at, %(at)s) WHERE gateway_id = %(id)s",
                {"at": datetime.fromtimestamp(last, UTC), "id": fleet.gateways[index].gateway_id},
            )
        # What ingest keeps about gateways, for the frames just added around it.
        for statement in gateway_rollup_statements(since=datetime.fromtimestamp(after, UTC)):
            cur.execute(statement)
        conn.commit()
    return rows
