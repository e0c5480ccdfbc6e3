"""Typed readings: a value of a known quantity in a known unit.

The vocabulary of quantities lives in `domain.quantity`; a reading refers to a
quantity by its name so that rows stay narrow (time, device, quantity, value).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Quality(IntEnum):
    """Why a value might deserve less trust; stored beside the value, never instead of it."""

    GOOD = 0
    IMPLAUSIBLE = 1  # outside the quantity's physical range
    CLAMPED = 2  # a derived value was clamped into its range (e.g. fill level above 100 %)
    SUSPECT = 3  # the device flagged the measurement itself (sensor error bit)


@dataclass(slots=True)
class Reading:
    """Not frozen on purpose: decoders make several per payload (see domain.uplink on the cost)."""

    quantity: str
    value: float
    quality: Quality = Quality.GOOD
