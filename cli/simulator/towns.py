"""The demo's three towns of the regiopolREGION: places, streets, parking zones and gateway sites.

Places are real streets and squares of Paderborn, Lippstadt and Bad Driburg with
approximate coordinates, so that maps in the dashboards look right. Every town has
gateway sites on both network servers (The Things Stack and ChirpStack v4).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from domain.uplink import NetworkServer

# Fixed so that ChirpStack tenant, application and profile ids are the same on every run.
ID_NAMESPACE = uuid.UUID("6b1f3c52-8f0e-4f0a-9a53-3d7f1e0c2b41")


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class GatewaySite:
    name: str
    latitude: float
    longitude: float
    altitude_m: float
    network_server: NetworkServer


@dataclass(frozen=True, slots=True)
class Town:
    """A municipality of the demo: where it is, its streets, parking zones and gateway sites."""

    slug: str
    name: str
    latitude: float
    longitude: float
    radius_m: float
    streets: tuple[str, ...]
    parking_zones: tuple[Place, ...]
    gateway_sites: tuple[GatewaySite, ...]
    waterbody: str

    @property
    def chirpstack_tenant_id(self) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"tenant/{self.slug}"))

    @property
    def chirpstack_tenant_name(self) -> str:
        return f"Stadt {self.name}"


_TTS = NetworkServer.TTS
_CS = NetworkServer.CHIRPSTACK_V4

TOWNS: tuple[Town, ...] = (
    Town(
        slug="paderborn",
        name="Paderborn",
        latitude=51.7191,
        longitude=8.7544,
        radius_m=1800.0,
        streets=(
            "Westernstraße",
            "Kamp",
            "Marienplatz",
            "Rathausplatz",
            "Liboriberg",
            "Neuhäuser Straße",
            "Detmolder Straße",
            "Riemekestraße",
            "Warburger Straße",
            "Heiersstraße",
            "Grube",
            "Königstraße",
        ),
        parking_zones=(
            Place("Rathausplatz", 51.71830, 8.75300),
            Place("Le-Mans-Wall", 51.71550, 8.75070),
            Place("Maspernplatz", 51.72070, 8.74750),
        ),
        gateway_sites=(
            GatewaySite("Rathaus", 51.71850, 8.75320, 132.0, _TTS),
            GatewaySite("Universität", 51.70700, 8.77100, 148.0, _TTS),
            GatewaySite("Kaukenberg", 51.70100, 8.74000, 160.0, _TTS),
            GatewaySite("Dom", 51.71840, 8.75530, 170.0, _CS),
            GatewaySite("Schloß Neuhaus", 51.74500, 8.72300, 105.0, _CS),
            GatewaySite("Stadtwerke Elsen", 51.73300, 8.69000, 110.0, _CS),
        ),
        waterbody="Pader",
    ),
    Town(
        slug="lippstadt",
        name="Lippstadt",
        latitude=51.6738,
        longitude=8.3446,
        radius_m=1400.0,
        streets=(
            "Lange Straße",
            "Marktplatz",
            "Cappelstraße",
            "Bahnhofstraße",
            "Soeststraße",
            "Erwitter Straße",
            "Konrad-Adenauer-Ring",
            "Rathausstraße",
            "Kahlenstraße",
        ),
        parking_zones=(
            Place("Marktplatz", 51.67330, 8.34500),
            Place("Bahnhofstraße", 51.67020, 8.34400),
        ),
        gateway_sites=(
            GatewaySite("Rathaus", 51.67410, 8.34490, 80.0, _TTS),
            GatewaySite("Cappel", 51.68400, 8.32000, 82.0, _TTS),
            GatewaySite("Hochschule", 51.66970, 8.36160, 85.0, _CS),
            GatewaySite("Lipperode", 51.69200, 8.38000, 81.0, _CS),
        ),
        waterbody="Lippe",
    ),
    Town(
        slug="bad-driburg",
        name="Bad Driburg",
        latitude=51.7335,
        longitude=9.0200,
        radius_m=1100.0,
        streets=(
            "Lange Straße",
            "Brunnenstraße",
            "Mühlenstraße",
            "Dringenberger Straße",
            "Am Rathausplatz",
            "Hinter dem Kurpark",
            "Caspar-Heinrich-Straße",
        ),
        parking_zones=(
            Place("Lange Straße", 51.73380, 9.01950),
            Place("Kurpark", 51.72900, 9.02500),
        ),
        gateway_sites=(
            GatewaySite("Rathaus", 51.73360, 9.02100, 210.0, _TTS),
            GatewaySite("Iburg", 51.72300, 9.00500, 350.0, _TTS),
            GatewaySite("Gräflicher Park", 51.72850, 9.02550, 215.0, _CS),
            GatewaySite("Gewerbegebiet Nord", 51.73900, 9.03500, 225.0, _CS),
        ),
        waterbody="Regenrückhaltebecken",
    ),
)


def offset_position(latitude: float, longitude: float, north_m: float, east_m: float) -> tuple[float, float]:
    """A point the given metres north and east of another (flat-earth; fine within a town)."""
    new_latitude = latitude + north_m / 111_320.0
    new_longitude = longitude + east_m / (111_320.0 * math.cos(math.radians(latitude)))
    return round(new_latitude, 6), round(new_longitude, 6)


def distance_m(lat_a: float, lon_a: float, lat_b: float, lon_b: float) -> float:
    north = (lat_b - lat_a) * 111_320.0
    east = (lon_b - lon_a) * 111_320.0 * math.cos(math.radians((lat_a + lat_b) / 2.0))
    return math.hypot(north, east)
