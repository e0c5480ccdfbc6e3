"""Stage 2: a decoded object becomes typed readings.

Values that a codec emits as text (Dragino's "24.59", "2799 mm") or as
booleans (parking `occupied`) are read as numbers here, so every source of a
decoded object gives the same readings. A value outside its quantity's
physical range is kept with `Quality.IMPLAUSIBLE`; nothing measured is dropped.
"""

from __future__ import annotations

import math
import re
import sys
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
        return float(value) if abs(value) < 2**1023 else (math.inf if value > 0 else -math.inf)
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


_Rule = tuple[str, tuple[str, ...] | None, str, float, float, float, bool]
"""A `FieldRule` as plain values: first key, the whole path when nested (else None), reading name,
scale, plausible range, and whether the range applies (a name outside the vocabulary has none)."""

_COMPILED: dict[int, tuple[FieldMap, tuple[_Rule, ...]]] = {}


def _compiled(field_map: FieldMap) -> tuple[_Rule, ...]:
    """The rules of a map as plain tuples, made once per map: stage 2 runs for every uplink.

    Keyed by identity with the map kept alongside, so the key cannot be reused
    by another object; maps are frozen, so their rules never change. Bounds are
    kept finite so that one comparison also rejects NaN and infinities, as
    `Quantity.is_plausible` does.
    """
    entry = _COMPILED.get(id(field_map))
    if entry is not None:
        return entry[1]
    rules = tuple(
        (
            rule.path[0],
            rule.path if len(rule.path) > 1 else None,
            rule.reading,
            rule.scale,
            max(rule.quantity.minimum, -_FLOAT_MAX) if rule.quantity is not None else 0.0,
            min(rule.quantity.maximum, _FLOAT_MAX) if rule.quantity is not None else 0.0,
            rule.quantity is not None,
        )
        for rule in field_map.rules
    )
    _COMPILED[id(field_map)] = (field_map, rules)
    return rules


_FLOAT_MAX = sys.float_info.max
_GOOD = Quality.GOOD
_IMPLAUSIBLE = Quality.IMPLAUSIBLE
_FLOAT_LIMIT = 2**1023


def readings_from(
    codec_id: str | None, decoded: JsonObject, metadata: Mapping[str, Any] | None = None
) -> tuple[Reading, ...]:
    field_map = field_map_for(codec_id)
    readings: dict[str, Reading] = {}
    get = decoded.get
    for key, path, name, scale, minimum, maximum, checked in _compiled(field_map):
        raw = get(key) if path is None else _walk(decoded, path)
        # Floats and (float-sized) integers are nearly all values; `as_number` reads the rest.
        if type(raw) is float:
            value: float = raw
        elif type(raw) is int and -_FLOAT_LIMIT < raw < _FLOAT_LIMIT:
            value = float(raw)
        elif raw is None:
            continue
        else:
            number = as_number(raw)
            if number is None:
                continue
            value = number
        if scale != 1.0:
            value *= scale
        # The vocabulary's ranges are finite, so a NaN or infinite value fails the comparison too.
        quality = _GOOD if not checked or minimum <= value <= maximum else _IMPLAUSIBLE
        readings[name] = Reading(name, value, quality)
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
