"""Every captured network-server message through its adapter, field by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chirpstack_api import gw

from domain.errors import MessageRejected
from domain.ids import DevEui, GatewayId
from domain.uplink import (
    DeviceStatus,
    GatewayStatus,
    Ignored,
    Join,
    Location,
    NetworkEvent,
    NetworkServer,
    Radio,
    Reception,
    Uplink,
)
from ingest.adapters import default_topics, parse_message, parse_webhook
from ingest.adapters.tts import parse_application_up

FORMATS = Path(__file__).parent.parent / "fixtures" / "formats"
TTS = NetworkServer.TTS
CS4 = NetworkServer.CHIRPSTACK_V4
CS3 = NetworkServer.CHIRPSTACK_V3
TTS_UP = "v3/application-tti-name@tenant/devices/eui-1000000000000001/up"
CS4_UP = "application/ca739e26-7b67-4f14-b69e-d568c22a5a75/device/1000000000000001/event/up"
CS3_UP = "application/123/device/0202020202020202/event/up"


def raw(name: str) -> bytes:
    return (FORMATS / name).read_bytes()


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw(name))
    return loaded


def encoded(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def uplink(kind: NetworkServer, topic: str, body: bytes) -> Uplink:
    event = parse_message(kind, topic, body)
    assert isinstance(event, Uplink)
    return event


def gateway_status(event: NetworkEvent) -> GatewayStatus:
    assert isinstance(event, GatewayStatus)
    return event


# -- The Things Stack -------------------------------------------------------------------------------


def test_tts_uplink_with_decoded_payload_and_packet_broker_copy() -> None:
    up = uplink(TTS, TTS_UP, raw("tts_v3_uplink.json"))

    assert up.network_server is TTS
    assert len(up.uplink_key) == 32
    assert up.received_at == datetime(2023, 5, 18, 8, 25, 25, 906399, tzinfo=UTC)
    assert up.dev_eui == "1000000000000001"
    assert up.payload == bytes.fromhex("01755c03673401046865")
    assert up.f_port == 85
    assert up.f_cnt == 5017
    assert up.network_device_id == "eui-1000000000000001"
    assert up.application_id == "application-tti-name"
    assert up.dev_addr == "20000001"
    assert up.decoded_by_network == {"battery": 92, "humidity": 50.5, "temperature": 30.8}
    assert up.confirmed is False
    assert up.simulated is False
    assert up.battery_percent is None
    # The Packet Broker entry names the same gateway (its forwarder): one reception remains, the direct one.
    assert up.receptions == (
        Reception(
            gateway_id=GatewayId("6a7e111a10000000"),
            rssi_dbm=-24.0,
            snr_db=12.0,
            channel=2,
            antenna=0,
            received_at=at("2023-05-18T08:25:25.869324+00:00"),
            gateway_location=None,
            gateway_eui="6a7e111a10000000",
        ),
    )
    assert up.radio == Radio(
        spreading_factor=7,
        bandwidth_hz=125000,
        frequency_hz=868500000,
        coding_rate="4/5",
        data_rate=None,
        airtime_s=0.097536,
    )


def test_tts_packet_broker_reception_is_named_after_its_forwarder() -> None:
    message = fixture("tts_v3_uplink.json")
    relayed = message["uplink_message"]["rx_metadata"][1]
    message["uplink_message"]["rx_metadata"] = [relayed]

    (reception,) = uplink(TTS, TTS_UP, encoded(message)).receptions

    assert reception.gateway_id == "6a7e111a10000000"
    assert reception.received_at == at("2023-05-18T08:25:25.906038+00:00")
    assert reception.channel == 0  # channel_index omitted because it is 0

    del relayed["packet_broker"]
    (anonymous,) = uplink(TTS, TTS_UP, encoded(message)).receptions
    assert anonymous.gateway_id == "packetbroker"
    assert anonymous.gateway_eui is None


def test_tts_uplink_without_payload_formatter() -> None:
    up = uplink(TTS, TTS_UP, raw("tts_v3_uplink_no_decoded.json"))

    assert up.decoded_by_network is None
    assert up.f_cnt == 10335
    assert up.application_id == "application-tts-name"
    assert up.received_at == datetime(2023, 5, 19, 5, 33, 35, 641841, tzinfo=UTC)
    (reception,) = up.receptions
    assert reception.gateway_id == "6a7e111a10000000"
    assert reception.rssi_dbm == -35.0
    assert reception.snr_db == 13.2
    assert reception.channel == 3
    assert up.radio.frequency_hz == 867100000
    assert up.radio.airtime_s == 0.056576


def test_tts_simulated_uplink_takes_the_envelope_time() -> None:
    up = uplink(TTS, "v3/app1@ttn/devices/dev1/up", raw("tts_v3_uplink_simulated.json"))

    assert up.simulated is True
    assert up.received_at == datetime(2021, 2, 4, 19, 32, 31, 488210, tzinfo=UTC)
    assert up.dev_eui is None
    assert up.network_device_id == "dev1"
    assert up.application_id == "app1"
    assert up.payload == b"\x00"
    assert up.f_port == 1
    assert up.f_cnt == 0  # omitted because it is 0
    assert up.decoded_by_network == {"occupied": False, "type": "parking status"}
    assert up.receptions == ()
    assert up.radio == Radio()


def test_tts_join() -> None:
    event = parse_message(TTS, "v3/app1/devices/dev1/join", raw("tts_v3_join.json"))

    assert event == Join(
        network_server=TTS,
        received_at=datetime(2020, 2, 17, 7, 49, 9, 935284, tzinfo=UTC),
        dev_eui=DevEui("0004a30b001c0530"),
        network_device_id="dev1",
        dev_addr="01497ECC",
    )


@pytest.mark.parametrize(
    "kind", ["downlink_ack", "downlink_queued", "location_solved", "service_data", "uplink_normalized"]
)
def test_tts_other_application_up_kinds_are_ignored(kind: str) -> None:
    body = encoded({"end_device_ids": {"device_id": "dev1"}, kind: {}})
    assert parse_message(TTS, "v3/app1/devices/dev1/down/ack", body) == Ignored(kind=f"tts {kind}")


def test_tts_battery_and_legacy_coding_rate() -> None:
    message = fixture("tts_v3_uplink_no_decoded.json")
    up_message = message["uplink_message"]
    up_message["last_battery_percentage"] = 87.5
    up_message["confirmed"] = True
    lora = up_message["settings"]["data_rate"]["lora"]
    up_message["settings"]["coding_rate"] = lora.pop("coding_rate")
    up_message["settings"]["data_rate_index"] = 5

    up = uplink(TTS, TTS_UP, encoded(message))

    assert up.battery_percent == 87.5
    assert up.confirmed is True
    assert up.radio.coding_rate == "4/5"
    assert up.radio.data_rate == 5


def test_tts_gateway_location_and_antenna() -> None:
    message = fixture("tts_v3_uplink_no_decoded.json")
    entry = message["uplink_message"]["rx_metadata"][0]
    entry["location"] = {
        "latitude": 51.7189,
        "longitude": 8.7575,
        "altitude": 110,
        "source": "SOURCE_REGISTRY",
    }
    second = dict(entry, antenna_index=1, rssi=-40)

    message["uplink_message"]["rx_metadata"].append(second)
    first, other = uplink(TTS, TTS_UP, encoded(message)).receptions

    assert first.gateway_location == Location(latitude=51.7189, longitude=8.7575, altitude_m=110)
    assert (first.antenna, other.antenna) == (0, 1)
    assert other.rssi_dbm == -40.0


def test_tts_webhook_without_end_device_ids() -> None:
    message = fixture("tts_v3_uplink.json")
    del message["end_device_ids"]

    event = parse_webhook(TTS, encoded(message), event=None, content_type="application/json")

    assert isinstance(event, Uplink)
    assert event.dev_eui is None
    assert event.network_device_id is None
    assert event.f_cnt == 5017


def test_tts_topic_names_the_device_when_the_body_does_not() -> None:
    message = fixture("tts_v3_uplink.json")
    del message["end_device_ids"]

    up = uplink(TTS, "v3/parking@paderborn/devices/bay-17/up", encoded(message))

    assert (up.application_id, up.network_device_id) == ("parking", "bay-17")


def test_tts_protobuf_webhook_is_rejected_with_its_reason() -> None:
    with pytest.raises(MessageRejected, match="JSON"):
        parse_webhook(TTS, b"\x0a\x03abc", event=None, content_type="application/octet-stream")


def test_tts_key_is_the_same_over_mqtt_webhook_and_storage() -> None:
    """The Storage Integration returns the message without correlation ids; the key must not need them."""
    message = fixture("tts_v3_uplink.json")
    over_mqtt = uplink(TTS, TTS_UP, encoded(message))
    over_webhook = parse_webhook(TTS, encoded(message), event=None, content_type=None)
    stored = {key: value for key, value in message.items() if key != "correlation_ids"}
    from_storage = parse_application_up(stored, topic=None)

    assert isinstance(over_webhook, Uplink)
    assert isinstance(from_storage, Uplink)
    assert over_mqtt.uplink_key == over_webhook.uplink_key == from_storage.uplink_key
    assert over_mqtt.received_at == from_storage.received_at


def test_tts_retransmission_with_the_same_f_cnt_is_a_separate_delivery() -> None:
    first = fixture("tts_v3_uplink.json")
    again = fixture("tts_v3_uplink.json")
    again["correlation_ids"] = ["as:up:01H0PZDHXXXXXXXXXXXXXXXXXX"]
    again["uplink_message"]["received_at"] = "2023-05-18T08:25:27.001000000Z"

    assert uplink(TTS, TTS_UP, encoded(first)).uplink_key != uplink(TTS, TTS_UP, encoded(again)).uplink_key


# -- ChirpStack v4 ----------------------------------------------------------------------------------


def test_chirpstack_v4_uplink_json() -> None:
    up = uplink(CS4, CS4_UP, raw("chirpstack_v4_up.json"))

    assert up.network_server is CS4
    assert up.uplink_key == "57433366-50a6-4dc2-8145-2df1bbc70d9e"
    assert up.received_at == datetime(2023, 5, 22, 7, 47, 5, 404859, tzinfo=UTC)
    assert up.dev_eui == "1000000000000001"
    assert up.payload == bytes.fromhex("01755c03673401046865")
    assert up.f_port == 85
    assert up.f_cnt == 4
    assert up.network_device_id == "Device name"
    assert up.application_id == "ca739e26-7b67-4f14-b69e-d568c22a5a75"
    assert up.dev_addr == "20000001"
    assert up.decoded_by_network == {"battery": 92.0, "humidity": 50.5, "temperature": 30.8}
    assert up.confirmed is False
    assert up.simulated is False
    assert up.receptions == (
        Reception(
            gateway_id=GatewayId("6a7e111a10000000"),
            rssi_dbm=-35.0,
            snr_db=11.5,
            channel=2,
            antenna=0,
            received_at=at("2023-05-22T07:47:05.404859+00:00"),  # gwTime
            gateway_location=None,  # "location": {}
            gateway_eui="6a7e111a10000000",
        ),
        Reception(
            gateway_id=GatewayId("0016c001f153a14c"),
            rssi_dbm=-97.0,
            snr_db=-3.25,
            channel=2,
            antenna=0,
            received_at=at("2023-05-22T07:47:05.438906+00:00"),  # no gwTime: nsTime
            gateway_location=Location(latitude=52.3740364, longitude=4.9144401, altitude_m=10.5),
            gateway_eui="0016c001f153a14c",
        ),
    )
    assert up.radio == Radio(
        spreading_factor=7, bandwidth_hz=125000, frequency_hz=868500000, coding_rate="4/5", data_rate=5
    )


def test_chirpstack_v4_protobuf_uplink_equals_its_json() -> None:
    from_protobuf = uplink(CS4, CS4_UP, raw("chirpstack_v4_up.pb"))

    assert from_protobuf == uplink(CS4, CS4_UP, raw("chirpstack_v4_up.json"))


def test_chirpstack_v4_real_uplink_with_the_old_time_key() -> None:
    up = uplink(CS4, CS4_UP, raw("chirpstack_v4_up_real_1gw.json"))

    assert up.uplink_key == "57433366-50a6-4dc2-8145-2df1bbc70d9e"
    assert up.decoded_by_network is None
    (reception,) = up.receptions
    assert reception.received_at == at("2023-05-22T07:47:05.404859+00:00")
    assert reception.gateway_id == "6a7e111a10000000"


def test_chirpstack_v4_webhook_json_and_protobuf() -> None:
    as_json = parse_webhook(CS4, raw("chirpstack_v4_up.json"), event="up", content_type="application/json")
    as_protobuf = parse_webhook(
        CS4, raw("chirpstack_v4_up.pb"), event="up", content_type="application/octet-stream"
    )

    assert as_json == as_protobuf
    assert isinstance(as_json, Uplink)


def test_chirpstack_v4_json_on_a_custom_topic_is_recognised_by_its_keys() -> None:
    up = uplink(CS4, "lorawan/events/up-stream", raw("chirpstack_v4_up.json"))
    assert up.f_cnt == 4
    status = parse_webhook(CS4, raw("chirpstack_v4_status.json"), event=None, content_type=None)
    assert isinstance(status, DeviceStatus)


def test_chirpstack_v4_protobuf_needs_to_know_its_event_type() -> None:
    with pytest.raises(MessageRejected, match="needs its type"):
        parse_message(CS4, "lorawan/events/stream", raw("chirpstack_v4_up.pb"))


def test_chirpstack_v4_join() -> None:
    event = parse_message(
        CS4, "application/x/device/0101010101010101/event/join", raw("chirpstack_v4_join.json")
    )

    assert event == Join(
        network_server=CS4,
        received_at=datetime(2022, 7, 18, 9, 33, 28, 823500, tzinfo=UTC),
        dev_eui=DevEui("0101010101010101"),
        network_device_id="Test device",
        dev_addr="00189440",
    )


def test_chirpstack_v4_status() -> None:
    topic = "application/x/device/0101010101010101/event/status"
    event = parse_message(CS4, topic, raw("chirpstack_v4_status.json"))

    assert event == DeviceStatus(
        network_server=CS4,
        received_at=datetime(2022, 7, 18, 9, 35, 6, 927172, tzinfo=UTC),
        dev_eui=DevEui("0101010101010101"),
        battery_percent=88.3,
        margin_db=10,
        external_power=False,
    )

    on_mains = fixture("chirpstack_v4_status.json") | {"externalPowerSource": True, "batteryLevel": 0}
    powered = parse_message(CS4, topic, encoded(on_mains))
    assert isinstance(powered, DeviceStatus)
    assert powered.external_power is True
    assert powered.battery_percent is None


@pytest.mark.parametrize("event", ["log", "ack", "txack", "location", "integration"])
def test_chirpstack_v4_events_not_stored_are_ignored(event: str) -> None:
    topic = f"application/x/device/0101010101010101/event/{event}"
    assert parse_message(CS4, topic, raw("chirpstack_v4_log.json")) == Ignored(kind=f"chirpstack {event}")


def test_chirpstack_v4_gateway_stats_json_with_and_without_region_prefix() -> None:
    for topic in ("gateway/0016c001f153a14c/event/stats", "eu868/gateway/0016c001f153a14c/event/stats"):
        status = gateway_status(parse_message(CS4, topic, raw("chirpstack_v4_gateway_stats.json")))

        assert status == GatewayStatus(
            gateway_id=GatewayId("0016c001f153a14c"),
            observed_at=datetime(2022, 8, 3, 14, 37, 59, tzinfo=UTC),
            online=True,
            location=None,
            rx_packets=1,
            rx_packets_ok=1,
            tx_packets=1,
        )


def test_chirpstack_v4_gateway_stats_protobuf() -> None:
    stats = gw.GatewayStats(gateway_id="0016c001f153a14c", rx_packets_received=12, rx_packets_received_ok=10)
    stats.time.FromDatetime(datetime(2024, 3, 1, 12, 0, 30))
    stats.location.latitude = 51.7
    stats.location.longitude = 8.75
    stats.tx_packets_emitted = 3

    status = gateway_status(
        parse_message(CS4, "eu868/gateway/0016c001f153a14c/event/stats", stats.SerializeToString())
    )

    assert status == GatewayStatus(
        gateway_id=GatewayId("0016c001f153a14c"),
        observed_at=datetime(2024, 3, 1, 12, 0, 30, tzinfo=UTC),
        online=True,
        location=Location(latitude=51.7, longitude=8.75, altitude_m=0.0),
        rx_packets=12,
        rx_packets_ok=10,
        tx_packets=3,
    )


def test_chirpstack_v4_gateway_conn_state_json() -> None:
    topic = "gateway/0016c001f153a14c/state/conn"
    online = gateway_status(parse_message(CS4, topic, raw("chirpstack_v4_gateway_conn_online.json")))
    offline = gateway_status(parse_message(CS4, topic, raw("chirpstack_v4_gateway_conn_offline.json")))

    assert (online.gateway_id, online.online) == ("0016c001f153a14c", True)
    assert (offline.gateway_id, offline.online) == ("0016c001f153a14c", False)
    assert offline.observed_at.tzinfo is UTC


def test_chirpstack_v4_gateway_conn_state_protobuf() -> None:
    topic = "eu868/gateway/0016c001f153a14c/state/conn"
    online = gw.ConnState(gateway_id="0016c001f153a14c", state=gw.ConnState.ONLINE).SerializeToString()
    offline_legacy = gw.ConnState(gateway_id_legacy=bytes.fromhex("0016c001f153a14c")).SerializeToString()

    assert gateway_status(parse_message(CS4, topic, online)).online is True
    status = gateway_status(parse_message(CS4, topic, offline_legacy))
    assert (status.gateway_id, status.online) == ("0016c001f153a14c", False)
    # An empty body is a valid ConnState: offline, named by its topic.
    assert gateway_status(parse_message(CS4, topic, b"")).gateway_id == "0016c001f153a14c"


def test_chirpstack_v4_gateway_frames_are_ignored() -> None:
    event = parse_message(CS4, "gateway/0016c001f153a14c/event/up", raw("chirpstack_v4_gateway_up.json"))
    assert event == Ignored(kind="chirpstack gateway event up")


# -- ChirpStack v3 ----------------------------------------------------------------------------------


def test_chirpstack_v3_json_v3_uplink() -> None:
    up = uplink(CS3, CS3_UP, raw("chirpstack_v3_up.json"))

    assert up.network_server is CS3
    assert len(up.uplink_key) == 32
    assert up.received_at == datetime(2016, 11, 25, 16, 24, 37, 295915, tzinfo=UTC)
    assert up.dev_eui == "0202020202020202"
    assert up.payload == b"\x01\x02\x03\x04"
    assert up.f_port == 5
    assert up.f_cnt == 10
    assert up.network_device_id == "garden-sensor"
    assert up.application_id == "123"
    assert up.dev_addr is None
    assert up.decoded_by_network == {"temperatureSensor": {"1": 25}, "humiditySensor": {"1": 32}}
    assert up.confirmed is False
    assert up.receptions == (
        Reception(
            gateway_id=GatewayId("0303030303030303"),
            rssi_dbm=-57.0,
            snr_db=10.0,
            channel=None,
            antenna=0,
            received_at=at("2016-11-25T16:24:37.295915+00:00"),
            gateway_location=Location(latitude=52.3740364, longitude=4.9144401, altitude_m=10.5),
            gateway_eui="0303030303030303",
        ),
        Reception(
            gateway_id=GatewayId("0101010101010101"),
            rssi_dbm=-112.0,
            snr_db=-6.5,
            channel=None,
            antenna=0,
            received_at=None,
            gateway_location=None,
            gateway_eui="0101010101010101",
        ),
    )
    assert up.radio == Radio(frequency_hz=868100000, data_rate=5)


def test_chirpstack_v3_protobuf_json_uplink() -> None:
    up = uplink(CS3, CS3_UP, raw("chirpstack_v3_up_pbjson.json"))

    assert up.dev_eui == "0202020202020202"
    assert up.dev_addr == "00513942"
    assert up.received_at == datetime(2019, 11, 8, 13, 59, 25, 48445, tzinfo=UTC)
    assert up.decoded_by_network == {"temperatureSensor": {"1": 25}, "humiditySensor": {"1": 32}}
    assert up.f_cnt == 10
    assert up.application_id == "123"
    (reception,) = up.receptions
    assert reception == Reception(
        gateway_id=GatewayId("0303030303030303"),
        rssi_dbm=-48.0,
        snr_db=9.0,
        channel=5,
        antenna=0,
        received_at=at("2019-11-08T13:59:25.048445+00:00"),
        gateway_location=Location(latitude=52.3740364, longitude=4.9144401, altitude_m=10.5),
        gateway_eui="0303030303030303",
    )
    assert up.radio == Radio(
        spreading_factor=11, bandwidth_hz=125000, frequency_hz=868100000, coding_rate="4/5", data_rate=1
    )


def test_chirpstack_v3_both_marshalers_give_one_key() -> None:
    """Both fixtures are the same frame: DevEUI, fCnt and the first gateway's uplink id agree."""
    json_v3 = uplink(CS3, CS3_UP, raw("chirpstack_v3_up.json"))
    protobuf_json = uplink(CS3, CS3_UP, raw("chirpstack_v3_up_pbjson.json"))

    assert json_v3.uplink_key == protobuf_json.uplink_key


def test_chirpstack_v3_status_and_join() -> None:
    status = parse_webhook(
        CS3,
        encoded(
            {"devEUI": "0202020202020202", "margin": 7, "batteryLevel": 54.3, "externalPowerSource": False}
        ),
        event="status",
        content_type="application/json",
    )
    assert isinstance(status, DeviceStatus)
    assert (status.dev_eui, status.battery_percent, status.margin_db) == ("0202020202020202", 54.3, 7)

    join = parse_message(
        CS3,
        "application/123/device/0202020202020202/event/join",
        encoded({"devEUI": "AgICAgICAgI=", "devAddr": "AFE5Qg==", "deviceName": "garden-sensor"}),
    )
    assert isinstance(join, Join)
    assert (join.dev_eui, join.dev_addr, join.network_device_id) == (
        "0202020202020202",
        "00513942",
        "garden-sensor",
    )


def test_chirpstack_v3_gateway_stats_with_base64_id() -> None:
    body = encoded({"gatewayID": "AIAAAKAACCU=", "time": "2020-01-02T03:04:05Z", "rxPacketsReceivedOK": 4})

    status = gateway_status(parse_message(CS3, "gateway/00800000a0000825/event/stats", body))

    assert status.gateway_id == "00800000a0000825"
    assert status.rx_packets_ok == 4
    assert status.observed_at == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_chirpstack_v3_binary_protobuf_is_rejected_with_its_reason() -> None:
    with pytest.raises(MessageRejected, match="json_v3"):
        parse_message(CS3, CS3_UP, b"\x0a\x03abc")


# -- topics and rejections --------------------------------------------------------------------------


def test_default_topics() -> None:
    assert default_topics(TTS) == ("v3/+/devices/+/up", "v3/+/devices/+/join")
    assert default_topics(CS4) == (
        "application/+/device/+/event/up",
        "application/+/device/+/event/join",
        "application/+/device/+/event/status",
        "gateway/+/event/stats",
        "gateway/+/state/conn",
        "+/gateway/+/event/stats",
        "+/gateway/+/state/conn",
    )
    assert default_topics(CS3) == (
        "application/+/device/+/event/up",
        "application/+/device/+/event/join",
        "application/+/device/+/event/status",
        "gateway/+/event/stats",
    )


def _tts_with(change: dict[str, Any]) -> bytes:
    message = fixture("tts_v3_uplink.json")
    message["uplink_message"] |= change
    return encoded(message)


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        (TTS, b"{not json", "not valid JSON"),
        (TTS, b"[1, 2]", "must be a JSON object, got an array"),
        (TTS, b'{"end_device_ids": {}}', "none of the ApplicationUp keys"),
        (TTS, _tts_with({"frm_payload": "AQ=?"}), "uplink_message.frm_payload is not valid base64"),
        (TTS, _tts_with({"f_cnt": "many"}), "uplink_message.f_cnt must be an integer"),
        (TTS, _tts_with({"f_port": 300}), "uplink_message.f_port = 300 is outside 0..255"),
        (TTS, _tts_with({"received_at": "yesterday"}), "uplink_message.received_at is not an RFC 3339"),
        (TTS, _tts_with({"rx_metadata": [{"rssi": -50}]}), r"rx_metadata\[0\] names no gateway"),
        (TTS, _tts_with({"decoded_payload": {"name": "a\u0000b"}}), "NUL character"),
        (CS4, encoded(fixture("chirpstack_v4_up.json") | {"deviceInfo": {"devEui": "xyz"}}), "DevEUI"),
        (CS4, encoded(fixture("chirpstack_v4_up.json") | {"rxInfo": {}}), "rxInfo must be an array"),
        (CS4, b"\xff\xff\xff", "not a valid protobuf integration.UplinkEvent"),
        (CS3, encoded({"devEUI": "AgI=", "fCnt": 1}), "devEUI must hold 8 bytes"),
    ],
)
def test_unusable_messages_are_rejected_with_a_reason(kind: NetworkServer, body: bytes, reason: str) -> None:
    topic = {TTS: TTS_UP, CS4: CS4_UP, CS3: CS3_UP}[kind]
    with pytest.raises(MessageRejected, match=reason):
        parse_message(kind, topic, body)


@pytest.mark.parametrize(
    "stamp",
    [
        "2023-05-18T08:25:26.112483370Z",
        "2023-05-18T10:25:26.112483+02:00",
        "2023-05-18T08:25:26.112483370+00:00",
    ],
)
def test_nanosecond_and_offset_timestamps_become_utc_microseconds(stamp: str) -> None:
    up = uplink(TTS, TTS_UP, _tts_with({"received_at": stamp}))
    assert up.received_at == datetime(2023, 5, 18, 8, 25, 26, 112483, tzinfo=UTC)
    assert up.received_at.tzinfo is UTC
