"""The ingest write path: one batch of uplinks into PostgreSQL in one transaction.

Why it looks like this:
- Rows go in by binary COPY into per-connection staging tables, then two
  statements of data-modifying CTEs move them into the real tables. COPY is
  an order of magnitude cheaper per row than INSERT, and the CTEs let
  `ON CONFLICT DO NOTHING ... RETURNING` on `uplink` decide which frames are new,
  so receptions and readings of a redelivered frame are never written twice
  and `device_state` only moves forward. The summaries every batch shares
  (device state and activity, gateway rollups) come last, so their row locks are
  held briefly (see `_INSERT_SQL`).
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

from domain.errors import PlatformError, StorageUnavailable
from domain.reading import Reading
from domain.uplink import DeviceStatus, GatewayStatus, Join, JsonObject, Uplink
from storage.timescale import bucket_expression, bucket_start


class TransientWriteError(StorageUnavailable):
    """A write that failed for a reason that retrying can fix (deadlock, lost connection)."""


class UnstorableBatch(PlatformError):
    """A batch the database refuses for its content (a value out of range, bad text).

    Retrying cannot help; the caller finds the culprit by writing the messages one at a
    time and keeps the one that still fails as a rejected message, with this reason.
    """


class DecodeStatus:
    """Values of `uplink.decode_status`; plain strings so SQL filters read naturally."""

    DECODED = "decoded"
    FAILED = "failed"
    UNCLAIMED = "unclaimed"  # no registered device has this DevEUI (yet)
    NO_DECODER = "no_decoder"  # registered, but nothing knows its payload format


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


_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS stage_uplink (
    received_at timestamptz, uplink_key text, municipality_id int4, source text, network_server text,
    dev_eui text, device_id int4, network_device_id text, application_id text, f_cnt int8, f_port int2,
    payload bytea, network_decoded text, decoded text, decode_status text, decoder_source text,
    codec_id text, decode_error text, confirmed bool, simulated bool, spreading_factor int2,
    bandwidth_hz int4, frequency_hz int8, data_rate int2, airtime_s float8, gateway_count int2,
    best_gateway_id text, best_rssi_dbm float8, best_snr_db float8, claimed_received_at timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_reception (
    received_at timestamptz, uplink_key text, gateway_id text, antenna int2, dev_eui text,
    municipality_id int4, rssi_dbm float8, snr_db float8, channel int4, spreading_factor int2,
    gw_latitude float8, gw_longitude float8, gw_altitude_m float8
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_reading (
    received_at timestamptz, uplink_key text, device_id int4, quantity text, value float8, quality int2
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_new_uplink (
    received_at timestamptz, uplink_key text
) ON COMMIT DELETE ROWS;
"""

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
"""Bins are aligned as the readings' buckets are (`storage.timescale.bucket_expression`)."""
GATEWAY_DEVICE_RESOLUTION = timedelta(hours=1)
"""How far `gateway_device.heard_at` may lag behind the last reception of the pair."""

# Two statements per batch. The first inserts the rows that only ever grow (uplink,
# reception, reading); `ON CONFLICT DO NOTHING ... RETURNING` on `uplink` decides
# which frames are new, and their keys go to `stage_new_uplink`. The second moves the
# per-device and per-gateway summaries forward from the new frames alone. Those rows
# are shared by every batch of the fleet, so whoever updates them holds their locks
# until COMMIT: kept to a short last statement, two writers (or two bridges) wait
# for each other only that long, not for the other's whole batch.
# Within a statement every CTE sees the same snapshot, so the upserts read only
# staging data, never each other's writes.
_INSERT_SQL = """
WITH new_uplink AS (
    INSERT INTO uplink (
        received_at, uplink_key, municipality_id, source, network_server, dev_eui, device_id,
        network_device_id, application_id, f_cnt, f_port, payload, network_decoded, decoded,
        decode_status, decoder_source, codec_id, decode_error, confirmed, simulated,
        spreading_factor, bandwidth_hz, frequency_hz, data_rate, airtime_s, gateway_count,
        best_gateway_id, best_rssi_dbm, best_snr_db, claimed_received_at)
    SELECT received_at, uplink_key, municipality_id, source, network_server, dev_eui, device_id,
        network_device_id, application_id, f_cnt, f_port, payload, network_decoded::jsonb, decoded::jsonb,
        decode_status, decoder_source, codec_id, decode_error, confirmed, simulated,
        spreading_factor, bandwidth_hz, frequency_hz, data_rate, airtime_s, gateway_count,
        best_gateway_id, best_rssi_dbm, best_snr_db, claimed_received_at
    FROM stage_uplink s
    -- A refused time was replaced by the bridge's, which differs on each redelivery:
    -- such a frame is new only if its town has no refused frame of its key stored yet.
    WHERE s.claimed_received_at IS NULL
       OR NOT EXISTS (SELECT 1 FROM uplink u
                      WHERE u.uplink_key = s.uplink_key AND u.claimed_received_at IS NOT NULL
                        AND u.municipality_id = s.municipality_id)
    ON CONFLICT DO NOTHING
    RETURNING received_at, uplink_key, source
),
new_reception AS (
    INSERT INTO reception (received_at, uplink_key, gateway_id, antenna, dev_eui, municipality_id,
                           rssi_dbm, snr_db, channel, spreading_factor)
    SELECT r.received_at, r.uplink_key, r.gateway_id, r.antenna, r.dev_eui, r.municipality_id,
           r.rssi_dbm, r.snr_db, r.channel, r.spreading_factor
    FROM stage_reception r JOIN new_uplink n USING (received_at, uplink_key)
    ON CONFLICT DO NOTHING
    RETURNING 1
),
new_reading AS (
    SELECT r.received_at AS time, r.device_id, r.quantity, r.value, r.quality
    FROM stage_reading r JOIN new_uplink n USING (received_at, uplink_key)
),
inserted_reading AS (
    INSERT INTO reading (time, device_id, quantity, value, quality)
    SELECT time, device_id, quantity, value, quality FROM new_reading
    ON CONFLICT DO NOTHING
    RETURNING 1
),
kept AS (
    INSERT INTO stage_new_uplink (received_at, uplink_key)
    SELECT received_at, uplink_key FROM new_uplink
    RETURNING 1
)
SELECT (SELECT coalesce(jsonb_object_agg(source, n), '{}'::jsonb)
        FROM (SELECT source, count(*) AS n FROM new_uplink GROUP BY source) AS per_source),
       (SELECT count(*) FROM inserted_reading),
       (SELECT count(*) FROM new_reception), (SELECT count(*) FROM kept)
"""

_SUMMARY_SQL = """
WITH new_reading AS (
    SELECT r.received_at AS time, r.device_id, r.quantity, r.value, r.quality
    FROM stage_reading r JOIN stage_new_uplink n USING (received_at, uplink_key)
),
latest_state AS (
    INSERT INTO device_state (device_id, quantity, time, value, quality)
    SELECT DISTINCT ON (device_id, quantity) device_id, quantity, time, value, quality
    FROM new_reading
    ORDER BY device_id, quantity, time DESC
    ON CONFLICT (device_id, quantity) DO UPDATE
        SET time = excluded.time, value = excluded.value, quality = excluded.quality
        WHERE device_state.time <= excluded.time
    RETURNING 1
),
new_activity AS (
    SELECT u.*, count(*) OVER w AS frames, min(u.received_at) OVER w AS first_at,
           row_number() OVER (PARTITION BY u.municipality_id, u.dev_eui
                              ORDER BY u.received_at DESC) AS recency
    FROM stage_uplink u JOIN stage_new_uplink n USING (received_at, uplink_key)
    WHERE u.dev_eui IS NOT NULL
    WINDOW w AS (PARTITION BY u.municipality_id, u.dev_eui)
),
activity AS (
    INSERT INTO device_activity (dev_eui, municipality_id, source, network_device_id, first_seen_at,
        last_seen_at, uplink_count, last_f_cnt, last_f_port, last_payload, last_gateway_id,
        last_rssi_dbm, last_snr_db, last_spreading_factor)
    SELECT dev_eui, municipality_id, source, network_device_id, first_at, received_at, frames, f_cnt,
           f_port, payload, best_gateway_id, best_rssi_dbm, best_snr_db, spreading_factor
    FROM new_activity WHERE recency = 1
    ORDER BY municipality_id, dev_eui
    ON CONFLICT (municipality_id, dev_eui) DO UPDATE SET
        uplink_count = device_activity.uplink_count + excluded.uplink_count,
        first_seen_at = least(device_activity.first_seen_at, excluded.first_seen_at),
        source = excluded.source,
        network_device_id = coalesce(excluded.network_device_id, device_activity.network_device_id),
        last_seen_at = greatest(device_activity.last_seen_at, excluded.last_seen_at),
        last_f_cnt = CASE WHEN excluded.last_seen_at >= device_activity.last_seen_at
                          THEN excluded.last_f_cnt ELSE device_activity.last_f_cnt END,
        last_f_port = CASE WHEN excluded.last_seen_at >= device_activity.last_seen_at
                           THEN excluded.last_f_port ELSE device_activity.last_f_port END,
        last_payload = CASE WHEN excluded.last_seen_at >= device_activity.last_seen_at
                            THEN excluded.last_payload ELSE device_activity.last_payload END,
        last_gateway_id = CASE WHEN excluded.last_seen_at >= device_activity.last_seen_at
                               THEN excluded.last_gateway_id ELSE device_activity.last_gateway_id END,
        last_rssi_dbm = CASE WHEN excluded.last_seen_at >= device_activity.last_seen_at
                             THEN excluded.last_rssi_dbm ELSE device_activity.last_rssi_dbm END,
        last_snr_db = CASE WHEN excluded.last_seen_at >= device_activity.last_seen_at
                           THEN excluded.last_snr_db ELSE device_activity.last_snr_db END,
        last_spreading_factor = CASE WHEN excluded.last_seen_at >= device_activity.last_seen_at
                                     THEN excluded.last_spreading_factor
                                     ELSE device_activity.last_spreading_factor END
    RETURNING 1
),
heard AS (
    SELECT r.gateway_id, min(r.municipality_id) AS municipality_id,
           min(r.received_at) AS first_at, max(r.received_at) AS last_at,
           max(r.gw_latitude) AS latitude, max(r.gw_longitude) AS longitude,
           max(r.gw_altitude_m) AS altitude_m
    FROM stage_reception r JOIN stage_new_uplink n USING (received_at, uplink_key)
    GROUP BY r.gateway_id
),
heard_for AS (
    INSERT INTO gateway_heard (gateway_id, municipality_id, last_heard_at)
    SELECT r.gateway_id, r.municipality_id, max(r.received_at)
    FROM stage_reception r JOIN stage_new_uplink n USING (received_at, uplink_key)
    GROUP BY r.gateway_id, r.municipality_id
    ORDER BY 1, 2
    ON CONFLICT (gateway_id, municipality_id) DO UPDATE
        SET last_heard_at = greatest(gateway_heard.last_heard_at, excluded.last_heard_at)
    RETURNING 1
),
activity_bins AS (
    INSERT INTO gateway_activity (gateway_id, bin_start, receptions)
    SELECT r.gateway_id, @ACTIVITY_BIN_OF_RECEIVED_AT@, count(*)
    FROM stage_reception r JOIN stage_new_uplink n USING (received_at, uplink_key)
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (gateway_id, bin_start) DO UPDATE
        SET receptions = gateway_activity.receptions + excluded.receptions
    RETURNING 1
),
device_links AS (
    -- Only pairs whose stored time is an hour behind are written: the probe is a plain
    -- index read, where ON CONFLICT ... WHERE would lock (and so write) every pair.
    -- Only claimed frames count: the pairs are read as "the gateways that hear this
    -- registered device", which an unclaimed frame of another town's source must not say.
    INSERT INTO gateway_device (gateway_id, dev_eui, heard_at)
    SELECT r.gateway_id, r.dev_eui, max(r.received_at)
    FROM stage_reception r JOIN stage_new_uplink n USING (received_at, uplink_key)
    JOIN stage_uplink u USING (received_at, uplink_key)
    WHERE r.dev_eui IS NOT NULL AND u.device_id IS NOT NULL
    GROUP BY r.gateway_id, r.dev_eui
    HAVING NOT EXISTS (
        SELECT 1 FROM gateway_device g
        WHERE g.gateway_id = r.gateway_id AND g.dev_eui = r.dev_eui
          AND g.heard_at > max(r.received_at) - interval '@DEVICE_RESOLUTION_S@ seconds')
    ORDER BY 1, 2
    ON CONFLICT (gateway_id, dev_eui) DO UPDATE
        SET heard_at = greatest(gateway_device.heard_at, excluded.heard_at)
    RETURNING 1
),
gateway_seen AS (
    INSERT INTO gateway (gateway_id, municipality_id, latitude, longitude, altitude_m,
                         first_seen_at, last_seen_at, last_uplink_at)
    SELECT gateway_id, municipality_id, latitude, longitude, altitude_m, first_at, last_at, last_at
    FROM heard ORDER BY gateway_id
    ON CONFLICT (gateway_id) DO UPDATE SET
        municipality_id = coalesce(gateway.municipality_id, excluded.municipality_id),
        latitude = coalesce(gateway.latitude, excluded.latitude),
        longitude = coalesce(gateway.longitude, excluded.longitude),
        altitude_m = coalesce(gateway.altitude_m, excluded.altitude_m),
        first_seen_at = least(gateway.first_seen_at, excluded.first_seen_at),
        last_seen_at = greatest(gateway.last_seen_at, excluded.last_seen_at),
        last_uplink_at = greatest(gateway.last_uplink_at, excluded.last_uplink_at)
    RETURNING 1
)
SELECT (SELECT count(*) FROM latest_state), (SELECT count(*) FROM activity),
       (SELECT count(*) FROM heard_for), (SELECT count(*) FROM activity_bins),
       (SELECT count(*) FROM device_links), (SELECT count(*) FROM gateway_seen)
"""

_SUMMARY_SQL = _SUMMARY_SQL.replace(
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


_JOIN_SQL = """
INSERT INTO device_activity (dev_eui, municipality_id, source, network_device_id, first_seen_at,
                             last_seen_at, last_join_at)
VALUES (%(dev_eui)s, %(municipality_id)s, %(source)s, %(network_device_id)s, %(at)s, %(at)s, %(at)s)
ON CONFLICT (municipality_id, dev_eui) DO UPDATE SET
    last_join_at = greatest(device_activity.last_join_at, excluded.last_join_at),
    last_seen_at = greatest(device_activity.last_seen_at, excluded.last_seen_at)
"""

_STATUS_SQL = """
UPDATE device_activity SET network_battery_percent = %(battery)s, network_margin_db = %(margin)s
WHERE municipality_id = %(municipality_id)s AND dev_eui = %(dev_eui)s
"""

# A source speaks for gateways its own municipality runs, or that nobody claimed yet: a
# status about another town's gateway (its online flag, uptime, heartbeats) is dropped.
_GATEWAY_STATUS_SQL = """
INSERT INTO gateway (gateway_id, latitude, longitude, altitude_m, first_seen_at, last_seen_at,
                     last_status_at, online, status_changed_at)
VALUES (%(gateway_id)s, %(latitude)s, %(longitude)s, %(altitude_m)s, %(at)s, %(at)s, %(at)s,
        %(online)s, %(at)s)
ON CONFLICT (gateway_id) DO UPDATE SET
    latitude = coalesce(gateway.latitude, excluded.latitude),
    longitude = coalesce(gateway.longitude, excluded.longitude),
    altitude_m = coalesce(gateway.altitude_m, excluded.altitude_m),
    first_seen_at = least(gateway.first_seen_at, excluded.first_seen_at),
    last_seen_at = greatest(gateway.last_seen_at, CASE WHEN excluded.online THEN excluded.last_seen_at END),
    last_status_at = greatest(gateway.last_status_at, excluded.last_status_at),
    status_changed_at = CASE WHEN gateway.online IS DISTINCT FROM excluded.online
                             THEN excluded.status_changed_at ELSE gateway.status_changed_at END,
    online = CASE WHEN gateway.last_status_at IS NULL OR excluded.last_status_at >= gateway.last_status_at
                  THEN excluded.online ELSE gateway.online END
WHERE gateway.municipality_id IS NULL OR gateway.municipality_id = %(municipality_id)s
"""

_HEARTBEAT_SQL = """
INSERT INTO gateway_heartbeat (time, gateway_id, online, rx_packets, rx_packets_ok, tx_packets)
SELECT %(at)s::timestamptz, %(gateway_id)s::text, %(online)s::bool, %(rx_packets)s::int8,
       %(rx_packets_ok)s::int8, %(tx_packets)s::int8
WHERE EXISTS (SELECT 1 FROM gateway g WHERE g.gateway_id = %(gateway_id)s::text
              AND (g.municipality_id IS NULL OR g.municipality_id = %(municipality_id)s))
ON CONFLICT DO NOTHING
"""

_REJECTED_SQL = """
INSERT INTO rejected_message (source, topic, reason, payload) VALUES (%s, %s, %s, %s)
"""


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
        conn.execute(_STAGING_DDL)


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
            cur.execute(_INSERT_SQL)
            counts = cur.fetchone()
            assert counts is not None
            new_by_source, readings_new, new_frames = dict(counts[0]), int(counts[1]), int(counts[3])
            if new_frames:
                cur.execute(_SUMMARY_SQL)
        for source_name, municipality_id, join in batch.joins:
            if join.dev_eui is None:
                continue
            cur.execute(
                _JOIN_SQL,
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
                _STATUS_SQL,
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
            cur.execute(_GATEWAY_STATUS_SQL, params)
            cur.execute(_HEARTBEAT_SQL, params)
        if batch.rejected:
            cur.executemany(_REJECTED_SQL, [(r.source, r.topic, r.reason, r.payload) for r in batch.rejected])
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
