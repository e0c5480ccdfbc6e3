"""The ingest write path: one batch of uplinks into PostgreSQL in one transaction.

Why it looks like this:
- Rows go in by binary COPY into per-connection staging tables, then two
  statements of data-modifying CTEs move them into the real tables. COPY is
  an order of magnitude cheaper per row than INSERT, and the CTEs let
  `ON CONFLICT DO NOTHING ... RETURNING` on `uplink` decide which frames are new,
  so receptions and readings of a redelivered frame are never written twice
  and `device_state` only moves forward. The summaries every batch shares
  (device state and activity, gateway rollups) come last, so their row locks are
  held briefly (see `INSERT_SQL`).
- Upserts feed rows in key order so that two bridges writing the same devices
  or gateways take row locks in the same order; a deadlock that still happens is
  retried by the caller (`TransientWriteError`).
- The caller acknowledges MQTT messages only after `write_batch` returned, so a
  crash between COPY and COMMIT loses nothing: the broker redelivers.
- Every row carries the municipality the pipeline decided (`ingest.pipeline`): the
  device's owner when the source may deliver for it, else the source's own town with
  the frame unclaimed. The summaries of devices and towns are keyed by that
  municipality (device_activity, gateway_heard) or fed only from claimed frames
  (readings, device_state, gateway_device), so that one town's source never moves
  another town's state. The gateway row and its activity bins describe the physical
  gateway and count every reception of it, whichever town's source reported it.
- A frame whose network-server time was refused (too far ahead, see
  `ingest.pipeline`) is stored under the bridge's time with the claim in
  `claimed_received_at`. Its key is then not (time, key) of a redelivery any more,
  so such frames are deduplicated by key among their town's refused ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg import sql

from domain.buckets import bucket_start
from domain.errors import PlatformError, StorageUnavailable
from domain.reading import Reading
from domain.uplink import DeviceStatus, GatewayStatus, Join, JsonObject, Uplink
from storage.buckets import bucket_expression
from storage.uplink_statements import (
    GATEWAY_STATUS_SQL,
    HEARTBEAT_SQL,
    INSERT_SQL,
    JOIN_SQL,
    REJECTED_SQL,
    STAGING_DDL,
    STATUS_SQL,
    SUMMARY_SQL_TEMPLATE,
)


class TransientWriteError(StorageUnavailable):
    """A write that failed for a reason that retrying can fix (deadlock, lost connection)."""


class UnstorableBatch(PlatformError):
    """A batch the database refuses for its content (a value out of range, bad text).

    Retrying cannot help; the caller finds the culprit by writing the messages one at a
    time and keeps the one that still fails as a rejected message, with this reason.
    """


@dataclass(slots=True)
class UplinkRecord:
    """An uplink with everything the pipeline learnt about it, ready to be stored."""

    uplink: Uplink
    source: str
    municipality_id: int
    device_id: int | None
    decode_status: str
    decoded: JsonObject | None = None
    decoder_source: str | None = None
    codec_id: str | None = None
    decode_error: str | None = None
    readings: Sequence[Reading] = ()
    claimed_received_at: datetime | None = None
    """The network server's time, when it was refused and `uplink.received_at` is the bridge's."""
    foreign: bool = False
    """Registered in a municipality that did not let this source deliver for it: kept unclaimed."""


@dataclass(slots=True)
class RejectedRecord:
    source: str
    topic: str
    reason: str
    payload: bytes


@dataclass(slots=True)
class IngestBatch:
    """What one flush writes; every list may be empty."""

    uplinks: list[UplinkRecord] = field(default_factory=list)
    joins: list[tuple[str, int, Join]] = field(default_factory=list)  # (source, municipality id, event)
    statuses: list[tuple[int, DeviceStatus]] = field(default_factory=list)  # (municipality id, event)
    # (the source's municipality, event): a source reports only on gateways its town runs or nobody does
    gateway_statuses: list[tuple[int, GatewayStatus]] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.uplinks)
            + len(self.joins)
            + len(self.statuses)
            + len(self.gateway_statuses)
            + len(self.rejected)
        )


@dataclass(frozen=True, slots=True)
class BatchResult:
    new_by_source: dict[str, int]
    readings_new: int
    rejected: int
    foreign: int = 0
    """Uplinks of devices registered in a municipality that did not grant the source's town."""
    times_refused: int = 0
    """Uplinks whose network-server time lay too far ahead, stored under the bridge's time."""

    @property
    def uplinks_new(self) -> int:
        return sum(self.new_by_source.values())


# The staging COPY's column types in `uplink_copy_row` order (the ingest benchmark writes the same rows).
UPLINK_COPY_TYPES = [
    "timestamptz", "text", "int4", "text", "text",
    "text", "int4", "text", "text", "int8", "int2",
    "bytea", "text", "text", "text", "text",
    "text", "text", "bool", "bool", "int2",
    "int4", "int8", "int2", "float8", "int2",
    "text", "float8", "float8", "timestamptz",
]  # fmt: skip
_RECEPTION_TYPES = [
    "timestamptz", "text", "text", "int2", "text",
    "int4", "float8", "float8", "int4", "int2",
    "float8", "float8", "float8",
]  # fmt: skip
_READING_TYPES = ["timestamptz", "text", "int4", "text", "float8", "int2"]

GATEWAY_ACTIVITY_BIN = timedelta(minutes=5)
"""Bins are aligned as the readings' buckets are (`storage.buckets.bucket_expression`)."""
GATEWAY_DEVICE_RESOLUTION = timedelta(hours=1)
"""How far `gateway_device.heard_at` may lag behind the last reception of the pair."""

_SUMMARY_SQL = SUMMARY_SQL_TEMPLATE.replace(
    "@ACTIVITY_BIN_OF_RECEIVED_AT@", bucket_expression(GATEWAY_ACTIVITY_BIN, "r.received_at", timescale=False)
).replace("@DEVICE_RESOLUTION_S@", str(int(GATEWAY_DEVICE_RESOLUTION.total_seconds())))


def gateway_rollup_statements(since: datetime | None = None) -> list[str]:
    """Statements that recompute what ingest keeps about gateways from the stored receptions
    alone (received at or after `since`, or all): for rows written around the ingest path,
    such as bulk loads or imports of another system's history. Idempotent."""
    bin_of = bucket_expression(GATEWAY_ACTIVITY_BIN, "received_at", timescale=False)
    if since is None:
        recent = bins_from = "true"
    else:
        first_bin = f"TIMESTAMPTZ '{bucket_start(since, GATEWAY_ACTIVITY_BIN).isoformat()}'"
        recent, bins_from = f"received_at >= {first_bin}", f"bin_start >= {first_bin}"
    return [
        "INSERT INTO gateway_heard (gateway_id, municipality_id, last_heard_at) "
        f"SELECT gateway_id, municipality_id, max(received_at) FROM reception WHERE {recent} GROUP BY 1, 2 "
        "ON CONFLICT (gateway_id, municipality_id) DO UPDATE "
        "SET last_heard_at = greatest(gateway_heard.last_heard_at, excluded.last_heard_at)",
        f"DELETE FROM gateway_activity WHERE {bins_from}",
        "INSERT INTO gateway_activity (gateway_id, bin_start, receptions) "
        f"SELECT gateway_id, {bin_of}, count(*) FROM reception WHERE {recent} GROUP BY 1, 2",
        # Pairs of registered devices heard for their own municipality, as on ingest.
        "INSERT INTO gateway_device (gateway_id, dev_eui, heard_at) "
        "SELECT r.gateway_id, r.dev_eui, max(r.received_at) FROM reception r "
        "JOIN device d ON d.dev_eui = r.dev_eui AND d.municipality_id = r.municipality_id "
        f"WHERE {recent.replace('received_at', 'r.received_at')} GROUP BY 1, 2 "
        "ON CONFLICT (gateway_id, dev_eui) DO UPDATE "
        "SET heard_at = greatest(gateway_device.heard_at, excluded.heard_at)",
    ]


def _json_text(value: JsonObject | None) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def uplink_copy_row(record: UplinkRecord) -> tuple[Any, ...]:
    """One uplink as the staging COPY writes it (`UPLINK_COPY_TYPES`)."""
    uplink = record.uplink
    radio = uplink.radio
    best = max(uplink.receptions, key=_signal_rank, default=None)
    return (
        uplink.received_at,
        uplink.uplink_key,
        record.municipality_id,
        record.source,
        uplink.network_server.value,
        uplink.dev_eui,
        record.device_id,
        uplink.network_device_id,
        uplink.application_id,
        uplink.f_cnt,
        uplink.f_port,
        uplink.payload,
        _json_text(uplink.decoded_by_network),
        _json_text(record.decoded),
        record.decode_status,
        record.decoder_source,
        record.codec_id,
        record.decode_error,
        uplink.confirmed,
        uplink.simulated,
        radio.spreading_factor,
        radio.bandwidth_hz,
        radio.frequency_hz,
        radio.data_rate,
        radio.airtime_s,
        len({reception.gateway_id for reception in uplink.receptions}),
        best.gateway_id if best else None,
        best.rssi_dbm if best else None,
        best.snr_db if best else None,
        record.claimed_received_at,
    )


def _signal_rank(reception: Any) -> tuple[float, float]:
    """Best gateway = highest SNR, then RSSI: SNR says more about decoding margin than RSSI."""
    snr = reception.snr_db if reception.snr_db is not None else -1e9
    rssi = reception.rssi_dbm if reception.rssi_dbm is not None else -1e9
    return (snr, rssi)


def prepare_connection(conn: psycopg.Connection[Any]) -> None:
    """Create this connection's staging tables (temporary, so each writer has its own)."""
    with conn.transaction():
        conn.execute(STAGING_DDL)


def write_batch(conn: psycopg.Connection[Any], batch: IngestBatch) -> BatchResult:
    """Store one batch atomically; raises `TransientWriteError` when a retry can succeed."""
    try:
        with conn.transaction():
            return _write(conn, batch)
    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
        raise TransientWriteError(f"write conflict, will retry: {exc.sqlstate}") from exc
    except psycopg.OperationalError as exc:
        raise TransientWriteError(f"database unreachable: {exc}") from exc
    except (psycopg.DataError, psycopg.IntegrityError, TypeError, ValueError) as exc:
        raise UnstorableBatch(f"refused by the database: {exc}") from exc


def _unique_uplinks(records: list[UplinkRecord]) -> list[UplinkRecord]:
    """Drop repeats inside one batch (a redelivery landing next to its original)."""
    seen: set[tuple[str, datetime]] = set()
    unique = []
    for record in records:
        # A refused time is replaced by the bridge's, per copy; the claimed time is the frame's.
        key = (record.uplink.uplink_key, record.claimed_received_at or record.uplink.received_at)
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique


def _write(conn: psycopg.Connection[Any], batch: IngestBatch) -> BatchResult:
    new_by_source: dict[str, int] = {}
    readings_new = 0
    unique = _unique_uplinks(batch.uplinks)
    with conn.cursor() as cur:
        if unique:
            _copy_staging(cur, unique)
            cur.execute(INSERT_SQL)
            counts = cur.fetchone()
            assert counts is not None
            new_by_source, readings_new, new_frames = dict(counts[0]), int(counts[1]), int(counts[3])
            if new_frames:
                cur.execute(_SUMMARY_SQL)
        for source_name, municipality_id, join in batch.joins:
            if join.dev_eui is None:
                continue
            cur.execute(
                JOIN_SQL,
                {
                    "dev_eui": join.dev_eui,
                    "municipality_id": municipality_id,
                    "source": source_name,
                    "network_device_id": join.network_device_id,
                    "at": join.received_at,
                },
            )
        if batch.statuses:
            cur.executemany(
                STATUS_SQL,
                [
                    {
                        "municipality_id": municipality_id,
                        "dev_eui": s.dev_eui,
                        "battery": s.battery_percent,
                        "margin": s.margin_db,
                    }
                    for municipality_id, s in batch.statuses
                ],
            )
        for municipality_id, status in sorted(
            batch.gateway_statuses, key=lambda item: (item[1].gateway_id, item[1].observed_at)
        ):
            params = {
                "municipality_id": municipality_id,
                "gateway_id": status.gateway_id,
                "at": status.observed_at,
                "online": status.online,
                "latitude": status.location.latitude if status.location else None,
                "longitude": status.location.longitude if status.location else None,
                "altitude_m": status.location.altitude_m if status.location else None,
                "rx_packets": status.rx_packets,
                "rx_packets_ok": status.rx_packets_ok,
                "tx_packets": status.tx_packets,
            }
            cur.execute(GATEWAY_STATUS_SQL, params)
            cur.execute(HEARTBEAT_SQL, params)
        if batch.rejected:
            cur.executemany(REJECTED_SQL, [(r.source, r.topic, r.reason, r.payload) for r in batch.rejected])
    return BatchResult(
        new_by_source=new_by_source,
        readings_new=readings_new,
        rejected=len(batch.rejected),
        foreign=sum(1 for record in unique if record.foreign),
        times_refused=sum(1 for record in unique if record.claimed_received_at is not None),
    )


def _copy_staging(cur: psycopg.Cursor[Any], records: list[UplinkRecord]) -> None:
    with cur.copy(sql.SQL("COPY stage_uplink FROM STDIN (FORMAT BINARY)")) as copy:
        copy.set_types(UPLINK_COPY_TYPES)
        for record in records:
            copy.write_row(uplink_copy_row(record))
    with cur.copy(sql.SQL("COPY stage_reception FROM STDIN (FORMAT BINARY)")) as copy:
        copy.set_types(_RECEPTION_TYPES)
        for record in records:
            uplink = record.uplink
            for reception in uplink.receptions:
                location = reception.gateway_location
                copy.write_row(
                    (
                        uplink.received_at,
                        uplink.uplink_key,
                        reception.gateway_id,
                        reception.antenna,
                        uplink.dev_eui,
                        record.municipality_id,
                        reception.rssi_dbm,
                        reception.snr_db,
                        reception.channel,
                        uplink.radio.spreading_factor,
                        location.latitude if location else None,
                        location.longitude if location else None,
                        location.altitude_m if location else None,
                    )
                )
    if any(record.readings for record in records):
        with cur.copy(sql.SQL("COPY stage_reading FROM STDIN (FORMAT BINARY)")) as copy:
            copy.set_types(_READING_TYPES)
            for record in records:
                if record.device_id is None:
                    continue
                seen: set[str] = set()
                for reading in record.readings:
                    if reading.quantity in seen:  # one value per quantity and time: the first wins
                        continue
                    seen.add(reading.quantity)
                    copy.write_row(
                        (
                            record.uplink.received_at,
                            record.uplink.uplink_key,
                            record.device_id,
                            reading.quantity,
                            reading.value,
                            int(reading.quality),
                        )
                    )


def latest_received_at(conn: psycopg.Connection[Any], source_name: str) -> datetime | None:
    """When the newest stored uplink of a source was received: where a backfill starts."""
    row = conn.execute("SELECT max(received_at) FROM uplink WHERE source = %s", (source_name,)).fetchone()
    return row[0] if row else None
