"""Stage 2: a decoded object becomes typed readings.

Values that a codec emits as text (Dragino's "24.59", "2799 mm") or as
booleans (parking `occupied`) are read as numbers here, so every source of a
decoded object gives the same readings. A value outside its quantity's
physical range is kept with `Quality.IMPLAUSIBLE`; nothing measured is dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from decoders import derivations
from decoders.field_maps import CHANNEL_KEY, FIELD_MAPS, GENERIC_MAP, FieldMap
from domain.quantity import CHANNEL_SEPARATOR, plausibility
from domain.reading import Quality, Reading
from domain.uplink import JsonObject

_LEADING_NUMBER = re.compile(r"\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def as_number(value: object) -> float | None:
    """The numeric meaning of a decoded value, or None when it has none ("No Sensor", objects)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        # JSON integers are unbounded; one too large for a float is certainly out of range.
        return float(value) if abs(value) < 2**1023 else math.copysign(math.inf, value)
    if isinstance(value, str):
        match = _LEADING_NUMBER.match(value)
        return float(match.group(1)) if match else None
    return None


def _walk(decoded: JsonObject, path: tuple[str, ...]) -> object:
    node: object = decoded
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def field_map_for(codec_id: str | None) -> FieldMap:
    if codec_id is None:
        return GENERIC_MAP
    return FIELD_MAPS.get(codec_id, GENERIC_MAP)


def readings_from(
    codec_id: str | None, decoded: JsonObject, metadata: Mapping[str, Any] | None = None
) -> tuple[Reading, ...]:
    field_map = field_map_for(codec_id)
    readings: dict[str, Reading] = {}
    for rule in field_map.rules:
        path = rule.path
        value = as_number(decoded.get(path[0]) if len(path) == 1 else _walk(decoded, path))
        if value is not None:
            scaled = value * rule.scale if rule.scale != 1.0 else value
            bounds = rule.quantity
            quality = Quality.GOOD if bounds is None or bounds.is_plausible(scaled) else Quality.IMPLAUSIBLE
            readings[rule.reading] = Reading(rule.reading, scaled, quality)
    if field_map.channel_prefixes:
        _map_channel_keys(field_map, decoded, readings)
    facts = metadata or {}
    for derive in field_map.derivations:
        derive(decoded, readings, facts)
    for derive in derivations.UNIVERSAL:
        derive(decoded, readings, facts)
    return tuple(readings.values())


def _map_channel_keys(field_map: FieldMap, decoded: JsonObject, readings: dict[str, Reading]) -> None:
    prefixes = dict(field_map.channel_prefixes)
    for key, raw in decoded.items():
        match = CHANNEL_KEY.fullmatch(key)
        if match is None or match["prefix"] not in prefixes:
            continue
        value = as_number(raw)
        if value is not None:
            name = f"{prefixes[match['prefix']]}{CHANNEL_SEPARATOR}{match['channel']}"
            readings[name] = Reading(name, value, plausibility(name, value))
