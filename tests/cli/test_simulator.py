"""The demo simulator: a reproducible fleet, vendor-exact payloads, real-looking envelopes, living values.

The envelopes are compared with captured TTS and ChirpStack messages and the payloads
with the vendors' own examples (tests/fixtures/simulator), because the ingest adapters
and decoders must meet in the demo what they will meet in the field.
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from chirpstack_api import gw, integration
from google.protobuf import json_format
from paho.mqtt.enums import CallbackAPIVersion

from cli.simulator import DEMO_SPEED, SIMULATED_USE_CASES, Simulator, demo_fleet, generate
from cli.simulator.behaviour import Battery, ParkingSpot, TreeSoil, WasteBin, Weather, local_time
from cli.simulator.encoders import (
    SUPPORTED_CODECS,
    ParticulateMatter,
    encode_am307,
    encode_dl_pm,
    encode_dl_smtp,
    encode_em310_udl,
    encode_em500_smtc,
    encode_em500_swl,
    encode_em500_udl,
    encode_ers_co2,
    encode_ldds75,
    encode_lse01,
    encode_nps405_heartbeat,
    encode_nps405_startup,
    encode_nps405_status,
    encode_tps110_heartbeat,
    encode_tps110_status,
    nwave_duration_code,
)
from cli.simulator.envelopes import ulid
from cli.simulator.radio import airtime_s
from domain.uplink import NetworkServer
from domain.use_case import UseCase
from tests.conftest import Broker

FIXTURES = Path(__file__).parent.parent / "fixtures" / "simulator"
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
TTS_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
CHIRPSTACK_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6,9}\+00:00")
T0 = datetime(2025, 7, 14, 4, 0, tzinfo=UTC)  # a Monday in July, before dawn


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def vector(codec_id: str, index: int) -> dict[str, Any]:
    vendor, codec = codec_id.split("/")
    example: dict[str, Any] = fixture(f"vector_{vendor}__{codec}.json")["examples"][index]
    return example


def value(expected: dict[str, Any], key: str) -> Any:
    """Decentlab examples wrap values as {displayName, unit, value}."""
    entry = expected[key]
    return entry["value"] if isinstance(entry, dict) else entry


# --- fleet -------------------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_fleet_and_another_seed_another() -> None:
    assert demo_fleet(seed=11) == demo_fleet(seed=11)
    assert demo_fleet(seed=11).devices != demo_fleet(seed=12).devices


def test_every_town_has_every_use_case_on_both_network_servers() -> None:
    fleet = demo_fleet(devices_per_town=24)
    assert [town.name for town in fleet.towns] == ["Paderborn", "Lippstadt", "Bad Driburg"]
    for town in fleet.towns:
        devices = [device for device in fleet.devices if device.municipality == town.slug]
        assert len(devices) == 24
        assert {device.use_case for device in devices} == set(SIMULATED_USE_CASES)
        assert {device.network_server for device in devices} == {
            NetworkServer.TTS,
            NetworkServer.CHIRPSTACK_V4,
        }
        assert 1 <= sum(not device.registered for device in devices) <= 4
        gateways = [gateway for gateway in fleet.gateways if gateway.municipality == town.slug]
        assert {gateway.network_server for gateway in gateways} == {
            NetworkServer.TTS,
            NetworkServer.CHIRPSTACK_V4,
        }


def test_devices_carry_what_the_platform_needs_to_register_them() -> None:
    fleet = demo_fleet()
    dev_euis = [device.dev_eui for device in fleet.devices]
    assert len(set(dev_euis)) == len(dev_euis)
    assert {device.codec_id for device in fleet.devices} == SUPPORTED_CODECS
    for device in fleet.devices:
        assert re.fullmatch(r"[0-9a-f]{16}", device.dev_eui)
        town = fleet.town(device.municipality)
        assert abs(device.latitude - town.latitude) < 0.03
        assert abs(device.longitude - town.longitude) < 0.04
        assert device.metadata["expected_interval_s"] > 0
        if device.use_case is UseCase.WASTE:
            assert device.metadata["bin_depth_mm"] > 0
            assert device.metadata["sensor_offset_mm"] > 0
        if device.use_case is UseCase.SOIL:
            assert {"tree_id", "species", "soil_type"} <= device.metadata.keys()
        if device.use_case is UseCase.PARKING:
            assert {"zone", "spot_id"} <= device.metadata.keys()
    registrations = fleet.registrations()
    assert len(registrations) == sum(device.registered for device in fleet.devices)
    assert json.loads(json.dumps(registrations)) == registrations
    assert set(registrations[0]) >= {"municipality", "dev_eui", "name", "codec_id", "use_case", "metadata"}


# --- encoders ----------------------------------------------------------------------------------------

VectorCase = tuple[str, int, Callable[[dict[str, Any]], bytes]]

VECTOR_CASES: list[VectorCase] = [
    (
        "nwave/nps405-codec",
        0,
        lambda e: encode_nps405_status(
            occupied=e["occupied"], previous_state_minutes=e["previous_state_duration"]
        ),
    ),
    (
        "nwave/nps405-codec",
        2,
        # bytes 3-5 of a heartbeat are not decoded by the public codec, so they are passed through
        lambda e: encode_nps405_heartbeat(
            occupied=e["occupied"],
            battery_mv=e["battery_voltage"] * 1000,
            temperature_c=e["temperature"],
            trailer=bytes.fromhex("00590b"),
        ),
    ),
    (
        "nwave/nps405-codec",
        3,
        lambda e: encode_nps405_startup(
            firmware_version=e["firmware_version"], reset_cause=e["reset_cause"], occupied=e["occupied"]
        ),
    ),
    ("bosch/tps110-0292-codec", 0, lambda e: encode_tps110_status(occupied=e["occupied"])),
    (
        "bosch/tps110-0292-codec",
        1,
        lambda e: encode_tps110_heartbeat(occupied=e["occupied"], temperature_c=e["temperature"]),
    ),
    (
        "milesight-iot/em310-udl-codec",
        0,
        lambda e: encode_em310_udl(
            battery_percent=e["battery"], distance_mm=e["distance"], tilted=e["tilt"] == "tilt"
        ),
    ),
    *(
        (
            "milesight-iot/em500-udl-codec",
            index,
            lambda e: encode_em500_udl(battery_percent=e["battery"], distance_mm=e["distance"]),
        )
        for index in (0, 1)
    ),
    (
        "milesight-iot/em500-smtc-codec",
        0,
        # the example omits the conductivity its own payload carries (240 µS/cm)
        lambda e: encode_em500_smtc(
            battery_percent=e["battery"],
            temperature_c=e["temperature"],
            moisture_percent=e["humidity"],
            conductivity_us_cm=240,
        ),
    ),
    (
        "milesight-iot/em500-swl-codec",
        0,
        lambda e: encode_em500_swl(battery_percent=e["battery"], level_cm=e["level"]),
    ),
    (
        "milesight-iot/am307-codec",
        0,
        # the example's decoder stopped before the PIR activity channel (73) its payload carries
        lambda e: encode_am307(
            battery_percent=e["battery"],
            temperature_c=e["temperature"],
            humidity_percent=e["humidity"],
            pir_activity=73,
        ),
    ),
    (
        "milesight-iot/am307-codec",
        1,
        lambda e: encode_am307(co2_ppm=e["co2"], tvoc=e["tvoc"], pressure_hpa=e["pressure"]),
    ),
    (
        "elsys/ers-co2-codec",
        0,
        lambda e: encode_ers_co2(
            temperature_c=e["temperature"],
            humidity_percent=e["humidity"],
            light_lux=e["light"],
            motion_count=e["motion"],
            co2_ppm=e["co2"],
        ),
    ),
    (
        "dragino/lse01-codec",
        0,
        # the example's battery word has both flag bits set and its last byte is 0x90
        lambda e: encode_lse01(
            battery_mv=e["Bat"] * 1000,
            ds18b20_temperature_c=float(e["TempC_DS18B20"]),
            moisture_percent=float(e["water_SOIL"]),
            soil_temperature_c=float(e["temp_SOIL"]),
            conductivity_us_cm=e["conduct_SOIL"],
            flags=0x90,
            battery_flag_bits=0b11,
        ),
    ),
    (
        "decentlab/dl-smtp-codec",
        0,
        lambda e: encode_dl_smtp(
            device_id=e["device_id"],
            battery_v=value(e, "battery_voltage"),
            depths=[
                (value(e, f"soil_moisture_at_depth_{k}"), value(e, f"soil_temperature_at_depth_{k}"))
                for k in range(8)
            ],
        ),
    ),
    (
        "decentlab/dl-smtp-codec",
        1,
        lambda e: encode_dl_smtp(
            device_id=e["device_id"], battery_v=value(e, "battery_voltage"), depths=None
        ),
    ),
    (
        "decentlab/dl-pm-codec",
        0,
        lambda e: encode_dl_pm(
            device_id=e["device_id"],
            battery_v=value(e, "battery_voltage"),
            particulate_matter=ParticulateMatter(
                pm1_0_mass=value(e, "pm1_0_mass_concentration"),
                pm2_5_mass=value(e, "pm2_5_mass_concentration"),
                pm4_mass=value(e, "pm4_mass_concentration"),
                pm10_mass=value(e, "pm10_mass_concentration"),
                typical_particle_size_nm=value(e, "typical_particle_size"),
                pm0_5_number=value(e, "pm0_5_number_concentration"),
                pm1_0_number=value(e, "pm1_0_number_concentration"),
                pm2_5_number=value(e, "pm2_5_number_concentration"),
                pm4_number=value(e, "pm4_number_concentration"),
                pm10_number=value(e, "pm10_number_concentration"),
            ),
            air_temperature_c=value(e, "air_temperature"),
            air_humidity_percent=value(e, "air_humidity"),
            barometric_pressure_pa=value(e, "barometric_pressure"),
        ),
    ),
    (
        "decentlab/dl-pm-codec",
        1,
        lambda e: encode_dl_pm(
            device_id=e["device_id"],
            battery_v=value(e, "battery_voltage"),
            particulate_matter=None,
            air_temperature_c=value(e, "air_temperature"),
            air_humidity_percent=value(e, "air_humidity"),
            barometric_pressure_pa=value(e, "barometric_pressure"),
        ),
    ),
    (
        "decentlab/dl-pm-codec",
        2,
        lambda e: encode_dl_pm(
            device_id=e["device_id"],
            battery_v=value(e, "battery_voltage"),
            particulate_matter=None,
            air_temperature_c=None,
            air_humidity_percent=None,
            barometric_pressure_pa=None,
        ),
    ),
]


@pytest.mark.parametrize(
    ("codec_id", "index", "encode"), VECTOR_CASES, ids=[f"{case[0]}#{case[1]}" for case in VECTOR_CASES]
)
def test_encoding_a_vendor_example_gives_its_bytes(
    codec_id: str, index: int, encode: Callable[[dict[str, Any]], bytes]
) -> None:
    example = vector(codec_id, index)
    assert encode(example["expected"]).hex() == example["bytes_hex"]


def test_ldds75_frame_has_the_layout_its_decoder_accepts() -> None:
    """The only LDDS75 vector is a rejected 4-byte frame; the decoder wants 5: battery, distance, flag."""
    frame = encode_ldds75(battery_mv=3387, distance_mm=2799)
    assert frame.hex() == "0d3b0aef00"
    assert len(bytes.fromhex(vector("dragino/ldds75-codec", 0)["bytes_hex"])) != len(frame)


@pytest.mark.parametrize(
    ("minutes", "code"),
    [(0, 0), (74, 74), (89, 89), (90, 90), (160, 104), (239, 119), (240, 120), (659, 126)],
)
def test_nwave_duration_compression(minutes: int, code: int) -> None:
    assert nwave_duration_code(minutes) == code
    assert nwave_duration_code(10_000) == 127


def test_values_out_of_a_field_range_are_clipped_not_raised() -> None:
    assert encode_em500_udl(battery_percent=120, distance_mm=-5).hex() == "01756403820000"
    assert encode_em500_swl(battery_percent=50, level_cm=10**6).hex() == "0175320377ffff"


def test_airtime_follows_the_lora_formula() -> None:
    # 10 application bytes at SF7/125 kHz: 23-byte PHY payload, 48 payload symbols + 12.25 preamble
    assert airtime_s(10, 7) == pytest.approx(0.061696)
    assert airtime_s(10, 12) > 20 * airtime_s(10, 7)


# --- behaviour ---------------------------------------------------------------------------------------


def hourly(start: datetime, hours: int) -> list[datetime]:
    return [start + timedelta(hours=hour) for hour in range(hours)]


def test_a_bin_fills_up_and_is_emptied_on_its_collection_morning() -> None:
    weather = Weather(1, 1)
    battery = Battery(90.0, 0.05, T0)
    waste_bin = WasteBin(
        random.Random(3),
        weather,
        battery,
        T0,
        bin_depth_mm=1150,
        sensor_offset_mm=150,
        collection_weekdays=(3,),  # Thursday
    )
    times = hourly(T0, 24 * 7)
    distances = [waste_bin.observe(moment).distance_mm for moment in times]
    drops = [
        (times[i], distances[i] - distances[i - 1])
        for i in range(1, len(distances))
        if distances[i] - distances[i - 1] > 300
    ]
    assert len(drops) == 1
    emptied_at, _ = drops[0]
    clock = local_time(emptied_at)
    assert clock.weekday == 3
    assert 6 <= clock.hour <= 12
    before = distances[: times.index(emptied_at)]
    assert before[0] - before[-1] > 200  # filled up (the surface came closer) until then
    after = distances[times.index(emptied_at) :]
    assert after[0] > after[-1] + 100  # and fills again


def test_soil_dries_fastest_at_a_warm_midday_and_is_watered_when_stressed() -> None:
    dry_weather = Weather(1, 1, rain_probability=0.0)
    soil = TreeSoil(random.Random(5), dry_weather, Battery(90.0, 0.05, T0), T0, soil_type="Lehm")
    times = hourly(T0, 24 * 30)
    moisture = [soil.observe(moment).moisture_percent for moment in times]
    night_loss = moisture[0] - moisture[2]  # 04:00 to 06:00 UTC is before sunrise work starts
    midday_loss = moisture[8] - moisture[10]  # 12:00 to 14:00 local time
    assert midday_loss > 0.1
    assert midday_loss > 3 * max(night_loss, 0.0)
    assert moisture[47] < moisture[0] - 1.0  # two dry days
    rises = [
        moisture[i] - moisture[i - 1] for i in range(1, len(moisture)) if moisture[i] - moisture[i - 1] > 3
    ]
    assert rises, "the city waters a tree that fell into the stress band"


def test_parking_is_busier_on_weekday_middays_than_at_night() -> None:
    weather = Weather(1, 1)
    by_hour: dict[str, list[bool]] = defaultdict(list)
    for spot_number in range(12):
        spot = ParkingSpot(random.Random(spot_number), weather, Battery(90.0, 0.05, T0), T0)
        for moment in [T0 + timedelta(minutes=15 * k) for k in range(4 * 24 * 14)]:
            observation = spot.observe(moment)
            clock = local_time(moment)
            if clock.weekday < 5 and 10 <= clock.hour < 14:
                by_hour["midday"].append(observation.occupied)
            elif 1 <= clock.hour < 5:
                by_hour["night"].append(observation.occupied)
    midday = sum(by_hour["midday"]) / len(by_hour["midday"])
    night = sum(by_hour["night"]) / len(by_hour["night"])
    assert midday > 0.6
    assert night < 0.4


def test_battery_declines_slowly() -> None:
    battery = Battery(80.0, 0.05, T0)
    assert battery.level(T0).percent == 80
    assert 78 <= battery.level(T0 + timedelta(days=30)).percent < 80
    assert battery.level(T0 + timedelta(days=30)).millivolts < battery.level(T0).millivolts


# --- envelopes ---------------------------------------------------------------------------------------


def split_by_server(messages: list[tuple[str, bytes]]) -> tuple[list[Any], list[Any]]:
    tts = [(topic, json.loads(body)) for topic, body in messages if topic.startswith("v3/")]
    chirpstack = [(topic, json.loads(body)) for topic, body in messages if topic.startswith("application/")]
    assert len(tts) + len(chirpstack) == len(messages)
    return tts, chirpstack


def test_tts_uplinks_have_the_fields_and_quirks_of_real_ones() -> None:
    real = fixture("tts_v3_uplink_no_decoded.json")
    messages, _ = split_by_server(generate(300, seed=4, start=T0))
    fleet = demo_fleet(seed=4)
    by_device_id = {device.network_device_id: device for device in fleet.devices}
    seen_gateway_time = seen_channel_index = False
    for topic, message in messages:
        assert set(real) <= set(message)
        assert set(real["uplink_message"]) <= set(message["uplink_message"])
        assert set(real["end_device_ids"]) == set(message["end_device_ids"])
        ids = message["end_device_ids"]
        app, tenant = ids["application_ids"]["application_id"], "regiopol"
        assert topic == f"v3/{app}@{tenant}/devices/{ids['device_id']}/up"
        device = by_device_id[ids["device_id"]]
        assert ids["dev_eui"] == device.dev_eui.upper()
        as_up = [cid for cid in message["correlation_ids"] if cid.startswith("as:up:")]
        assert len(as_up) == 1
        assert ULID.fullmatch(as_up[0].removeprefix("as:up:"))
        assert TTS_TIME.fullmatch(message["received_at"])
        uplink = message["uplink_message"]
        assert isinstance(uplink["settings"]["frequency"], str)
        assert set(real["uplink_message"]["settings"]["data_rate"]["lora"]) == set(
            uplink["settings"]["data_rate"]["lora"]
        )
        assert base64.b64decode(uplink["frm_payload"])
        assert uplink["consumed_airtime"].endswith("s")
        assert 1 <= len(uplink["rx_metadata"]) <= 3
        for entry in uplink["rx_metadata"]:
            # gateway time needs GPS; TTS leaves zero values (channel_index 0, snr 0) out
            assert set(real["uplink_message"]["rx_metadata"][0]) - {"time", "channel_index", "snr"} <= set(
                entry
            )
            assert isinstance(entry["frequency_offset"], str)
            assert entry["gateway_ids"]["eui"] == entry["gateway_ids"]["eui"].upper()
            seen_gateway_time |= "time" in entry
            seen_channel_index |= "channel_index" in entry
    assert seen_gateway_time
    assert seen_channel_index


def test_chirpstack_uplinks_parse_strictly_as_chirpstack_v4_events() -> None:
    real = fixture("chirpstack_v4_up.json")
    _, messages = split_by_server(generate(300, seed=4, start=T0))
    known_rx_keys = {key for entry in real["rxInfo"] for key in entry}
    for topic, message in messages:
        json_format.Parse(json.dumps(message), integration.UplinkEvent())  # unknown fields are errors
        assert set(real) - {"object"} == set(message)
        assert set(real["deviceInfo"]) == set(message["deviceInfo"])
        info = message["deviceInfo"]
        assert topic == f"application/{info['applicationId']}/device/{info['devEui']}/event/up"
        assert re.fullmatch(r"[0-9a-f]{16}", info["devEui"])
        assert uuid.UUID(message["deduplicationId"]).version == 4
        assert CHIRPSTACK_TIME.fullmatch(message["time"])
        assert message["confirmed"] is False
        assert message["dr"] == 12 - message["txInfo"]["modulation"]["lora"]["spreadingFactor"]
        assert 1 <= len(message["rxInfo"]) <= 3
        for entry in message["rxInfo"]:
            assert set(entry) <= known_rx_keys
            assert {"gatewayId", "nsTime", "rssi", "snr", "context", "metadata", "crcStatus"} <= set(entry)


def test_uplinks_count_frames_up_and_are_heard_only_by_their_own_servers_gateways() -> None:
    fleet = demo_fleet(seed=4)
    gateway_servers = {gateway.gateway_eui: gateway.network_server for gateway in fleet.gateways}
    tts, chirpstack = split_by_server(generate(1000, seed=4, start=T0))
    counters: dict[str, list[int]] = defaultdict(list)
    for _, message in tts:
        counters[message["end_device_ids"]["dev_eui"].lower()].append(message["uplink_message"]["f_cnt"])
        for entry in message["uplink_message"]["rx_metadata"]:
            assert gateway_servers[entry["gateway_ids"]["eui"].lower()] is NetworkServer.TTS
    for _, message in chirpstack:
        counters[message["deviceInfo"]["devEui"]].append(message["fCnt"])
        for entry in message["rxInfo"]:
            assert gateway_servers[entry["gatewayId"]] is NetworkServer.CHIRPSTACK_V4
    assert len(counters) == len(fleet.devices)
    for f_cnts in counters.values():
        assert f_cnts == list(range(f_cnts[0], f_cnts[0] + len(f_cnts)))


def test_generate_is_reproducible_and_every_uplink_has_its_own_key() -> None:
    first = generate(2000, seed=9, start=T0)
    assert first == generate(2000, seed=9, start=T0)
    tts, chirpstack = split_by_server(first)
    keys = [m["correlation_ids"][0] for _, m in tts] + [m["deduplicationId"] for _, m in chirpstack]
    assert len(set(keys)) == 2000
    assert min(len(tts), len(chirpstack)) > 500
    gateways_per_uplink = Counter(len(m["uplink_message"]["rx_metadata"]) for _, m in tts) + Counter(
        len(m["rxInfo"]) for _, m in chirpstack
    )
    assert set(gateways_per_uplink) == {1, 2, 3}


def test_gateway_heartbeats_look_like_the_gateway_bridges() -> None:
    real_stats = fixture("chirpstack_v4_gateway_stats.json")
    simulator = Simulator(demo_fleet(), speed=DEMO_SPEED, start=T0, gateway_stats_interval_s=30.0)
    simulator.messages_due(T0 + timedelta(seconds=10))
    stats = [
        (topic, json.loads(body))
        for topic, body in simulator.messages_due(T0 + timedelta(seconds=31))
        if topic.endswith("/event/stats")
    ]
    assert len(stats) == sum(
        g.network_server is NetworkServer.CHIRPSTACK_V4 for g in simulator.fleet.gateways
    )
    for topic, message in stats:
        assert topic == f"gateway/{message['gatewayId']}/event/stats"
        json_format.Parse(json.dumps(message), gw.GatewayStats())
        assert {key for key in real_stats if key.startswith("rx")} <= set(
            message
        ) or "rxPacketsReceived" not in message
    assert any("rxPacketsReceived" in message for _, message in stats)
    online = [json.loads(body) for _, body in simulator.gateway_connections(online=True)]
    offline = [json.loads(body) for _, body in simulator.gateway_connections(online=False)]
    assert set(online[0]) == set(fixture("chirpstack_v4_gateway_conn_online.json"))
    assert set(offline[0]) == set(fixture("chirpstack_v4_gateway_conn_offline.json"))
    assert json_format.Parse(json.dumps(offline[0]), gw.ConnState()).state == gw.ConnState.OFFLINE


def test_ulids_sort_by_time() -> None:
    assert ulid(1, 2**80 - 1) < ulid(2, 0)
    assert ULID.fullmatch(ulid(1_764_150_000_000, 12345))


# --- schedule ----------------------------------------------------------------------------------------


def test_at_demo_speed_every_device_speaks_within_seconds_and_then_at_its_pace() -> None:
    fleet = demo_fleet()
    simulator = Simulator(fleet, speed=DEMO_SPEED, start=T0, gateway_stats_interval_s=None)
    first = simulator.messages_due(T0 + timedelta(seconds=6))
    assert len(first) == len(fleet.devices)
    assert simulator.messages_due(T0 + timedelta(seconds=6)) == []
    later: list[tuple[str, bytes]] = []
    for second in range(7, 67):
        later += simulator.messages_due(T0 + timedelta(seconds=second))
    environment = sum(1 for d in fleet.devices if d.use_case is UseCase.ENVIRONMENT)
    # a minute of wall time at speed 300 is five hours of sensor time: air sensors report
    # every two seconds or so, bins every twelve
    assert len(later) > 20 * environment
    assert simulator.simulated_time(T0 + timedelta(seconds=60)) == T0 + timedelta(hours=5)


def test_a_paused_simulator_resumes_without_a_flood() -> None:
    fleet = demo_fleet()
    simulator = Simulator(fleet, speed=DEMO_SPEED, start=T0, gateway_stats_interval_s=None)
    simulator.messages_due(T0 + timedelta(seconds=6))
    after_pause = simulator.messages_due(T0 + timedelta(hours=1))
    assert len(after_pause) <= len(fleet.devices)


# --- publishing --------------------------------------------------------------------------------------


def test_run_publishes_both_topic_trees_to_the_broker(broker: Broker) -> None:
    prefix = f"lorakom-test/{uuid.uuid4().hex[:12]}/"
    received: list[mqtt.MQTTMessage] = []
    subscribed = threading.Event()
    subscriber = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    subscriber.on_connect = lambda client, userdata, flags, reason, props: client.subscribe(
        prefix + "#", qos=1
    )
    subscriber.on_subscribe = lambda client, userdata, mid, reasons, props: subscribed.set()
    subscriber.on_message = lambda client, userdata, message: received.append(message)
    subscriber.connect(broker.host, broker.port)
    subscriber.loop_start()
    stop = threading.Event()
    acknowledged: list[str] = []
    simulator = Simulator(demo_fleet(devices_per_town=8), speed=DEMO_SPEED, gateway_stats_interval_s=1.0)
    result: list[int] = []
    try:
        assert subscribed.wait(5)
        runner = threading.Thread(
            target=lambda: result.append(
                simulator.run(
                    broker.host,
                    broker.port,
                    stop_event=stop,
                    topic_prefix=prefix,
                    on_published=acknowledged.append,
                )
            )
        )
        runner.start()
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline and len({m.topic for m in received if m.topic.endswith("/up")}) < 24
        ):
            time.sleep(0.1)
        stop.set()
        runner.join(15)
        time.sleep(0.3)
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
        clear_retained(broker, prefix, simulator)
    topics = [message.topic for message in received]
    assert all(topic.startswith(prefix) for topic in topics)
    tails = [topic.removeprefix(prefix) for topic in topics]
    tts = [tail for tail in tails if re.fullmatch(r"v3/[a-z-]+@regiopol/devices/eui-[0-9a-f]{16}/up", tail)]
    chirpstack = [
        tail
        for tail in tails
        if re.fullmatch(r"application/[0-9a-f-]{36}/device/[0-9a-f]{16}/event/up", tail)
    ]
    gateway_states = [tail for tail in tails if re.fullmatch(r"gateway/[0-9a-f]{16}/state/conn", tail)]
    stats = [tail for tail in tails if re.fullmatch(r"gateway/[0-9a-f]{16}/event/stats", tail)]
    assert tts
    assert chirpstack
    assert gateway_states
    assert stats
    assert len(tts) + len(chirpstack) + len(gateway_states) + len(stats) == len(tails)
    assert len({tail for tail in tts + chirpstack}) == 24  # every device of the fleet was heard
    for message in received:
        json.loads(message.payload)
    assert result
    assert result[0] == len(acknowledged) >= len(received) - len(stats)


def clear_retained(broker: Broker, prefix: str, simulator: Simulator) -> None:
    """Remove the retained gateway states the test left under its prefix."""
    cleaner = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    cleaner.connect(broker.host, broker.port)
    cleaner.loop_start()
    for topic, _ in simulator.gateway_connections(online=False):
        cleaner.publish(prefix + topic, b"", qos=1, retain=True).wait_for_publish(5)
    cleaner.loop_stop()
    cleaner.disconnect()
