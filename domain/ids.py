"""Identifiers as LoRaWAN spells them, normalised once at the edge.

DevEUIs arrive upper-case (TTS), lower-case (ChirpStack v4), base64 (ChirpStack
v3 protobuf-JSON) or with separators typed by a person; inside lorakom a DevEUI
is always 16 lower-case hex digits, so that a dictionary lookup or a SQL
equality never misses because of spelling.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import NewType

from domain.errors import InvalidIdentifier

DevEui = NewType("DevEui", str)
GatewayId = NewType("GatewayId", str)

_HEX16 = re.compile(r"[0-9a-f]{16}")
_SEPARATORS = re.compile(r"[\s:\-_.]")


def parse_dev_eui(text: str) -> DevEui:
    """Normalise a typed or transmitted DevEUI to 16 lower-case hex digits."""
    compact = _SEPARATORS.sub("", text).lower()
    if compact.startswith("0x"):
        compact = compact[2:]
    if not _HEX16.fullmatch(compact):
        raise InvalidIdentifier(f"DevEUI must be 8 bytes of hex (16 digits), got {text!r}")
    return DevEui(compact)


def dev_eui_from_base64(text: str) -> DevEui:
    """Decode the base64 form used by ChirpStack v3's protobuf-JSON marshaler."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidIdentifier(f"DevEUI is not valid base64: {text!r}") from exc
    if len(raw) != 8:
        raise InvalidIdentifier(f"DevEUI must be 8 bytes, base64 {text!r} holds {len(raw)}")
    return DevEui(raw.hex())


def parse_gateway_id(text: str) -> GatewayId:
    """Normalise a gateway id.

    An EUI (with or without an `eui-` prefix, any case) becomes 16 lower-case hex
    digits, so that the same gateway seen through TTS (`eui-6A7E…`) and ChirpStack
    (`6a7e…`) is one gateway. Any other id (a TTS custom name) is kept as given,
    lower-cased and stripped.
    """
    compact = text.strip().lower()
    if compact.startswith("eui-"):
        compact = compact[4:]
    if _HEX16.fullmatch(compact):
        return GatewayId(compact)
    if not compact or len(compact) > 128:
        raise InvalidIdentifier(f"gateway id must be 1-128 characters, got {text!r}")
    return GatewayId(compact)
