"""What every adapter does the same way to the gateways that heard a frame."""

from __future__ import annotations

import re
from collections.abc import Iterable

from domain.ids import GatewayId
from domain.uplink import JsonObject, Location, Reception
from ingest.adapters.json_fields import child, number

_EUI = re.compile(r"[0-9a-f]{16}")


def eui_or_none(gateway: GatewayId) -> str | None:
    """The gateway's EUI when its normalised id is one; TTS gateways may have chosen names instead."""
    return gateway if _EUI.fullmatch(gateway) else None


def location_or_none(
    latitude: float | None, longitude: float | None, altitude: float | None
) -> Location | None:
    """A gateway position, or None for "not known".

    Servers that omit zero values turn an unset position into `{}` or into
    (0, 0); nobody runs a LoRaWAN gateway at 0°N 0°E, so both mean unknown.
    """
    if not latitude and not longitude:
        return None
    return Location(latitude=latitude or 0.0, longitude=longitude or 0.0, altitude_m=altitude)


def location_in(obj: JsonObject, key: str, parent: str) -> Location | None:
    """A `{latitude, longitude, altitude}` object, as all three servers write positions in JSON."""
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
