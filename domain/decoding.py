"""How an uplink was decoded: which source gave its decoded object, and the outcome kept with it."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class DecoderSource(StrEnum):
    """Where a decoded object came from (`decoders.registry.decode` tries them in a device's order)."""

    BUILTIN = "builtin"
    JAVASCRIPT = "javascript"
    NETWORK = "network"


DecoderSourceName = Literal["builtin", "javascript", "network"]
"""The values of `DecoderSource` as a literal type, for validators that take the text as given
(a request's `decoder_source` stays a string); `tests/domain` keeps the two equal."""


class ScriptStyle(StrEnum):
    """Which function a vendor's JavaScript codec defines, by the network server it was written for."""

    DEVICE_REPOSITORY = "decodeUplink"  # also ChirpStack v4: decodeUplink(input) -> {data, warnings, errors}
    CHIRPSTACK_V3 = "Decode"  # Decode(fPort, bytes, variables) -> object
    TTN_V2 = "Decoder"  # The Things Network v2 / TTS v2 and older ChirpStack: Decoder(bytes, port) -> object


ScriptStyleName = Literal["decodeUplink", "Decode", "Decoder"]
"""The values of `ScriptStyle` as a literal type, as a stored script's style is validated."""


class DecodeStatus:
    """Values of `uplink.decode_status`; plain strings so SQL filters read naturally."""

    DECODED = "decoded"
    FAILED = "failed"
    UNCLAIMED = "unclaimed"  # no registered device has this DevEUI (yet)
    NO_DECODER = "no_decoder"  # registered, but nothing knows its payload format
