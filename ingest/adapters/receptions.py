"""What every adapter does the same way to the gateways that heard a frame."""

from __future__ import annotations

import re
from collections.abc import Iterable

from domain.ids import GatewayId
from domain.uplink import JsonObject, Location, Reception
from ingest.adapters.construct import new_location
from ingest.adapters.json_fields import CACHE_LIMIT, child, gateway_id, number

_EUI = re.compile(r"[0-9a-f]{16}")

_CACHEABLE_ID_LENGTH = 128
_GATEWAYS: dict[str, tuple[GatewayId, str | None]] = {}
_LOCATIONS: dict[tuple[float, float, float], Location] = {}
"""Gateways stand still, so their positions repeat; `Location` is frozen, so one instance serves all."""


def eui_or_none(gateway: GatewayId) -> str | None:
    """The gateway's EUI when its normalised id is one; TTS gateways may have chosen names instead."""
    return gateway if _EUI.fullmatch(gateway) else None


def gateway_and_eui(value: str, path: str) -> tuple[GatewayId, str | None]:
    """`gateway_id` and `eui_or_none` of a gateway id as received, memoised by that spelling.

    A fleet's few gateways hear every uplink, so each spelling is normalised
    once. Only successes are kept, so a rejection always names this call's path;
    a full memo is emptied, not trimmed (see `json_fields.dev_eui`).
    """
    known = _GATEWAYS.get(value)
    if known is not None:
        return known
    gateway = gateway_id(value, path)
    found = (gateway, eui_or_none(gateway))
    if len(value) <= _CACHEABLE_ID_LENGTH:
        if len(_GATEWAYS) >= CACHE_LIMIT:
            _GATEWAYS.clear()
        _GATEWAYS[value] = found
    return found


def location_or_none(
    latitude: float | None, longitude: float | None, altitude: float | None
) -> Location | None:
    """A gateway position, or None for "not known".

    Servers that omit zero values turn an unset position into `{}` or into
    (0, 0); nobody runs a LoRaWAN gateway at 0°N 0°E, so both mean unknown.
    """
    if not latitude and not longitude:
        return None
    return new_location(latitude or 0.0, longitude or 0.0, altitude)


def location_in(obj: JsonObject, key: str, parent: str) -> Location | None:
    """A `{latitude, longitude, altitude}` object, as all three servers write positions in JSON.

    Positions are floats in practice; those are read directly, and anything
    else (integers, missing keys, wrong types) takes the checked reads, which
    convert or reject with the field's path.
    """
    position = obj.get(key)
    if type(position) is dict:
        latitude = position.get("latitude")
        longitude = position.get("longitude")
        altitude = position.get("altitude")
        if (
            type(latitude) is float
            and type(longitude) is float
            and (altitude is None or type(altitude) is float)
        ):
            if not latitude and not longitude:
                return None
            if not altitude:
                # 0.0 and -0.0 are one dict key but two altitudes: build those rather than share one.
                return new_location(latitude or 0.0, longitude or 0.0, altitude)
            place = (latitude, longitude, altitude)
            known = _LOCATIONS.get(place)
            if known is None:
                known = new_location(latitude or 0.0, longitude or 0.0, altitude)
                if len(_LOCATIONS) >= CACHE_LIMIT:
                    _LOCATIONS.clear()
                _LOCATIONS[place] = known
            return known
    return _checked_location_in(obj, key, parent)


def _checked_location_in(obj: JsonObject, key: str, parent: str) -> Location | None:
    position = child(obj, key, parent)
    if not position:
        return None
    path = f"{parent}.{key}" if parent else key
    return location_or_none(
        number(position, "latitude", path),
        number(position, "longitude", path),
        number(position, "altitude", path),
    )


def one_per_antenna(receptions: Iterable[tuple[Reception, bool]]) -> tuple[Reception, ...]:
    """Keep one reception per (gateway, antenna), preferring a direct one over a relayed one.

    A frame heard by a gateway and also relayed by Packet Broker names the same
    gateway twice once ids are normalised, and the stored reception's key is
    (uplink, gateway, antenna). The flag says whether a reception came through a
    relay, which is the one to drop when both are present.
    """
    kept: dict[tuple[str, int], tuple[Reception, bool]] = {}
    for reception, relayed in receptions:
        slot = (reception.gateway_id, reception.antenna)
        earlier = kept.get(slot)
        if earlier is None or (earlier[1] and not relayed):
            kept[slot] = (reception, relayed)
    return tuple(reception for reception, _ in kept.values())


def distinct_antennas(receptions: list[Reception], relayed: list[bool]) -> tuple[Reception, ...]:
    """`one_per_antenna` of parallel lists, skipping its work when no (gateway, antenna) repeats.

    That is the usual case (one gateway, or several distinct ones), and then
    every reception is kept in order whatever the relay flags say.
    """
    count = len(receptions)
    if count == 1:
        return (receptions[0],)
    if count == 2:
        first, second = receptions
        if first.gateway_id != second.gateway_id or first.antenna != second.antenna:
            return (first, second)
    elif len({(reception.gateway_id, reception.antenna) for reception in receptions}) == count:
        return tuple(receptions)
    return one_per_antenna(zip(receptions, relayed, strict=True))
