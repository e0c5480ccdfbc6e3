"""The API benchmark's fleet: towns, gateways and devices with their radio links, planned from a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cli.simulator.towns import offset_position

SEED = 20261126
SLOT_S = 900
SLOTS_PER_DAY = 96
DAY_S = 86_400
MONTH_DAYS = 365.25 / 12
GATEWAYS_PER_TOWN = 4
SPOTS_PER_ZONE = 20
OFFLINE_FOR_S = 6 * 3600

USE_CASE_SHARES = (("waste", 0.25), ("soil", 0.20), ("environment", 0.15))
ENVIRONMENT_QUANTITIES = ("temperature", "temperature", "temperature", "co2", "water_level")
MAIN_QUANTITY = {"parking": "occupied", "waste": "fill_level", "soil": "soil_moisture"}
CODEC = {
    "occupied": "nwave/nps405-codec",
    "fill_level": "dragino/ldds75-codec",
    "soil_moisture": "dragino/lse01-codec",
    "temperature": "milesight-iot/am307-codec",
    "co2": "elsys/ers-co2-codec",
    "water_level": "milesight-iot/em500-swl-codec",
}
ZONE_NAMES = ("Marktplatz", "Bahnhof", "Rathaus", "Freibad", "Stadthalle", "Klinikum", "Friedhof", "Schule")
SOIL_TYPES = ("sand", "loam", "loam", "silt", "clay")
SPECIES = ("Tilia cordata", "Acer platanoides", "Quercus robur", "Platanus x hispanica", "Carpinus betulus")
BATTERY = "battery"


@dataclass(frozen=True, slots=True)
class Town:
    slug: str
    name: str
    latitude: float
    longitude: float
    zones: dict[str, float]
    """Parking zone name -> how busy it is (scales the occupancy profile)."""


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    gateway_id: str
    town: int
    name: str
    latitude: float
    longitude: float
    altitude_m: float
    offline_from_s: int | None


@dataclass(frozen=True, slots=True)
class DevicePlan:
    id: int
    town: int
    use_case: str
    quantity: str
    dev_eui: str
    name: str
    latitude: float
    longitude: float
    tags: list[str]
    metadata: dict[str, Any]
    phase_s: int
    gateways: tuple[int, int, int]
    """Indices into the fleet's gateways, strongest first; -1 where there is none."""
    rssi_dbm: tuple[float, float, float]
    spreading_factor: int


@dataclass(frozen=True, slots=True)
class Fleet:
    towns: list[Town]
    gateways: list[GatewayPlan]
    devices: list[DevicePlan]
    first_slot: int
    end_slot: int
    uplink_first_slot: int

    @property
    def end_s(self) -> int:
        return self.end_slot * SLOT_S


def _use_case_counts(devices: int) -> list[tuple[str, int]]:
    counts = [(use_case, max(1, round(devices * share))) for use_case, share in USE_CASE_SHARES]
    return [("parking", max(1, devices - sum(count for _, count in counts))), *counts]


def plan_fleet(*, devices: int, months: float, municipalities: int, uplink_days: int, end_s: int) -> Fleet:
    """The same fleet for the same arguments: ids, places, zones and radio links."""
    rng = random.Random(SEED)
    end_slot = end_s // SLOT_S
    first_slot = end_slot - max(SLOTS_PER_DAY, round(months * MONTH_DAYS * SLOTS_PER_DAY))
    uplink_first_slot = max(first_slot, end_slot - uplink_days * SLOTS_PER_DAY)
    towns: list[Town] = []
    gateways: list[GatewayPlan] = []
    plans: list[DevicePlan] = []
    per_town = [
        devices // municipalities + (1 if index < devices % municipalities else 0)
        for index in range(municipalities)
    ]
    for town_index in range(municipalities):
        latitude = round(rng.uniform(47.6, 54.6), 4)
        longitude = round(rng.uniform(6.2, 14.8), 4)
        counts = dict(_use_case_counts(per_town[town_index]))
        zone_count = max(1, round(counts["parking"] / SPOTS_PER_ZONE))
        zones = {
            ZONE_NAMES[index % len(ZONE_NAMES)]
            + (f"-{index // len(ZONE_NAMES) + 1}" if index >= 8 else ""): round(rng.uniform(0.7, 1.15), 2)
            for index in range(zone_count)
        }
        towns.append(
            Town(
                f"musterstadt-{town_index + 1:02d}",
                f"Musterstadt {town_index + 1}",
                latitude,
                longitude,
                zones,
            )
        )
        for site in range(GATEWAYS_PER_TOWN):
            gw_latitude, gw_longitude = offset_position(
                latitude, longitude, rng.uniform(-1500, 1500), rng.uniform(-1500, 1500)
            )
            # The last site of the first town only ever backs others up, and is down now.
            offline = end_s - OFFLINE_FOR_S if town_index == 0 and site == GATEWAYS_PER_TOWN - 1 else None
            gateways.append(
                GatewayPlan(
                    gateway_id=f"7276ff{town_index + 1:04x}{site + 1:06x}",
                    town=town_index,
                    name=f"Musterstadt {town_index + 1} Standort {site + 1}",
                    latitude=gw_latitude,
                    longitude=gw_longitude,
                    altitude_m=round(rng.uniform(15, 45), 1),
                    offline_from_s=offline,
                )
            )
    for town_index, town in enumerate(towns):
        own = [index for index, gateway in enumerate(gateways) if gateway.town == town_index]
        # The next town's gateways may hear a device near the boundary.
        neighbours = [
            index
            for index, gateway in enumerate(gateways)
            if gateway.town == (town_index + 1) % municipalities != town_index
        ]
        zone_names = list(town.zones)
        for use_case, count in _use_case_counts(per_town[town_index]):
            for index in range(count):
                device_id = len(plans) + 1
                quantity = MAIN_QUANTITY.get(use_case) or rng.choice(ENVIRONMENT_QUANTITIES)
                latitude, longitude = offset_position(
                    town.latitude, town.longitude, rng.uniform(-1800, 1800), rng.uniform(-1800, 1800)
                )
                metadata: dict[str, Any] = {"expected_interval_s": SLOT_S}
                tags = ["messnetz"]
                if use_case == "parking":
                    zone = zone_names[index % len(zone_names)]
                    spot = index // len(zone_names) + 1
                    metadata |= {"parking_zone": zone, "parking_spot": f"{zone[:3].upper()}-{spot:02d}"}
                    name = f"Parkplatz {zone} {spot}"
                elif use_case == "waste":
                    depth = rng.choice((1100, 1400, 2600))
                    metadata |= {"bin_depth_mm": depth, "sensor_offset_mm": rng.randint(30, 80)}
                    name = f"Behälter {index + 1}"
                elif use_case == "soil":
                    tree = rng.randint(1000, 9999)
                    species = rng.choice(SPECIES)
                    metadata |= {
                        "tree_id": str(tree),
                        "species": species,
                        "soil_type": rng.choice(SOIL_TYPES),
                    }
                    name = f"Baum {tree} {species}"
                    tags.append(f"park-{index % 4 + 1}")
                else:
                    name = f"Umwelt {quantity} {index + 1}"
                primary = rng.choice(own[: GATEWAYS_PER_TOWN - 1])
                second = rng.choice([g for g in own if g != primary]) if rng.random() < 0.6 else -1
                third = rng.choice(neighbours) if neighbours and second >= 0 and rng.random() < 0.15 else -1
                plans.append(
                    DevicePlan(
                        id=device_id,
                        town=town_index,
                        use_case=use_case,
                        quantity=quantity,
                        dev_eui=f"a84041{device_id:010x}",
                        name=name,
                        latitude=latitude,
                        longitude=longitude,
                        tags=tags,
                        metadata=metadata,
                        phase_s=rng.randrange(0, SLOT_S - 3),
                        gateways=(primary, second, third),
                        rssi_dbm=(rng.uniform(-108, -80), rng.uniform(-118, -105), rng.uniform(-124, -114)),
                        spreading_factor=rng.choice((7, 7, 7, 8, 8, 9, 10, 12)),
                    )
                )
    return Fleet(towns, gateways, plans, first_slot, end_slot, uplink_first_slot)


def iso_time(moment_s: int) -> str:
    return datetime.fromtimestamp(moment_s, UTC).isoformat()
