"""Decentlab protocol version 2 payloads (DL-SMTP, DL-PM, DL-PR26, DL-MBX).

Header: protocol version (must be 2), device id (uint16 BE), sensor flags
(uint16 BE). For each sensor group whose flag bit is set, the group's fixed
number of 16-bit BE words follows, in the device's group order. A device is
therefore fully described by its list of groups; one parser serves them all.

Each value is emitted as `{displayName, unit?, value}` like the vendor decoders.
Quantities without a unit (number concentrations, the DL-SMTP moisture scale)
carry no `unit` key. Trailing bytes after the last announced group are
ignored, as the vendor decoders do; a body shorter than the flags announce is
a `DecodeError` at the first missing word. The fPort is not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from decoders.codec import BuiltinCodec, DecodeFunction, require_bytes
from domain.errors import DecodeError
from domain.uplink import JsonObject
from domain.use_case import CodecUseCase

_HEADER_SIZE = 5


@dataclass(frozen=True, slots=True)
class _Value:
    key: str
    display_name: str
    unit: str | None
    convert: Callable[[Sequence[int]], float]


@dataclass(frozen=True, slots=True)
class _Group:
    word_count: int
    values: tuple[_Value, ...]


def _word(index: int, scale: Callable[[float], float]) -> Callable[[Sequence[int]], float]:
    return lambda words: scale(words[index])


_BATTERY = _Group(1, (_Value("battery_voltage", "Battery voltage", "V", _word(0, lambda w: w / 1000)),))


def _decoder(groups: tuple[_Group, ...]) -> DecodeFunction:
    def decode(f_port: int, payload: bytes) -> JsonObject:
        require_bytes(payload, 0, _HEADER_SIZE, "Decentlab header")
        if payload[0] != 2:
            raise DecodeError(f"protocol version {payload[0]} doesn't match v2", 0)
        flags = payload[3] << 8 | payload[4]
        out: JsonObject = {"protocol_version": 2, "device_id": payload[1] << 8 | payload[2]}
        at = _HEADER_SIZE
        for bit, group in enumerate(groups):
            if not flags >> bit & 1:
                continue
            size = 2 * group.word_count
            require_bytes(payload, at, size, f"sensor group {bit}")
            words = [payload[i] << 8 | payload[i + 1] for i in range(at, at + size, 2)]
            at += size
            for value in group.values:
                item: JsonObject = {"displayName": value.display_name, "value": value.convert(words)}
                if value.unit is not None:
                    item["unit"] = value.unit
                out[value.key] = item
        return out

    return decode


def _soil_profile() -> _Group:
    values: list[_Value] = []
    for depth in range(8):
        values.append(
            _Value(
                f"soil_moisture_at_depth_{depth}",
                f"Soil moisture at depth {depth}",
                None,
                _word(2 * depth, lambda w: (w - 2500) / 500),
            )
        )
        values.append(
            _Value(
                f"soil_temperature_at_depth_{depth}",
                f"Soil temperature at depth {depth}",
                "°C",
                _word(2 * depth + 1, lambda w: (w - 32768) / 100),
            )
        )
    return _Group(16, tuple(values))


_MASS = "µg⋅m⁻³"
_NUMBER = "1⋅cm⁻³"


def _particulate_matter() -> _Group:
    def tenth(key: str, name: str, unit: str | None, index: int) -> _Value:
        return _Value(key, name, unit, _word(index, lambda w: w / 10))

    return _Group(
        10,
        (
            tenth("pm1_0_mass_concentration", "PM1.0 mass concentration", _MASS, 0),
            tenth("pm2_5_mass_concentration", "PM2.5 mass concentration", _MASS, 1),
            tenth("pm4_mass_concentration", "PM4 mass concentration", _MASS, 2),
            tenth("pm10_mass_concentration", "PM10 mass concentration", _MASS, 3),
            _Value("typical_particle_size", "Typical particle size", "nm", _word(4, lambda w: w)),
            tenth("pm0_5_number_concentration", "PM0.5 number concentration", _NUMBER, 5),
            tenth("pm1_0_number_concentration", "PM1.0 number concentration", _NUMBER, 6),
            tenth("pm2_5_number_concentration", "PM2.5 number concentration", _NUMBER, 7),
            tenth("pm4_number_concentration", "PM4 number concentration", _NUMBER, 8),
            tenth("pm10_number_concentration", "PM10 number concentration", _NUMBER, 9),
        ),
    )


_AIR = _Group(
    2,
    (
        _Value("air_temperature", "Air temperature", "°C", _word(0, lambda w: 175.72 * w / 65536 - 46.85)),
        _Value("air_humidity", "Air humidity", "%", _word(1, lambda w: 125 * w / 65536 - 6)),
    ),
)
_BAROMETER = _Group(
    1, (_Value("barometric_pressure", "Barometric pressure", "Pa", _word(0, lambda w: w * 2)),)
)


def _pressure_range(minimum_bar: float, maximum_bar: float) -> _Group:
    """DL-PR26 group 0; the codec id fixes the probe's range, so it is a parameter here."""
    span = maximum_bar - minimum_bar
    return _Group(
        2,
        (
            _Value(
                "pressure", "Pressure", "bar", _word(0, lambda w: (w - 16384) / 32768 * span + minimum_bar)
            ),
            _Value("temperature", "Temperature", "°C", _word(1, lambda w: (w - 384) * 0.003125 - 50)),
        ),
    )


_DISTANCE = _Group(
    2,
    (
        _Value("distance", "Distance", "mm", _word(0, lambda w: w)),
        _Value("number_of_valid_samples", "Number of valid samples", None, _word(1, lambda w: w)),
    ),
)


def _codec(codec: str, device: str, use_case: CodecUseCase, groups: tuple[_Group, ...]) -> BuiltinCodec:
    return BuiltinCodec(f"decentlab/{codec}", (device,), use_case, _decoder(groups))


CODECS: tuple[BuiltinCodec, ...] = (
    _codec("dl-smtp-codec", "dl-smtp", CodecUseCase.SOIL, (_soil_profile(), _BATTERY)),
    _codec(
        "dl-pm-codec", "dl-pm", CodecUseCase.ENVIRONMENT, (_BATTERY, _particulate_matter(), _AIR, _BAROMETER)
    ),
    _codec("dl-pr26-0-1-codec", "dl-pr26", CodecUseCase.WATER, (_pressure_range(0.0, 1.0), _BATTERY)),
    _codec("dl-mbx-codec", "dl-mbx", CodecUseCase.WATER, (_DISTANCE, _BATTERY)),
)
