"""Use-case values that need more than one field, or facts about the installation.

A derivation sees the decoded object, the readings mapped so far (by reading
name) and the device's metadata, and adds or re-qualifies readings in place.
Installation facts live in device metadata because the sensor cannot know them:

- `bin_depth_mm`: depth of a waste container from its full mark to the bottom;
- `sensor_offset_mm`: distance from the sensor down to the full mark (default 0);
- `sensor_height_mm`: height of a downward-looking level sensor above the gauge zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from domain.quantity import plausibility
from domain.reading import Quality, Reading
from domain.uplink import JsonObject

Derivation = Callable[[JsonObject, dict[str, Reading], Mapping[str, Any]], None]

# How far (in % of the bin depth) a raw fill value may leave 0..100 before it is a fault, not noise:
# rubbish heaped above the rim or a sensor seeing the bin floor through a gap.
FILL_IMPLAUSIBLE_MARGIN_PERCENT = 25.0

# Metres of water column per bar of hydrostatic pressure (fresh water, standard gravity).
METRES_OF_WATER_PER_BAR = 10.197

# Dragino documents 0 mm as "no probe" and anything under 20 mm as inside the blind zone.
DRAGINO_BLIND_ZONE_MM = 20


def _metadata_number(metadata: Mapping[str, Any], key: str) -> float | None:
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _inherited(source: Reading, computed: Quality) -> Quality:
    """A derived value is never more trustworthy than the measurement it comes from."""
    return source.quality if source.quality is not Quality.GOOD else computed


def fill_level_from_distance(
    decoded: JsonObject, readings: dict[str, Reading], metadata: Mapping[str, Any]
) -> None:
    distance = readings.get("distance")
    if distance is None:
        return
    depth = _metadata_number(metadata, "bin_depth_mm")
    if depth is None or depth <= 0:
        return
    offset = _metadata_number(metadata, "sensor_offset_mm") or 0.0
    raw = 100.0 * (offset + depth - distance.value) / depth
    clamped = min(max(raw, 0.0), 100.0)
    if clamped == raw:
        quality = Quality.GOOD
    elif -FILL_IMPLAUSIBLE_MARGIN_PERCENT <= raw <= 100.0 + FILL_IMPLAUSIBLE_MARGIN_PERCENT:
        quality = Quality.CLAMPED
    else:
        quality = Quality.IMPLAUSIBLE
    readings["fill_level"] = Reading("fill_level", clamped, _inherited(distance, quality))


def water_level_from_distance(
    decoded: JsonObject, readings: dict[str, Reading], metadata: Mapping[str, Any]
) -> None:
    distance = readings.get("distance")
    if distance is None:
        return
    height = _metadata_number(metadata, "sensor_height_mm")
    if height is None or "water_level" in readings:
        return
    _add_checked(readings, "water_level", (height - distance.value) / 1000, distance)


def water_level_from_pressure(
    decoded: JsonObject, readings: dict[str, Reading], metadata: Mapping[str, Any]
) -> None:
    pressure = readings.get("water_pressure")
    if pressure is not None:
        _add_checked(readings, "water_level", pressure.value * METRES_OF_WATER_PER_BAR, pressure)


def _add_checked(readings: dict[str, Reading], name: str, value: float, source: Reading) -> None:
    readings[name] = Reading(name, value, _inherited(source, plausibility(name, value)))


def _mark_suspect(readings: dict[str, Reading], name: str) -> None:
    reading = readings.get(name)
    if reading is not None and reading.quality is Quality.GOOD:
        readings[name] = Reading(name, reading.value, Quality.SUSPECT)


def distance_without_valid_samples(
    decoded: JsonObject, readings: dict[str, Reading], metadata: Mapping[str, Any]
) -> None:
    """DL-MBX: a distance averaged over zero valid samples is no measurement."""
    samples = decoded.get("number_of_valid_samples")
    if isinstance(samples, dict) and samples.get("value") == 0:
        _mark_suspect(readings, "distance")


def distance_in_blind_zone(
    decoded: JsonObject, readings: dict[str, Reading], metadata: Mapping[str, Any]
) -> None:
    distance = readings.get("distance")
    if distance is not None and distance.value < DRAGINO_BLIND_ZONE_MM:
        _mark_suspect(readings, "distance")


def unpopulated_depths(
    decoded: JsonObject, readings: dict[str, Reading], metadata: Mapping[str, Any]
) -> None:
    """DL-SMTP: a depth without a probe reads raw 0 (moisture -5, temperature -327.68); no reading then."""
    for depth in range(8):
        moisture = readings.get(f"soil_moisture_index@depth_{depth}")
        temperature = readings.get(f"soil_temperature@depth_{depth}")
        if (
            moisture is not None
            and temperature is not None
            and moisture.value == -5
            and temperature.value == -327.68
        ):
            del readings[f"soil_moisture_index@depth_{depth}"]
            del readings[f"soil_temperature@depth_{depth}"]


UNIVERSAL: tuple[Derivation, ...] = (fill_level_from_distance, water_level_from_distance)
