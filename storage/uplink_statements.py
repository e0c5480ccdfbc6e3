"""The SQL of the ingest write path: staging tables, the two merge statements, events.

Kept apart from `storage.uplinks`, which feeds them, because each statement is long
and read on its own: why the merge is split in two is told beside `INSERT_SQL`.
"""

STAGING_DDL = """
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


# Two statements per batch. The first inserts the rows that only ever grow (uplink,
# reception, reading); `ON CONFLICT DO NOTHING ... RETURNING` on `uplink` decides
# which frames are new, and their keys go to `stage_new_uplink`. The second moves the
# per-device and per-gateway summaries forward from the new frames alone. Those rows
# are shared by every batch of the fleet, so whoever updates them holds their locks
# until COMMIT: kept to a short last statement, two writers (or two bridges) wait
# for each other only that long, not for the other's whole batch.
# Within a statement every CTE sees the same snapshot, so the upserts read only
# staging data, never each other's writes.
INSERT_SQL = """
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

# `@ACTIVITY_BIN_OF_RECEIVED_AT@` and `@DEVICE_RESOLUTION_S@` are filled in by `storage.uplinks`,
# which owns the gateway bins and resolutions.
SUMMARY_SQL_TEMPLATE = """
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

JOIN_SQL = """
INSERT INTO device_activity (dev_eui, municipality_id, source, network_device_id, first_seen_at,
                             last_seen_at, last_join_at)
VALUES (%(dev_eui)s, %(municipality_id)s, %(source)s, %(network_device_id)s, %(at)s, %(at)s, %(at)s)
ON CONFLICT (municipality_id, dev_eui) DO UPDATE SET
    last_join_at = greatest(device_activity.last_join_at, excluded.last_join_at),
    last_seen_at = greatest(device_activity.last_seen_at, excluded.last_seen_at)
"""

STATUS_SQL = """
UPDATE device_activity SET network_battery_percent = %(battery)s, network_margin_db = %(margin)s
WHERE municipality_id = %(municipality_id)s AND dev_eui = %(dev_eui)s
"""

# A source speaks for gateways its own municipality runs, or that nobody claimed yet: a
# status about another town's gateway (its online flag, uptime, heartbeats) is dropped.
GATEWAY_STATUS_SQL = """
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

HEARTBEAT_SQL = """
INSERT INTO gateway_heartbeat (time, gateway_id, online, rx_packets, rx_packets_ok, tx_packets)
SELECT %(at)s::timestamptz, %(gateway_id)s::text, %(online)s::bool, %(rx_packets)s::int8,
       %(rx_packets_ok)s::int8, %(tx_packets)s::int8
WHERE EXISTS (SELECT 1 FROM gateway g WHERE g.gateway_id = %(gateway_id)s::text
              AND (g.municipality_id IS NULL OR g.municipality_id = %(municipality_id)s))
ON CONFLICT DO NOTHING
"""

REJECTED_SQL = """
INSERT INTO rejected_message (source, topic, reason, payload) VALUES (%s, %s, %s, %s)
"""
