"""The controlled vocabulary of what lorakom measures, with units and physical ranges.

Why a closed list: a reading row carries only a quantity name, so every consumer
(storage, API, dashboards) must agree on what `temperature` means and in which
unit it is stored. Decoders convert into these units; nothing downstream
converts again.

Units are written as people read them (`unit`) and, where RFC 8428 / RFC 8798
register one, as the SenML unit symbol (`senml_unit`) so that exports can be
SenML without a lookup table of their own.

The range is a *physical* plausibility window, wide on purpose: a value outside
it is a sensor or decoding fault, not an unusual day. Such values are kept with a
quality flag (see `domain.reading.Quality`), never dropped.

Several sensors of one device measuring the same quantity (soil temperature at
eight depths, four counting lines) are told apart by a channel suffix after
`CHANNEL_SEPARATOR` (`soil_temperature@depth_3`); the part before it is always a
name from this vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from domain.errors import NotFound
from domain.reading import Quality

CHANNEL_SEPARATOR = "@"


@dataclass(frozen=True, slots=True)
class Quantity:
    name: str
    unit: str
    minimum: float
    maximum: float
    description: str
    senml_unit: str | None = None

    def is_plausible(self, value: float) -> bool:
        return math.isfinite(value) and self.minimum <= value <= self.maximum

    def channel(self, channel: str) -> str:
        """The reading name for one of several sensors of this quantity on a device."""
        return f"{self.name}{CHANNEL_SEPARATOR}{channel}"


_VOCABULARY: tuple[Quantity, ...] = (
    # climate
    Quantity("temperature", "°C", -60.0, 100.0, "air, water or device temperature", "Cel"),
    Quantity("relative_humidity", "%RH", 0.0, 100.0, "relative humidity of air", "%RH"),
    Quantity("pressure", "hPa", 300.0, 1100.0, "barometric air pressure", "hPa"),
    Quantity("light", "lx", 0.0, 200_000.0, "illuminance", "lx"),
    # air quality
    Quantity("co2", "ppm", 0.0, 40_000.0, "carbon dioxide concentration", "ppm"),
    Quantity("tvoc", "ppb", 0.0, 60_000.0, "total volatile organic compounds"),
    Quantity("pm1", "µg/m³", 0.0, 1000.0, "particulate matter up to 1 µm, mass", "ug/m3"),
    Quantity("pm2_5", "µg/m³", 0.0, 1000.0, "particulate matter up to 2.5 µm, mass", "ug/m3"),
    Quantity("pm4", "µg/m³", 0.0, 1000.0, "particulate matter up to 4 µm, mass", "ug/m3"),
    Quantity("pm10", "µg/m³", 0.0, 1000.0, "particulate matter up to 10 µm, mass", "ug/m3"),
    Quantity("formaldehyde", "mg/m³", 0.0, 10.0, "formaldehyde (HCHO) concentration"),
    Quantity("ozone", "ppm", 0.0, 10.0, "ozone concentration", "ppm"),
    Quantity("sound_level_avg", "dB", 0.0, 140.0, "average sound pressure level", "dB"),
    Quantity("sound_level_peak", "dB", 0.0, 160.0, "peak sound pressure level", "dB"),
    # soil and trees
    Quantity("soil_moisture", "%", 0.0, 100.0, "volumetric water content of soil", "%"),
    Quantity(
        "soil_moisture_index", "1", -5.0, 130.0, "probe-specific soil moisture value, not yet volumetric"
    ),
    Quantity("soil_temperature", "°C", -40.0, 60.0, "temperature in the soil", "Cel"),
    Quantity("soil_conductivity", "µS/cm", 0.0, 50_000.0, "electrical conductivity of soil"),
    # waste and distance
    Quantity("distance", "mm", 0.0, 20_000.0, "distance from the sensor to a surface", "mm"),
    Quantity("fill_level", "%", 0.0, 100.0, "how full a container is", "%"),
    # water
    Quantity("water_level", "m", -1.0, 100.0, "water column above the sensor or gauge zero", "m"),
    Quantity("water_pressure", "bar", -1.0, 100.0, "hydrostatic pressure at the sensor", "bar"),
    # parking and occupancy
    Quantity("occupied", "1", 0.0, 1.0, "space occupied (1) or free (0)"),
    Quantity("room_occupancy", "1", 0.0, 2.0, "room state: 0 free, 1 pending, 2 occupied"),
    # counting
    Quantity("people_count", "count", 0.0, 10_000.0, "people present in the field of view", "count"),
    Quantity("people_in", "count", 0.0, 65_535.0, "people crossing inwards since the last report", "count"),
    Quantity("people_out", "count", 0.0, 65_535.0, "people crossing outwards since the last report", "count"),
    Quantity("motion", "count", 0.0, 65_535.0, "motion detections since the last report", "count"),
    # device health
    Quantity("battery", "%", 0.0, 100.0, "remaining battery charge", "%EL"),
    Quantity("battery_voltage", "V", 0.0, 15.0, "battery or supply voltage", "V"),
)

_BY_NAME: dict[str, Quantity] = {quantity.name: quantity for quantity in _VOCABULARY}


def all_quantities() -> tuple[Quantity, ...]:
    return _VOCABULARY


def find_quantity(reading_name: str) -> Quantity | None:
    """The quantity of a reading name, with or without a channel suffix; None if unknown."""
    base, _, _ = reading_name.partition(CHANNEL_SEPARATOR)
    return _BY_NAME.get(base)


def quantity(reading_name: str) -> Quantity:
    """Like `find_quantity`, for names that must exist (raises NotFound otherwise)."""
    found = find_quantity(reading_name)
    if found is None:
        raise NotFound(f"unknown quantity {reading_name!r}")
    return found


def plausibility(reading_name: str, value: float) -> Quality:
    """GOOD inside the quantity's physical range, IMPLAUSIBLE outside (or not finite).

    A name outside the vocabulary has no range to judge by and counts as GOOD;
    the field-map tests make sure no built-in map produces such a name.
    """
    found = find_quantity(reading_name)
    if found is None or found.is_plausible(value):
        return Quality.GOOD
    return Quality.IMPLAUSIBLE
