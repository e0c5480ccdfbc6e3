"""Uplinks of devices with a vendor JS codec, decoded a batch at a time on the live path.

The bridge decodes each batch's uplinks in one registry call, so a JS codec runs
once per batch; the records must be those that decoding each uplink alone gives.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from sqlalchemy.orm import Session

from decoders import DEFAULT_PREFERENCE, CodecRegistry, DecoderSource, SandboxLimits
from domain.decoding import DecodeStatus
from ingest.config import SourceConfig
from ingest.metrics import IngestCounters
from ingest.pipeline import DeviceCache, Pipeline, ReceivedMessage
from storage.codec_scripts import ScriptFields, create_script
from storage.database import create_database_engine
from tests.conftest import Broker
from tests.ingest.harness import publish, scalar, start_bridge, wait_for_uplinks
from tests.ingest.messages import Traffic

# The test traffic's TTS payload is [n % 256, 0x10, 0x20]; a first byte of 0xff never returns.
SCRIPT = """
function decodeUplink(input) {
  const b = input.bytes;
  if (b[0] === 0xff) { while (true) {} }
  if (b[0] % 25 === 7) { return { errors: ["counter " + b[0] + " is unlucky"] }; }
  const warnings = b[0] % 10 === 3 ? ["odd counter"] : [];
  return { data: { counter: b[0], temperature: ((b[1] << 8) | b[2]) / 200 }, warnings: warnings };
}
"""


def register(database_url: str, traffic: Traffic, codec_id: str, sources: dict[int, str | None]) -> None:
    """The script under `codec_id`, and TTS devices using it with the given decoder sources."""
    engine = create_database_engine(database_url)
    with Session(engine) as session:
        create_script(
            session, codec_id, ScriptFields(style="decodeUplink", script=SCRIPT), owner_municipality_id=None
        )
        session.commit()
    engine.dispose()
    with psycopg.connect(database_url) as conn:
        municipality = conn.execute(
            "INSERT INTO municipality (slug, name) VALUES ('testtown', 'Testtown') "
            "ON CONFLICT (slug) DO UPDATE SET slug = excluded.slug RETURNING id"
        ).fetchone()
        assert municipality is not None
        for device, decoder_source in sources.items():
            conn.execute(
                "INSERT INTO device (municipality_id, dev_eui, name, codec_id, decoder_source) "
                "VALUES (%s, %s, %s, %s, %s)",
                (municipality[0], traffic.dev_eui(device), f"Sensor {device}", codec_id, decoder_source),
            )


def test_a_batch_decodes_javascript_devices_as_single_calls_would(fresh_db_url: str) -> None:
    traffic = Traffic()
    codec_id = f"test-{traffic.tag}/thermo"
    # device 1: default order (JS, then the network's object); 2: JS only; 3: network only; 4: unknown
    register(fresh_db_url, traffic, codec_id, {1: None, 2: "javascript", 3: "network"})
    devices = DeviceCache()
    with psycopg.connect(fresh_db_url) as conn:
        devices.refresh(conn)
    source = SourceConfig(name=traffic.source_names[0], kind="tts", municipality="testtown", host="localhost")
    registry = CodecRegistry(sandbox_limits=SandboxLimits(call_time_limit_s=0.3))
    registry.register_javascript(codec_id, SCRIPT)
    pipeline = Pipeline(devices, registry, {source.name: 1}, IngestCounters())
    # the runaway frames (n % 256 == 255) fall on devices 4, 1, 2 and 3
    messages = [traffic.tts_uplink(n, device=1 + (n // 256 + n) % 4) for n in range(1200)]
    preferences = {"javascript": (DecoderSource.JAVASCRIPT,), "network": (DecoderSource.NETWORK,)}
    try:
        builder = pipeline.new_batch()
        for topic, body in messages:
            builder.add_message(ReceivedMessage(source, topic, body))
        batch = builder.finish()
        assert [record.uplink.f_cnt for record in batch.uplinks] == list(range(1200))
        for record in batch.uplinks:
            uplink, profile = record.uplink, devices.for_source(record.uplink.dev_eui, 1).profile
            if profile is None:
                assert (record.decode_status, record.device_id, record.decoded) == ("unclaimed", None, None)
                continue
            single = registry.decode(
                codec_id=codec_id,
                f_port=uplink.f_port,
                payload=uplink.payload,
                network_decoded=uplink.decoded_by_network,
                device_metadata=profile.metadata,
                preference=preferences.get(profile.decoder_source or "", DEFAULT_PREFERENCE),
            )
            assert record.device_id == profile.device_id
            assert (record.decoded, record.decode_error, list(record.readings)) == (
                single.decoded,
                single.error,
                list(single.readings),
            )
            assert record.decoder_source == (single.source.value if single.source else None)
            assert record.decode_status == (DecodeStatus.DECODED if single.ok else DecodeStatus.FAILED)
        by_count = {record.uplink.f_cnt: record for record in batch.uplinks}
        assert by_count[511].decoder_source == "network"
        assert by_count[767].decode_error == "javascript: script exceeded its time limit of 300 ms"
        assert by_count[1023].decoder_source == "network"
        assert by_count[4].decoded == {"counter": 4, "temperature": 20.64}
    finally:
        registry.close()


# Tells each call the first byte of the payload it saw before, kept in a global.
TELLTALE = """
var lastFirstByte = null;
function decodeUplink(input) {
  var previous = lastFirstByte;
  lastFirstByte = input.bytes[0];
  return { data: { previous: previous } };
}
"""


def test_a_batch_of_two_towns_devices_shows_neither_town_the_others_payloads(fresh_db_url: str) -> None:
    """One shared script, one batch with the uplinks of a device in each of two towns,
    interleaved: a global the script sets for one town's uplink is never seen in the other's.

    One source carries both towns' devices the only way it may: it is northtown's, and
    southtown granted northtown's sources ingest."""
    traffic = Traffic()
    codec_id = f"test-{traffic.tag}/telltale"
    towns: list[int] = []
    with psycopg.connect(fresh_db_url) as conn:
        for device, town in ((1, "northtown"), (2, "southtown")):
            municipality = conn.execute(
                "INSERT INTO municipality (slug, name) VALUES (%s, %s) "
                "ON CONFLICT (slug) DO UPDATE SET slug = excluded.slug RETURNING id",
                (f"{town}-{traffic.tag}", town),
            ).fetchone()
            assert municipality is not None
            conn.execute(
                "INSERT INTO device (municipality_id, dev_eui, name, codec_id, decoder_source) "
                "VALUES (%s, %s, %s, %s, 'javascript')",
                (municipality[0], traffic.dev_eui(device), f"Sensor {device}", codec_id),
            )
            towns.append(municipality[0])
        north, south = towns
        conn.execute(
            "INSERT INTO ingest_grant (owner_municipality_id, source_municipality_id, created_by) "
            "VALUES (%s, %s, 'test')",
            (south, north),
        )
    devices = DeviceCache()
    with psycopg.connect(fresh_db_url) as conn:
        devices.refresh(conn)
    source = SourceConfig(
        name=traffic.source_names[0], kind="tts", municipality=f"northtown-{traffic.tag}", host="localhost"
    )
    registry = CodecRegistry()
    registry.register_javascript(codec_id, TELLTALE)
    pipeline = Pipeline(devices, registry, {source.name: north}, IngestCounters())
    # payload n starts with n % 256: device 1 sends the even counters, device 2 the odd ones
    messages = [traffic.tts_uplink(n, device=1 + n % 2) for n in range(40)]
    try:
        for _ in range(2):  # and again: a second batch sees the first batch's state of its own town only
            builder = pipeline.new_batch()
            for topic, body in messages:
                builder.add_message(ReceivedMessage(source, topic, body))
            batch = builder.finish()
            seen = [
                (record.uplink.f_cnt % 2, record.decoded["previous"])
                for record in batch.uplinks
                if record.decoded is not None
            ]
            assert len(seen) == 40
            assert all(previous is None or previous % 2 == parity for parity, previous in seen), seen
    finally:
        registry.close()


def test_the_bridge_decodes_with_a_registered_javascript_codec(
    broker: Broker, fresh_db_url: str, tmp_path: Path
) -> None:
    traffic = Traffic()
    codec_id = f"test-{uuid.uuid4().hex[:8]}/thermo"
    register(fresh_db_url, traffic, codec_id, {1: None, 2: "javascript"})
    bridge = start_bridge(
        fresh_db_url, traffic.sources_toml(broker.host, broker.port), tmp_path, instance="js", batch_size=500
    )
    try:
        publish(broker.host, broker.port, [traffic.tts_uplink(n, device=1 + n % 2) for n in range(600)])
        assert wait_for_uplinks(fresh_db_url, traffic.source_names, 600) == 600
    finally:
        bridge.stop()
        bridge.codecs.close()

    def count(condition: str) -> int:
        return int(scalar(fresh_db_url, f"SELECT count(*) FROM uplink WHERE {condition}"))

    # even n: device 1 (the codec, then the network's object); odd n: device 2 (the codec only)
    unlucky = [n for n in range(600) if n % 256 % 25 == 7]
    runaway = [n for n in range(600) if n % 256 == 255]
    assert runaway == [255, 511]
    decoded_by_script = 600 - len(unlucky) - len(runaway)
    assert count("decoder_source = 'javascript' AND decode_status = 'decoded'") == decoded_by_script
    assert count("decoder_source = 'network' AND decode_status = 'decoded'") == len(unlucky) // 2
    assert count("decode_error LIKE 'javascript: codec reported: counter %% is unlucky'") == len(unlucky) // 2
    assert count("decode_error = 'javascript: script exceeded its time limit of 1000 ms'") == len(runaway)
    assert scalar(fresh_db_url, "SELECT decoded FROM uplink WHERE f_cnt = 4") == {
        "counter": 4,
        "temperature": 20.64,
    }
    assert scalar(fresh_db_url, "SELECT count(*) FROM reading WHERE quantity = 'temperature'") == 600 - 14
