"""What a device is for: the use cases a town registers devices under, and those codecs are made for.

The enums carry comments, not docstrings: the API's schema would show a docstring as
the enum's description.
"""

from __future__ import annotations

from enum import StrEnum


# The use case a registered device serves; the API's views (parking, waste, …) read by it.
class UseCase(StrEnum):
    PARKING = "parking"
    WASTE = "waste"
    SOIL = "soil"
    ENVIRONMENT = "environment"
    OTHER = "other"


# What the devices a codec decodes are typically used for, as the codec catalogue lists them.
# Wider than `UseCase`: a catalogue also knows water meters and people counters, which no view
# of the platform serves (yet), and codecs for any device (`generic`).
class CodecUseCase(StrEnum):
    PARKING = "parking"
    WASTE = "waste"
    SOIL = "soil"
    ENVIRONMENT = "environment"
    WATER = "water"
    COUNTING = "counting"
    GENERIC = "generic"
