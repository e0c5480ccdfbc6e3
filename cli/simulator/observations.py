"""What a simulated sensor measured, in physical units, before any vendor turns it into bytes.

The behaviour models produce these and the encoders consume them, so that the physics
(bins fill, soil dries) and the byte layouts (Milesight channels, Decentlab words) can
change independently.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BatteryLevel:
    """Charge as the two ways devices report it: Milesight sends percent, most others the cell voltage."""

    percent: float
    millivolts: int


@dataclass(frozen=True, slots=True)
class ParkingObservation:
    occupied: bool
    changed: bool  # the spot changed state since the previous frame: a status frame is due, not a heartbeat
    previous_state_minutes: float
    temperature_c: float
    battery: BatteryLevel


@dataclass(frozen=True, slots=True)
class BinObservation:
    distance_mm: int  # from the sensor down to the surface of the waste
    temperature_c: float
    tilted: bool
    battery: BatteryLevel


@dataclass(frozen=True, slots=True)
class SoilObservation:
    moisture_percent: float  # volumetric water content at the main probe depth
    soil_temperature_c: float
    conductivity_us_cm: float
    air_temperature_c: float
    profile: tuple[tuple[float, float], ...]  # (moisture %, temperature °C) per depth, top first
    battery: BatteryLevel


@dataclass(frozen=True, slots=True)
class AirObservation:
    temperature_c: float
    humidity_percent: float
    co2_ppm: float
    pm1_0_ug_m3: float
    pm2_5_ug_m3: float
    pm4_ug_m3: float
    pm10_ug_m3: float
    pressure_hpa: float
    light_lux: float
    motion_count: int
    tvoc_ppb: float
    battery: BatteryLevel


@dataclass(frozen=True, slots=True)
class WaterLevelObservation:
    level_cm: float
    battery: BatteryLevel


Observation = ParkingObservation | BinObservation | SoilObservation | AirObservation | WaterLevelObservation
