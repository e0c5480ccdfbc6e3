"""Registering a device later decodes its stored history; redecoding is idempotent."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from decoders import CodecRegistry, DecoderSource, SandboxLimits
from domain.decoding import DecodeStatus
from domain.ids import DevEui, GatewayId
from domain.uplink import NetworkServer, Reception, Uplink
from services.redecoding import redecode_codec, redecode_device
from storage import redecode
from storage.database import create_database_engine
from storage.device_registry import ensure_municipality
from storage.uplinks import IngestBatch, UplinkRecord, prepare_connection, write_batch

EUI = DevEui("24e124136b316361")
T0 = datetime(2026, 6, 1, tzinfo=UTC)
CODEC = "milesight-iot/em500-udl-codec"


def em500_udl_payload(distance_mm: int, battery: int = 97) -> bytes:
    """Milesight channel format: battery (01 75), distance in mm (03 82, little endian)."""
    return bytes([0x01, 0x75, battery, 0x03, 0x82]) + distance_mm.to_bytes(2, "little")


def store_unclaimed(conn: psycopg.Connection[Any], municipality_id: int, count: int) -> None:
    records = [
        UplinkRecord(
            uplink=Uplink(
                network_server=NetworkServer.CHIRPSTACK_V4,
                uplink_key=f"redecode-{n}",
                received_at=T0 + timedelta(hours=n),
                dev_eui=EUI,
                payload=em500_udl_payload(1000 + n),
                f_port=85,
                f_cnt=n,
                receptions=(Reception(GatewayId("aa555a0000000009"), -90.0, 7.0),),
            ),
            source="s",
            municipality_id=municipality_id,
            device_id=None,
            decode_status=DecodeStatus.UNCLAIMED,
        )
        for n in range(count)
    ]
    write_batch(conn, IngestBatch(uplinks=records))


def rows(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()


def test_a_late_registration_decodes_the_stored_history(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        prepare_connection(conn)
        municipality = ensure_municipality(conn, "paderborn")
        store_unclaimed(conn, municipality, 50)
        device_id = conn.execute(
            "INSERT INTO device (municipality_id, dev_eui, name, codec_id, use_case) "
            "VALUES (%s, %s, 'Pegel', %s, 'environment') RETURNING id",
            (municipality, EUI, CODEC),
        ).fetchone()[0]  # type: ignore[index]
        conn.commit()
    engine = create_database_engine(fresh_db_url)
    codecs = CodecRegistry()
    seen: list[int] = []
    first = redecode_device(engine, device_id, codecs=codecs, progress=seen.append)
    with psycopg.connect(fresh_db_url) as conn:
        versions = rows(conn, "SELECT uplink_key, xmin::text FROM uplink ORDER BY uplink_key")
    second = redecode_device(engine, device_id, codecs=codecs)
    engine.dispose()
    assert first.frames == second.frames == 50
    assert first.failed == 0
    assert sum(seen) == 50
    assert first.readings == second.readings
    with psycopg.connect(fresh_db_url) as conn:
        assert rows(conn, "SELECT DISTINCT decode_status, device_id FROM uplink") == [("decoded", device_id)]
        # the second run found the same results and left the frames' rows as they were
        assert rows(conn, "SELECT uplink_key, xmin::text FROM uplink ORDER BY uplink_key") == versions
        assert rows(conn, "SELECT count(*) FROM reading WHERE quantity = 'distance'") == [(50,)]
        assert rows(conn, "SELECT count(*) FROM reading") == [(first.readings,)]
        state = rows(conn, "SELECT value, time FROM device_state WHERE quantity = 'distance'")
        assert state == [(1049.0, T0 + timedelta(hours=49))]


def test_the_redecode_command_reports_progress_and_results(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        prepare_connection(conn)
        municipality = ensure_municipality(conn, "lippstadt")
        store_unclaimed(conn, municipality, 20)
        conn.execute(
            "INSERT INTO device (municipality_id, dev_eui, name, codec_id) VALUES (%s, %s, 'x', %s)",
            (municipality, EUI, CODEC),
        )
        conn.commit()
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "redecode", "--device", EUI.upper(), "--quiet"],
        env={"LORAKOM_DB_URL": fresh_db_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "1 device(s), 20 frames: 20 decoded, 0 failed" in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "cli.main", "redecode", "--device", "0011223344556677"],
        env={"LORAKOM_DB_URL": fresh_db_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert "no registered device" in missing.stderr


# Battery in byte 0, distance in mm in bytes 3-4 (little endian) of the Milesight frame above;
# a battery byte of 0xff sends the script into an endless loop.
JS_CODEC = "test/js-distance"
JS_SCRIPT = """
function decodeUplink(input) {
  const b = input.bytes;
  if (b[2] === 0xff) { while (true) {} }
  if (b.length < 7) { return { errors: ["short frame"] }; }
  return { data: { battery: b[2], distance: b[5] | (b[6] << 8) } };
}
"""


def test_a_javascript_codec_decodes_history_in_batches_like_single_calls(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redecode, "FETCH_ROWS", 64)  # many chunks, each a batch of its own
    with psycopg.connect(fresh_db_url) as conn:
        prepare_connection(conn)
        municipality = ensure_municipality(conn, "bad-driburg")
        store_unclaimed(conn, municipality, 700)  # more than one sandbox batch
        conn.execute(
            "UPDATE uplink SET payload = %s WHERE uplink_key = 'redecode-300'",
            (em500_udl_payload(900, 0xFF),),
        )
        conn.execute("UPDATE uplink SET payload = '\\x0175'::bytea WHERE uplink_key = 'redecode-301'")
        device_id = conn.execute(
            "INSERT INTO device (municipality_id, dev_eui, name, codec_id, decoder_source) "
            "VALUES (%s, %s, 'Pegel', %s, 'javascript') RETURNING id",
            (municipality, EUI, JS_CODEC),
        ).fetchone()[0]  # type: ignore[index]
        conn.commit()
    registry = CodecRegistry(sandbox_limits=SandboxLimits(call_time_limit_s=0.3))
    registry.register_javascript(JS_CODEC, JS_SCRIPT)
    engine = create_database_engine(fresh_db_url)
    try:
        report = redecode_device(engine, device_id, codecs=registry)
        with psycopg.connect(fresh_db_url) as conn:
            stored = rows(
                conn,
                "SELECT payload, decode_status, decoded, decoder_source, decode_error FROM uplink "
                "ORDER BY received_at",
            )
            readings = rows(conn, "SELECT count(*) FROM reading WHERE quantity = 'distance'")
            state = rows(conn, "SELECT quantity, time, value FROM device_state ORDER BY quantity")
            latest = rows(
                conn,
                "SELECT DISTINCT ON (quantity) quantity, time, value FROM reading "
                "ORDER BY quantity, time DESC",
            )
        for payload, status, decoded, source, error in stored:
            single = registry.decode(
                codec_id=JS_CODEC,
                f_port=85,
                payload=bytes(payload),
                network_decoded=None,
                preference=(DecoderSource.JAVASCRIPT,),
            )
            assert (decoded, error) == (single.decoded, single.error)
            assert (status, source) == (("decoded", "javascript") if single.ok else ("failed", None))
    finally:
        engine.dispose()
        registry.close()
    assert (report.frames, report.decoded, report.failed) == (700, 698, 2)
    assert report.errors == {
        "javascript: script exceeded its time limit of 300 ms": 1,
        "javascript: codec reported: short frame": 1,
    }
    assert readings == [(698,)]
    assert state == latest
    assert {quantity for quantity, _, _ in state} >= {"battery", "distance"}


def test_redecoding_a_codec_commits_every_device_on_a_shared_session(fresh_db_url: str) -> None:
    other = DevEui("24e124136b316362")
    with psycopg.connect(fresh_db_url) as conn:
        prepare_connection(conn)
        municipality = ensure_municipality(conn, "paderborn")
        store_unclaimed(conn, municipality, 30)
        conn.execute("UPDATE uplink SET dev_eui = %s WHERE f_cnt %% 2 = 1", (other,))
        for eui in (EUI, other):
            conn.execute(
                "INSERT INTO device (municipality_id, dev_eui, name, codec_id) VALUES (%s, %s, 'x', %s)",
                (municipality, eui, CODEC),
            )
        conn.commit()
    engine = create_database_engine(fresh_db_url)
    try:
        # one worker: the second device is redecoded on the session of the first
        report = redecode_codec(engine, CODEC, codecs=CodecRegistry(), workers=1)
    finally:
        engine.dispose()
    assert (report.devices, report.frames, report.decoded) == (2, 30, 30)
    with psycopg.connect(fresh_db_url) as conn:
        assert rows(conn, "SELECT decode_status, count(*) FROM uplink GROUP BY 1") == [("decoded", 30)]
        assert rows(conn, "SELECT count(DISTINCT device_id) FROM device_state") == [(2,)]


def store_heard_by(conn: psycopg.Connection[Any], municipality_id: int, hours: range) -> None:
    """Unclaimed frames of EUI that a source of `municipality_id` heard, one an hour."""
    records = [
        UplinkRecord(
            uplink=Uplink(
                network_server=NetworkServer.CHIRPSTACK_V4,
                uplink_key=f"town-{municipality_id}-{n}",
                received_at=T0 + timedelta(hours=n),
                dev_eui=EUI,
                payload=em500_udl_payload(1000 + n),
                f_port=85,
                f_cnt=n,
            ),
            source=f"source-of-{municipality_id}",
            municipality_id=municipality_id,
            device_id=None,
            decode_status=DecodeStatus.UNCLAIMED,
        )
        for n in hours
    ]
    write_batch(conn, IngestBatch(uplinks=records))


def test_a_device_claims_frames_of_its_own_and_granted_towns_only(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        prepare_connection(conn)
        owner, granted, stranger = (
            ensure_municipality(conn, slug) for slug in ("owner", "granted", "stranger")
        )
        store_heard_by(conn, owner, range(0, 3))
        store_heard_by(conn, granted, range(3, 5))
        store_heard_by(conn, stranger, range(5, 9))
        conn.execute(
            "INSERT INTO ingest_grant (owner_municipality_id, source_municipality_id, created_by) "
            "VALUES (%s, %s, 'test')",
            (owner, granted),
        )
        device_id = conn.execute(
            "INSERT INTO device (municipality_id, dev_eui, name, codec_id) "
            "VALUES (%s, %s, 'Pegel', %s) RETURNING id",
            (owner, EUI, CODEC),
        ).fetchone()[0]  # type: ignore[index]
        conn.commit()
    engine = create_database_engine(fresh_db_url)
    try:
        assert redecode.count_frames(engine, dev_eui=EUI) == 5
        report = redecode_device(engine, device_id, codecs=CodecRegistry(), only_unclaimed=True)
        assert report.frames == 5
        # A full redecode (the admin's action) goes over the same frames and no others.
        assert redecode_device(engine, device_id, codecs=CodecRegistry()).frames == 5
    finally:
        engine.dispose()
    with psycopg.connect(fresh_db_url) as conn:
        by_town = rows(
            conn,
            "SELECT municipality_id, device_id IS NOT NULL, count(*) FROM uplink GROUP BY 1, 2 ORDER BY 1",
        )
        readings = rows(conn, "SELECT count(DISTINCT time) FROM reading")
    assert by_town == [(owner, True, 5), (stranger, False, 4)]
    assert readings == [(5,)]
