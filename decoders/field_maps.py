"""Per codec: which decoded key becomes which quantity, in which unit.

Declarative on purpose: a technician adding a device reads one table, and the
same table applies whether the decoded object came from a built-in decoder,
the vendor's JS codec or the network server (their keys are the same by
design). Keys not listed here stay in the decoded object, stored and
queryable; they are simply not typed readings.

A path walks nested objects (`("line_1", "period_in")`, Decentlab's
`("air_temperature", "value")`); `scale` converts into the quantity's unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from decoders import derivations
from decoders.derivations import Derivation
from domain.quantity import Quantity, find_quantity


@dataclass(frozen=True, slots=True)
class FieldRule:
    path: tuple[str, ...]
    reading: str
    scale: float = 1.0
    # Resolved once here rather than per payload: stage 2 runs for every uplink.
    quantity: Quantity | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", find_quantity(self.reading))


@dataclass(frozen=True, slots=True)
class FieldMap:
    rules: tuple[FieldRule, ...]
    derivations: tuple[Derivation, ...] = ()
    # Keys of the form `<prefix>_<channel>` (Cayenne LPP): prefix -> quantity; channel becomes the suffix.
    channel_prefixes: tuple[tuple[str, str], ...] = ()


def _rule(key: str, reading: str, scale: float = 1.0) -> FieldRule:
    return FieldRule(tuple(key.split(".")), reading, scale)


def _decentlab(key: str, reading: str, scale: float = 1.0) -> FieldRule:
    return FieldRule((key, "value"), reading, scale)


_BATTERY = _rule("battery", "battery")
_TEMPERATURE = _rule("temperature", "temperature")
_HUMIDITY = _rule("humidity", "relative_humidity")
_DECENTLAB_BATTERY = _decentlab("battery_voltage", "battery_voltage")
_OCCUPIED = _rule("occupied", "occupied")

_MILESIGHT_DISTANCE = FieldMap((_BATTERY, _rule("distance", "distance")))

_ELSYS = FieldMap(
    (
        _TEMPERATURE,
        _HUMIDITY,
        _rule("light", "light"),
        _rule("motion", "motion"),
        _rule("co2", "co2"),
        _rule("vdd", "battery_voltage", 0.001),
        _rule("pressure", "pressure"),
        _rule("tvoc", "tvoc"),
        _rule("distance", "distance"),
        _rule("soundAvg", "sound_level_avg"),
        _rule("soundPeak", "sound_level_peak"),
        _rule("externalTemperature", "temperature@external"),
        _rule("occupancy", "room_occupancy"),
    )
)

_LSE01 = FieldMap(
    (
        _rule("Bat", "battery_voltage"),
        _rule("water_SOIL", "soil_moisture"),
        _rule("temp_SOIL", "soil_temperature"),
        _rule("conduct_SOIL", "soil_conductivity"),
        _rule("TempC_DS18B20", "temperature@probe"),
    )
)


def _smtp_rules() -> tuple[FieldRule, ...]:
    rules = [_DECENTLAB_BATTERY]
    for depth in range(8):
        rules.append(_decentlab(f"soil_moisture_at_depth_{depth}", f"soil_moisture_index@depth_{depth}"))
        rules.append(_decentlab(f"soil_temperature_at_depth_{depth}", f"soil_temperature@depth_{depth}"))
    return tuple(rules)


def _line_rules() -> tuple[FieldRule, ...]:
    return tuple(
        _rule(f"line_{line}.period_{direction}", f"people_{direction}@line_{line}")
        for line in range(1, 5)
        for direction in ("in", "out")
    )


_AMBIENCE = FieldMap(
    (
        _BATTERY,
        _TEMPERATURE,
        _HUMIDITY,
        _rule("co2", "co2"),
        _rule("pressure", "pressure"),
        _rule("pm2_5", "pm2_5"),
        _rule("pm10", "pm10"),
        _rule("hcho", "formaldehyde"),
        _rule("o3", "ozone"),
        # tvoc is left unmapped: depending on firmware it is ppb or an IAQ index.
    )
)

_NWAVE = FieldMap((_OCCUPIED, _TEMPERATURE, _rule("battery_voltage", "battery_voltage")))

FIELD_MAPS: Final[dict[str, FieldMap]] = {
    "milesight-iot/em500-udl-codec": _MILESIGHT_DISTANCE,
    "milesight-iot/em310-udl-codec": _MILESIGHT_DISTANCE,
    "milesight-iot/em500-smtc-codec": FieldMap(
        (
            _BATTERY,
            _rule("temperature", "soil_temperature"),
            _rule("humidity", "soil_moisture"),
            _rule("conductivity", "soil_conductivity"),
        )
    ),
    "milesight-iot/em500-swl-codec": FieldMap((_BATTERY, _rule("level", "water_level", 0.01))),
    "milesight-iot/am103-codec": _AMBIENCE,
    "milesight-iot/am307-codec": _AMBIENCE,
    "milesight-iot/vs121-codec": FieldMap((_rule("people_counter_all", "people_count"),)),
    "milesight-iot/vs133-codec": FieldMap(_line_rules()),
    "milesight-iot/vs350-codec": FieldMap(
        (
            _BATTERY,
            _TEMPERATURE,
            _rule("period_in", "people_in"),
            _rule("period_out", "people_out"),
        )
    ),
    "decentlab/dl-smtp-codec": FieldMap(_smtp_rules(), (derivations.unpopulated_depths,)),
    "decentlab/dl-pm-codec": FieldMap(
        (
            _DECENTLAB_BATTERY,
            _decentlab("pm1_0_mass_concentration", "pm1"),
            _decentlab("pm2_5_mass_concentration", "pm2_5"),
            _decentlab("pm4_mass_concentration", "pm4"),
            _decentlab("pm10_mass_concentration", "pm10"),
            _decentlab("air_temperature", "temperature"),
            _decentlab("air_humidity", "relative_humidity"),
            _decentlab("barometric_pressure", "pressure", 0.01),
        )
    ),
    "decentlab/dl-pr26-0-1-codec": FieldMap(
        (
            _DECENTLAB_BATTERY,
            _decentlab("pressure", "water_pressure"),
            _decentlab("temperature", "temperature"),
        ),
        (derivations.water_level_from_pressure,),
    ),
    "decentlab/dl-mbx-codec": FieldMap(
        (_DECENTLAB_BATTERY, _decentlab("distance", "distance")),
        (derivations.distance_without_valid_samples,),
    ),
    "elsys/ers-codec": _ELSYS,
    "elsys/ers-co2-codec": _ELSYS,
    "elsys/ers-eye-codec": _ELSYS,
    "dragino/ldds75-codec": FieldMap(
        (_rule("Bat", "battery_voltage"), _rule("distance", "distance")),
        (derivations.distance_in_blind_zone,),
    ),
    "dragino/ldds75-114-codec": FieldMap(
        # The DS18B20 probe is an optional accessory that reads 0.00 when absent: not mapped.
        (_rule("Bat", "battery_voltage"), _rule("Distance", "distance")),
        (derivations.distance_in_blind_zone,),
    ),
    "dragino/lse01-codec": _LSE01,
    "dragino/lse01-114-codec": _LSE01,
    "nwave/nps405-codec": _NWAVE,
    "nwave/nps310sm-codec": _NWAVE,
    "bosch/tps110-0292-codec": FieldMap((_OCCUPIED, _TEMPERATURE)),
    "cayenne/lpp": FieldMap(
        (),
        channel_prefixes=(
            ("temperature", "temperature"),
            ("relative_humidity", "relative_humidity"),
            ("barometric_pressure", "pressure"),
            ("luminosity", "light"),
        ),
    ),
}

# For a decoded object without a known codec (the network server decoded it with a formatter
# we do not know): the keys that mean the same thing in nearly every codec.
GENERIC_MAP: Final = FieldMap(
    (
        _TEMPERATURE,
        _HUMIDITY,
        _rule("relative_humidity", "relative_humidity"),
        _BATTERY,
        _rule("battery_voltage", "battery_voltage"),
        _rule("co2", "co2"),
        _rule("pressure", "pressure"),
        _rule("distance", "distance"),
        _OCCUPIED,
    )
)

CHANNEL_KEY = re.compile(r"(?P<prefix>[a-z_]+?)_(?P<channel>\d+)")
