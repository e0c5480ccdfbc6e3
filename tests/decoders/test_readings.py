"""Stage 2: field maps onto the quantity vocabulary, derivations from device metadata, plausibility."""

from __future__ import annotations

import pytest

from decoders.cli_format import decode_to_json
from decoders.field_maps import FIELD_MAPS, GENERIC_MAP
from decoders.readings import as_number, readings_from
from decoders.registry import BUILTIN_CODECS, CodecRegistry
from domain.decoding import DecoderSource
from domain.errors import DecodeError, NotFound
from domain.quantity import all_quantities, find_quantity, plausibility, quantity
from domain.reading import Quality, Reading


def _by_name(readings: tuple[Reading, ...]) -> dict[str, Reading]:
    return {reading.quantity: reading for reading in readings}


def _decode(
    registry: CodecRegistry, codec_id: str, f_port: int, hex_payload: str, **metadata: float
) -> dict[str, Reading]:
    outcome = registry.decode(
        codec_id=codec_id,
        f_port=f_port,
        payload=bytes.fromhex(hex_payload),
        network_decoded=None,
        device_metadata=metadata,
    )
    assert outcome.ok, outcome.error
    return _by_name(outcome.readings)


def test_every_builtin_codec_has_a_field_map_naming_only_known_quantities() -> None:
    assert {codec.codec_id for codec in BUILTIN_CODECS} == set(FIELD_MAPS)
    for field_map in [*FIELD_MAPS.values(), GENERIC_MAP]:
        for rule in field_map.rules:
            assert find_quantity(rule.reading) is not None, rule.reading
        for _, name in field_map.channel_prefixes:
            assert find_quantity(name) is not None, name


def test_vocabulary_lookup_and_units() -> None:
    assert quantity("temperature").senml_unit == "Cel"
    assert quantity("relative_humidity").senml_unit == "%RH"
    assert quantity("soil_temperature@depth_3").name == "soil_temperature"
    assert quantity("pm2_5").unit == "µg/m³"
    assert len({q.name for q in all_quantities()}) == len(all_quantities())
    with pytest.raises(NotFound):
        quantity("flux_capacitance")


def test_plausibility_flags_out_of_range_values_and_keeps_them() -> None:
    assert plausibility("relative_humidity", 55.0) is Quality.GOOD
    assert plausibility("relative_humidity", 120.0) is Quality.IMPLAUSIBLE
    assert plausibility("temperature", float("nan")) is Quality.IMPLAUSIBLE
    readings = readings_from(None, {"temperature": 240.5})
    assert readings == (Reading("temperature", 240.5, Quality.IMPLAUSIBLE),)


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("24.59", 24.59),
        ("2799 mm", 2799.0),
        (True, 1.0),
        (False, 0.0),
        (7, 7.0),
        ("No Sensor", None),
        ({"a": 1}, None),
    ],
)
def test_decoded_values_read_as_numbers(raw: object, number: float | None) -> None:
    assert as_number(raw) == number


def test_milesight_ambience_maps_to_vocabulary(registry: CodecRegistry) -> None:
    readings = _decode(registry, "milesight-iot/am307-codec", 85, "077de704087d070009733f27")
    assert readings["co2"] == Reading("co2", 1255.0)
    assert readings["pressure"].value == pytest.approx(1004.7)
    assert "tvoc" not in readings  # unit depends on firmware: stays in the decoded object only


def test_soil_sensors_give_volumetric_water_content_temperature_and_conductivity(
    registry: CodecRegistry,
) -> None:
    smtc = _decode(registry, "milesight-iot/em500-smtc-codec", 85, "01755c03673401046865057ff000")
    assert smtc["soil_moisture"].value == 50.5
    assert smtc["soil_temperature"].value == pytest.approx(30.8)
    assert smtc["soil_conductivity"].value == 240
    lse01 = _decode(registry, "dragino/lse01-codec", 2, "ce2900f107a5099b6e2890")
    assert lse01["soil_moisture"].value == pytest.approx(19.57)
    assert lse01["soil_temperature"].value == pytest.approx(24.59)
    assert lse01["soil_conductivity"].value == 28200


def test_soil_profile_keeps_populated_depths_only(registry: CodecRegistry) -> None:
    readings = _decode(
        registry,
        "decentlab/dl-smtp-codec",
        1,
        "020b50000309018a8c09438a9809278a920b3c8aa50c9c8a8c11e08aa500000000000000000b3b",
    )
    assert readings["soil_temperature@depth_5"].value == pytest.approx(27.25)
    assert "soil_temperature@depth_6" not in readings
    assert "soil_moisture_index@depth_7" not in readings


def test_waste_fill_level_from_distance_and_bin_geometry(registry: CodecRegistry) -> None:
    # distance 0x0320 = 800 mm; sensor 100 mm above the full mark, bin 1000 mm deep -> 30 % full
    readings = _decode(
        registry,
        "milesight-iot/em500-udl-codec",
        85,
        "01755c03822003",
        bin_depth_mm=1000,
        sensor_offset_mm=100,
    )
    assert readings["fill_level"] == Reading("fill_level", pytest.approx(30.0))
    assert readings["distance"].value == 800


@pytest.mark.parametrize(
    ("distance_mm", "fill", "quality"),
    [
        (1100, 0.0, Quality.GOOD),  # empty: distance reaches the bottom
        (100, 100.0, Quality.GOOD),  # full to the mark
        (60, 100.0, Quality.CLAMPED),  # heaped 4 % over the mark
        (1150, 0.0, Quality.CLAMPED),  # a little below the bottom: echo noise
        (2500, 0.0, Quality.IMPLAUSIBLE),  # far beyond the bin: wrong mounting or wrong metadata
    ],
)
def test_fill_level_is_clamped_and_flagged(distance_mm: int, fill: float, quality: Quality) -> None:
    readings = _by_name(
        readings_from(
            "milesight-iot/em310-udl-codec",
            {"distance": distance_mm},
            {"bin_depth_mm": 1000, "sensor_offset_mm": 100},
        )
    )
    assert readings["fill_level"].value == pytest.approx(fill)
    assert readings["fill_level"].quality is quality


def test_no_fill_level_without_bin_depth() -> None:
    assert "fill_level" not in _by_name(readings_from("milesight-iot/em500-udl-codec", {"distance": 500}, {}))


def test_dragino_distance_in_blind_zone_is_suspect_and_so_is_its_fill(registry: CodecRegistry) -> None:
    readings = _decode(registry, "dragino/ldds75-114-codec", 2, "0d3b000a00000001", bin_depth_mm=1000)
    assert readings["distance"] == Reading("distance", 10.0, Quality.SUSPECT)
    assert readings["fill_level"].quality is Quality.SUSPECT


def test_dragino_string_distance_parsed(registry: CodecRegistry) -> None:
    readings = _decode(registry, "dragino/ldds75-114-codec", 2, "0d3b0aef00000001")
    assert readings["distance"] == Reading("distance", 2799.0)
    assert readings["battery_voltage"].value == pytest.approx(3.387)


@pytest.mark.parametrize(
    ("codec_id", "f_port", "hex_payload", "occupied"),
    [
        ("nwave/nps405-codec", 1, "95", 1.0),
        ("nwave/nps405-codec", 2, "00d3d800590b", 0.0),
        ("nwave/nps310sm-codec", 1, "01", 1.0),
        ("bosch/tps110-0292-codec", 1, "00", 0.0),
        ("bosch/tps110-0292-codec", 3, "240300007503000000000000001d020301", 1.0),
    ],
)
def test_parking_occupied_from_every_parking_codec(
    registry: CodecRegistry, codec_id: str, f_port: int, hex_payload: str, occupied: float
) -> None:
    assert _decode(registry, codec_id, f_port, hex_payload)["occupied"] == Reading("occupied", occupied)


def test_water_level_from_pressure_and_from_distance(registry: CodecRegistry) -> None:
    pr26 = _decode(registry, "decentlab/dl-pr26-0-1-codec", 1, "0201670003600060170c7f")
    # 0x6000 -> (24576 - 16384) / 32768 bar = 0.25 bar -> 2.549 m of water
    assert pr26["water_pressure"].value == pytest.approx(0.25)
    assert pr26["water_level"].value == pytest.approx(0.25 * 10.197)
    mbx = _decode(registry, "decentlab/dl-mbx-codec", 1, "02012f000304d200010bb1", sensor_height_mm=3000)
    assert mbx["water_level"].value == pytest.approx(3.0 - 1.234)
    swl = _decode(registry, "milesight-iot/em500-swl-codec", 85, "01755c03770200")
    assert swl["water_level"].value == pytest.approx(0.02)


def test_distance_from_zero_valid_samples_is_suspect() -> None:
    decoded = {"distance": {"value": 1234}, "number_of_valid_samples": {"value": 0}}
    readings = _by_name(readings_from("decentlab/dl-mbx-codec", decoded))
    assert readings["distance"].quality is Quality.SUSPECT


def test_people_counting_per_line_and_in_total(registry: CodecRegistry) -> None:
    vs133 = _decode(registry, "milesight-iot/vs133-codec", 85, "05cc0300040008cc01000200")
    assert vs133["people_in@line_1"].value == 3
    assert vs133["people_out@line_1"].value == 4
    assert vs133["people_out@line_2"].value == 2
    vs350 = _decode(registry, "milesight-iot/vs350-codec", 85, "84cc011108110185cce803e90301")
    assert vs350["people_in"].value == 1000
    assert vs350["people_out"].value == 1001
    vs121 = _decode(registry, "milesight-iot/vs121-codec", 85, "04c903030002")
    assert vs121["people_count"].value == 3


def test_decentlab_particulates_and_pressure_in_hectopascal(registry: CodecRegistry) -> None:
    readings = _decode(
        registry,
        "decentlab/dl-pm-codec",
        1,
        "021b50000f0c25002500270027002701f50107012c012d012d012d67bd618dbd10",
    )
    assert readings["pm2_5"].value == pytest.approx(3.9)
    assert readings["pressure"].value == pytest.approx(968.0)
    assert readings["relative_humidity"].value == pytest.approx(41.632, abs=1e-3)


def test_cayenne_lpp_channels(registry: CodecRegistry) -> None:
    # channel 3 temperature 27.2 °C, channel 5 humidity 45.5 %, channel 6 barometer 1013.2 hPa
    decoded = registry.decode_builtin("cayenne/lpp", 1, bytes.fromhex("0367011005685b06732794"))
    assert decoded == {"temperature_3": 27.2, "relative_humidity_5": 45.5, "barometric_pressure_6": 1013.2}
    readings = _by_name(readings_from("cayenne/lpp", decoded))
    assert readings["temperature@3"].value == pytest.approx(27.2)
    assert readings["pressure@6"].value == pytest.approx(1013.2)


def test_network_object_gets_the_codec_field_map(registry: CodecRegistry) -> None:
    outcome = registry.decode(
        codec_id="dragino/lse01-codec",
        f_port=2,
        payload=b"",
        network_decoded={"Bat": 3.6, "water_SOIL": "31.20", "temp_SOIL": "11.00", "conduct_SOIL": 310},
        preference=(DecoderSource.NETWORK,),
    )
    assert outcome.source is DecoderSource.NETWORK
    assert _by_name(outcome.readings)["soil_moisture"].value == pytest.approx(31.2)


def test_network_object_without_codec_maps_well_known_keys(registry: CodecRegistry) -> None:
    outcome = registry.decode(
        codec_id=None,
        f_port=1,
        payload=b"\x00",
        network_decoded={"temperature": 21.5, "humidity": 40, "odd": "x"},
    )
    assert outcome.ok
    assert _by_name(outcome.readings) == {
        "temperature": Reading("temperature", 21.5),
        "relative_humidity": Reading("relative_humidity", 40.0),
    }
    assert outcome.decoded == {"temperature": 21.5, "humidity": 40, "odd": "x"}  # unmapped keys kept


def test_builtin_failure_falls_back_and_is_reported(registry: CodecRegistry) -> None:
    outcome = registry.decode(
        codec_id="dragino/lse01-codec", f_port=2, payload=b"\x01", network_decoded={"Bat": 3.5}
    )
    assert outcome.source is DecoderSource.NETWORK
    assert outcome.ok
    assert any("LSE01 frame needs 11 bytes" in warning for warning in outcome.warnings)


def test_failures_never_raise_and_name_reason_and_offset(registry: CodecRegistry) -> None:
    outcome = registry.decode(
        codec_id="milesight-iot/am103-codec", f_port=85, payload=bytes.fromhex("0175"), network_decoded=None
    )
    assert not outcome.ok
    assert outcome.error is not None
    assert "needs 1 bytes, 0 left at byte 2" in outcome.error
    unknown = registry.decode(codec_id="acme/nothing", f_port=1, payload=b"\x00", network_decoded=None)
    assert unknown.error is not None
    assert "unknown codec" in unknown.error
    no_port = registry.decode(codec_id="elsys/ers-codec", f_port=None, payload=b"", network_decoded=None)
    assert no_port.error is not None
    assert "no fPort" in no_port.error


def test_codec_list_names_vendor_devices_use_case_and_source(registry: CodecRegistry) -> None:
    listed = {info.codec_id: info for info in registry.codecs()}
    info = listed["nwave/nps405-codec"]
    assert (info.vendor, info.devices, info.use_case, info.source) == (
        "nwave",
        ("nps405sm", "nps405fm"),
        "parking",
        DecoderSource.BUILTIN,
    )
    assert len(listed) == 24


def test_cli_json_shape() -> None:
    result = decode_to_json("elsys/ers-co2-codec", 1, "0100e202290400270506060308")
    assert result["decoded"]["co2"] == 776
    assert {"quantity": "co2", "value": 776.0, "unit": "ppm", "quality": "good"} in result["readings"]
    with pytest.raises(DecodeError, match="unknown codec"):
        decode_to_json("acme/none", 1, "00")
    with pytest.raises(DecodeError, match="not hex"):
        decode_to_json("elsys/ers-codec", 1, "zz")
    with pytest.raises(DecodeError, match="unknown FPort 3"):
        decode_to_json("dragino/lse01-codec", 3, "00")
