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


class DecodeStatus:
    """Values of `uplink.decode_status`; plain strings so SQL filters read naturally."""

    DECODED = "decoded"
    FAILED = "failed"
    UNCLAIMED = "unclaimed"  # no registered device has this DevEUI (yet)
    NO_DECODER = "no_decoder"  # registered, but nothing knows its payload format
