"""The demo's devices and gateways in three towns of the regiopolREGION, made reproducibly from a seed.

Places are real streets and squares of Paderborn, Lippstadt and Bad Driburg with
approximate coordinates, so that maps in the dashboards look right. Every town has
gateways on both network servers (The Things Stack and ChirpStack v4); each device is
attached to one of them, and only that server's gateways can hear it. A few devices per
town are left unregistered to show how the platform parks unclaimed uplinks.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from domain.ids import DevEui, parse_dev_eui
from domain.uplink import NetworkServer
from domain.use_case import UseCase

DEFAULT_SEED = 2024
DEFAULT_DEVICES_PER_TOWN = 24

# Fixed so that ChirpStack tenant, application and profile ids are the same on every run.
_ID_NAMESPACE = uuid.UUID("6b1f3c52-8f0e-4f0a-9a53-3d7f1e0c2b41")


SIMULATED_USE_CASES: tuple[UseCase, ...] = (
    UseCase.PARKING,
    UseCase.WASTE,
    UseCase.SOIL,
    UseCase.ENVIRONMENT,
)
"""The use cases the demo fleet has devices of: every one but `other`."""


CODECS_BY_USE_CASE: dict[UseCase, tuple[str, ...]] = {
    UseCase.PARKING: ("nwave/nps405-codec", "bosch/tps110-0292-codec"),
    UseCase.WASTE: (
        "dragino/ldds75-codec",
        "milesight-iot/em310-udl-codec",
        "milesight-iot/em500-udl-codec",
    ),
    UseCase.SOIL: ("dragino/lse01-codec", "decentlab/dl-smtp-codec", "milesight-iot/em500-smtc-codec"),
    UseCase.ENVIRONMENT: (
        "elsys/ers-co2-codec",
        "milesight-iot/am307-codec",
        "decentlab/dl-pm-codec",
        "milesight-iot/em500-swl-codec",
    ),
}

# How often each kind of device reports, in seconds of simulated time; the platform uses it
# to tell a quiet device from a dead one. Parking sensors report changes at once and send a
# heartbeat at this interval.
EXPECTED_INTERVAL_S: dict[UseCase, int] = {
    UseCase.PARKING: 3600,
    UseCase.WASTE: 3600,
    UseCase.SOIL: 1800,
    UseCase.ENVIRONMENT: 600,
}
_WATER_LEVEL_INTERVAL_S = 900

# A fixed prefix per vendor, so that a device's maker shows in an EUI list as it does in the field.
_EUI_PREFIX_BY_VENDOR = {
    "milesight-iot": "24e124",
    "dragino": "a84041",
    "elsys": "a81758fffe",
    "decentlab": "70b3d57ba0",
    "nwave": "",
    "bosch": "",
}

_APPLICATION_NAMES = {
    UseCase.PARKING: "Parken",
    UseCase.WASTE: "Abfall",
    UseCase.SOIL: "Stadtbäume",
    UseCase.ENVIRONMENT: "Umwelt",
}

_TTS_TENANT = "regiopol"

_VENDOR_NAMES = {
    "milesight-iot": "Milesight",
    "dragino": "Dragino",
    "elsys": "Elsys",
    "decentlab": "Decentlab",
    "nwave": "Nwave",
    "bosch": "Bosch",
}


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
        return str(uuid.uuid5(_ID_NAMESPACE, f"tenant/{self.slug}"))

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

_TREE_SPECIES = ("Winterlinde", "Spitzahorn", "Platane", "Stieleiche", "Hainbuche", "Ginkgo", "Baumhasel")
_BIN_TYPES = (
    # (kind, depth of the usable volume, typical sensor height above the full line)
    ("Papierkorb 50 l", 600, 80),
    ("Umleerbehälter 1100 l", 1150, 150),
    ("Unterflurcontainer 3 m³", 1900, 250),
)
_INDOOR_SITES = ("Ratssaal", "Bürgerbüro", "Grundschule Raum 1.04", "Stadtbibliothek Lesesaal", "Musikschule")


@dataclass(frozen=True, slots=True)
class SimulatedGateway:
    gateway_eui: str  # 16 lower-case hex digits
    name: str
    municipality: str
    latitude: float
    longitude: float
    altitude_m: float
    network_server: NetworkServer

    @property
    def tts_gateway_id(self) -> str:
        """The id The Things Stack Console suggests for a gateway registered by its EUI."""
        return f"eui-{self.gateway_eui}"


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    dev_eui: DevEui
    name: str
    codec_id: str
    use_case: UseCase
    municipality: str
    latitude: float
    longitude: float
    network_server: NetworkServer
    tenant_id: str  # TTS tenant id, or ChirpStack tenant UUID
    tenant_name: str
    application_id: str  # TTS application id, or ChirpStack application UUID
    application_name: str
    network_device_id: str  # TTS device id; ChirpStack addresses devices by DevEUI
    dev_addr: str  # 8 lower-case hex digits
    registered: bool
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def vendor(self) -> str:
        return self.codec_id.split("/", 1)[0]

    @property
    def model(self) -> str:
        """The device model as the LoRaWAN Device Repository names it (codec id without `-codec`)."""
        return self.codec_id.split("/", 1)[1].removesuffix("-codec")

    @property
    def device_profile_id(self) -> str:
        return str(uuid.uuid5(_ID_NAMESPACE, f"profile/{self.codec_id}"))

    @property
    def device_profile_name(self) -> str:
        return f"{_VENDOR_NAMES.get(self.vendor, self.vendor)} {self.model.upper()}"

    @property
    def expected_interval_s(self) -> int:
        return int(self.metadata["expected_interval_s"])

    def registration(self) -> dict[str, Any]:
        """The device as the platform registers it: what an operator would enter or import."""
        return {
            "municipality": self.municipality,
            "dev_eui": str(self.dev_eui),
            "name": self.name,
            "codec_id": self.codec_id,
            "use_case": str(self.use_case),
            "latitude": self.latitude,
            "longitude": self.longitude,
            "network_server": str(self.network_server),
            "application_id": self.application_id,
            "network_device_id": self.network_device_id,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class Fleet:
    towns: tuple[Town, ...]
    gateways: tuple[SimulatedGateway, ...]
    devices: tuple[SimulatedDevice, ...]

    def registrations(self) -> list[dict[str, Any]]:
        """Registrations of the devices meant to be registered; the others stay unclaimed on purpose."""
        return [device.registration() for device in self.devices if device.registered]

    def municipality_registrations(self) -> list[dict[str, str]]:
        return [{"slug": town.slug, "name": town.name} for town in self.towns]

    def gateway_registrations(self) -> list[dict[str, Any]]:
        return [
            {
                "municipality": gateway.municipality,
                "gateway_id": gateway.gateway_eui,
                "name": gateway.name,
                "latitude": gateway.latitude,
                "longitude": gateway.longitude,
                "altitude_m": gateway.altitude_m,
                "network_server": str(gateway.network_server),
            }
            for gateway in self.gateways
        ]

    def town(self, slug: str) -> Town:
        return next(town for town in self.towns if town.slug == slug)

    def gateways_of(self, municipality: str, network_server: NetworkServer) -> tuple[SimulatedGateway, ...]:
        return tuple(
            gateway
            for gateway in self.gateways
            if gateway.municipality == municipality and gateway.network_server is network_server
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


def _use_case_counts(devices_per_town: int) -> dict[UseCase, int]:
    """Split a town's devices: parking is the largest group, every use case gets at least one."""
    shares = {UseCase.WASTE: 0.25, UseCase.SOIL: 0.2, UseCase.ENVIRONMENT: 0.15}
    counts = {use_case: max(1, round(devices_per_town * share)) for use_case, share in shares.items()}
    counts[UseCase.PARKING] = max(1, devices_per_town - sum(counts.values()))
    return {UseCase.PARKING: counts[UseCase.PARKING], **counts}


class _FleetBuilder:
    """Draws ids and places from one random stream, so that a seed always gives the same fleet."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._used_euis: set[str] = set()
        self._used_addresses: set[str] = set()

    def eui(self, prefix: str) -> str:
        while True:
            candidate = prefix + "".join(
                self._rng.choice("0123456789abcdef") for _ in range(16 - len(prefix))
            )
            if candidate not in self._used_euis:
                self._used_euis.add(candidate)
                return candidate

    def dev_addr(self, network_server: NetworkServer) -> str:
        # TTN/TTI (NetID 000013) hands out 260b…/27…, a ChirpStack with NetID 000000 hands out 00…/01….
        prefix = "260b" if network_server is NetworkServer.TTS else "01"
        while True:
            candidate = prefix + "".join(self._rng.choice("0123456789abcdef") for _ in range(8 - len(prefix)))
            if candidate not in self._used_addresses:
                self._used_addresses.add(candidate)
                return candidate

    def spot_in_town(self, town: Town) -> tuple[float, float]:
        distance = town.radius_m * math.sqrt(self._rng.random())
        bearing = self._rng.uniform(0.0, 2.0 * math.pi)
        return offset_position(
            town.latitude, town.longitude, distance * math.cos(bearing), distance * math.sin(bearing)
        )

    def gateways(self, town: Town) -> list[SimulatedGateway]:
        return [
            SimulatedGateway(
                gateway_eui=self.eui(
                    "0016c001" if site.network_server is NetworkServer.CHIRPSTACK_V4 else "7276ff"
                ),
                name=f"{town.name} {site.name}",
                municipality=town.slug,
                latitude=site.latitude,
                longitude=site.longitude,
                altitude_m=site.altitude_m,
                network_server=site.network_server,
            )
            for site in town.gateway_sites
        ]

    def devices(self, town: Town, devices_per_town: int) -> list[SimulatedDevice]:
        devices: list[SimulatedDevice] = []
        for use_case, count in _use_case_counts(devices_per_town).items():
            codecs = CODECS_BY_USE_CASE[use_case]
            for index in range(count):
                devices.append(self.device(town, use_case, codecs[index % len(codecs)], index))
        unregistered = set(self._rng.sample(range(len(devices)), k=max(1, devices_per_town // 12)))
        return [
            replace(device, registered=False) if position in unregistered else device
            for position, device in enumerate(devices)
        ]

    def device(self, town: Town, use_case: UseCase, codec_id: str, index: int) -> SimulatedDevice:
        rng = self._rng
        vendor = codec_id.split("/", 1)[0]
        dev_eui = parse_dev_eui(self.eui(_EUI_PREFIX_BY_VENDOR[vendor]))
        network_server = NetworkServer.TTS if rng.random() < 0.5 else NetworkServer.CHIRPSTACK_V4
        interval = EXPECTED_INTERVAL_S[use_case]
        metadata: dict[str, Any] = {}
        if use_case is UseCase.PARKING:
            zone = town.parking_zones[index % len(town.parking_zones)]
            spot_number = index // len(town.parking_zones) + 1
            # Spots in a row along the kerb, 5.5 m apart.
            latitude, longitude = offset_position(
                zone.latitude, zone.longitude, 1.2 * spot_number, 5.5 * spot_number
            )
            zone_code = zone.name.replace("-", "")[:3].upper()
            metadata = {"zone": zone.name, "spot_id": f"{zone_code}-{spot_number:02d}"}
            name = f"Parkplatz {zone.name} {spot_number}"
        elif use_case is UseCase.WASTE:
            latitude, longitude = self.spot_in_town(town)
            kind, depth_mm, offset_mm = rng.choice(_BIN_TYPES)
            first_day = rng.randint(1, 3)  # ISO weekday; a second round three days later
            metadata = {
                "bin_depth_mm": depth_mm,
                "sensor_offset_mm": offset_mm + rng.randint(-20, 20),
                "bin_type": kind,
                "collection_weekdays": [first_day] if depth_mm > 1500 else [first_day, first_day + 3],
            }
            name = f"{kind.split()[0]} {rng.choice(town.streets)} {rng.randint(1, 60)}"
        elif use_case is UseCase.SOIL:
            latitude, longitude = self.spot_in_town(town)
            tree_id = rng.randint(1000, 9999)
            species = rng.choice(_TREE_SPECIES)
            metadata = {
                "tree_id": str(tree_id),
                "species": species,
                "soil_type": rng.choice(("Sand", "lehmiger Sand", "Lehm", "Schluff", "Baumsubstrat")),
                "planted_year": rng.randint(1960, 2022),
            }
            name = f"Baum {tree_id} {species}"
        elif codec_id == "milesight-iot/em500-swl-codec":
            latitude, longitude = self.spot_in_town(town)
            interval = _WATER_LEVEL_INTERVAL_S
            metadata = {"waterbody": town.waterbody, "quantity": "water_level"}
            name = f"Pegel {town.waterbody} {index // len(CODECS_BY_USE_CASE[use_case]) + 1}"
        elif codec_id == "decentlab/dl-pm-codec":
            latitude, longitude = self.spot_in_town(town)
            street = rng.choice(town.streets)
            metadata = {"site": street, "indoor": False}
            name = f"Luftqualität {street}"
        else:
            latitude, longitude = self.spot_in_town(town)
            site = _INDOOR_SITES[index % len(_INDOOR_SITES)]
            metadata = {"site": site, "indoor": True}
            name = f"Raumklima {site}"
        metadata["expected_interval_s"] = interval
        application_name = f"{town.name} {_APPLICATION_NAMES[use_case]}"
        if network_server is NetworkServer.TTS:
            tenant_id, tenant_name = _TTS_TENANT, _TTS_TENANT
            application_id = f"{town.slug}-{use_case}"
            network_device_id = f"eui-{dev_eui}"
        else:
            tenant_id, tenant_name = town.chirpstack_tenant_id, town.chirpstack_tenant_name
            application_id = str(uuid.uuid5(_ID_NAMESPACE, f"application/{town.slug}/{use_case}"))
            network_device_id = str(dev_eui)
        return SimulatedDevice(
            dev_eui=dev_eui,
            name=name,
            codec_id=codec_id,
            use_case=use_case,
            municipality=town.slug,
            latitude=latitude,
            longitude=longitude,
            network_server=network_server,
            tenant_id=tenant_id,
            tenant_name=tenant_name,
            application_id=application_id,
            application_name=application_name,
            network_device_id=network_device_id,
            dev_addr=self.dev_addr(network_server),
            registered=True,
            metadata=metadata,
        )


def demo_fleet(seed: int = DEFAULT_SEED, devices_per_town: int = DEFAULT_DEVICES_PER_TOWN) -> Fleet:
    """The demo's towns with their gateways and devices; the same seed always gives the same fleet."""
    if devices_per_town < 4:
        raise ValueError("devices_per_town must be at least 4 (one per use case)")
    builder = _FleetBuilder(seed)
    gateways: list[SimulatedGateway] = []
    devices: list[SimulatedDevice] = []
    for town in TOWNS:
        gateways.extend(builder.gateways(town))
        devices.extend(builder.devices(town, devices_per_town))
    return Fleet(towns=TOWNS, gateways=tuple(gateways), devices=tuple(devices))
