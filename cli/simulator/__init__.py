"""A simulator of LoRaWAN sensors in three towns, publishing as The Things Stack and ChirpStack do.

Used by `lorakom demo` and `lorakom simulate` to make data flow without hardware, and by
the ingest benchmark to produce realistic load (`generate`).
"""

from cli.simulator.fleet import SIMULATED_USE_CASES, Fleet, SimulatedDevice, SimulatedGateway, demo_fleet
from cli.simulator.publisher import DEMO_SPEED, Simulator, generate

__all__ = [
    "DEMO_SPEED",
    "SIMULATED_USE_CASES",
    "Fleet",
    "SimulatedDevice",
    "SimulatedGateway",
    "Simulator",
    "demo_fleet",
    "generate",
]
