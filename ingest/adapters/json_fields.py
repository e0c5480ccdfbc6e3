"""Typed reads from a network server's JSON, each failure naming the field that was wrong.

Network servers omit zero values, send 64-bit integers as strings (TTS) and use
`null` for "not set" (ChirpStack v3); the readers here accept exactly those
spellings. Anything else becomes `MessageRejected` whose reason carries the
field's path (`uplink_message.rx_metadata[1].rssi`), because the reason is all an
operator sees next to a rejected message.

A path is passed as the parent's path plus the key and only formatted when a
read fails, so the happy path costs a dict lookup and an isinstance check.
"""

from __future__ import annotations

import binascii
import math
from typing import Any

import orjson

from domain.errors import InvalidIdentifier, MessageRejected
from domain.ids import DevEui, GatewayId, parse_dev_eui, parse_gateway_id
from domain.uplink import JsonObject

UINT32_MAX = 0xFFFFFFFF
INT64_MAX = 2**63 - 1
STORED_TEXT_LIMIT = 200
"""Longest device or application id/name kept; the uplink table's columns hold 200 characters."""

_ESCAPED_NUL = b"\\u0000"


def shown(value: object) -> str:
    """A value as it may appear in a rejection reason: short enough to read in a table cell."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def field_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def load_object(body: bytes, what: str) -> JsonObject:
    """Parse a JSON body that must be an object.

    PostgreSQL cannot store a NUL character in text or JSONB, so a message
    carrying one is rejected here rather than failing a whole batch later; the
    byte search for the escape is cheap and skips the walk for clean messages.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MessageRejected(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MessageRejected(f"{what} must be a JSON object, got {kind_of(value)}")
    if _ESCAPED_NUL in body:
        reject_nul_characters(value, what)
    return value


def reject_nul_characters(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise MessageRejected(f"{path} contains a NUL character, which PostgreSQL cannot store")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul_characters(key, path)
            reject_nul_characters(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_nul_characters(item, f"{path}[{index}]")


def text(obj: JsonObject, key: str, parent: str) -> str | None:
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    raise MessageRejected(f"{field_path(parent, key)} must be a string, got {kind_of(value)}")


def required_text(obj: JsonObject, key: str, parent: str) -> str:
    value = text(obj, key, parent)
    if not value:
        raise MessageRejected(f"{field_path(parent, key)} is missing")
    return value


def stored_text(obj: JsonObject, key: str, parent: str) -> str | None:
    """An id or display name bound for a 200-character column; longer values are cut, not rejected."""
    value = text(obj, key, parent)
    if not value:
        return None
    return value[:STORED_TEXT_LIMIT]


def integer(obj: JsonObject, key: str, parent: str, low: int, high: int) -> int | None:
    """An integer within [low, high]; TTS spells 64-bit integers as decimal strings, so those count too.

    The bounds are the protocol's (f_port fits a byte, f_cnt 32 bits), which also
    keeps every value inside the column it is stored in.
    """
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is int:
        number = value
    elif type(value) is str and _is_decimal(value):
        number = int(value)
    else:
        raise MessageRejected(f"{field_path(parent, key)} must be an integer, got {kind_of(value)}")
    if not low <= number <= high:
        raise MessageRejected(f"{field_path(parent, key)} = {number} is outside {low}..{high}")
    return number


def _is_decimal(value: str) -> bool:
    digits = value[1:] if value.startswith("-") else value
    return 0 < len(digits) <= 20 and digits.isascii() and digits.isdigit()


def number(obj: JsonObject, key: str, parent: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is float or type(value) is int:
        return float(value)
    raise MessageRejected(f"{field_path(parent, key)} must be a number, got {kind_of(value)}")


def flag(obj: JsonObject, key: str, parent: str) -> bool:
    """A boolean where absence means false, as every server omits or zeroes false flags."""
    value = obj.get(key)
    if value is None:
        return False
    if type(value) is bool:
        return value
    raise MessageRejected(f"{field_path(parent, key)} must be true or false, got {kind_of(value)}")


def child(obj: JsonObject, key: str, parent: str) -> JsonObject | None:
    value = obj.get(key)
    if value is None or type(value) is dict:
        return value
    raise MessageRejected(f"{field_path(parent, key)} must be an object, got {kind_of(value)}")


def array(obj: JsonObject, key: str, parent: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if type(value) is list:
        return value
    raise MessageRejected(f"{field_path(parent, key)} must be an array, got {kind_of(value)}")


def element(items: list[Any], index: int, parent: str) -> JsonObject:
    value = items[index]
    if type(value) is dict:
        return value
    raise MessageRejected(f"{parent}[{index}] must be an object, got {kind_of(value)}")


def base64_bytes(value: str, path: str) -> bytes:
    """Standard, padded base64, as all three servers write payloads and v3 writes ids."""
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise MessageRejected(f"{path} is not valid base64: {shown(value)}") from exc


def hex_or_base64(value: str, size: int, path: str) -> str:
    """An id of `size` bytes that ChirpStack writes as hex (v4, v3 json_v3) or base64 (v3 protobuf-JSON).

    Hex of n bytes is 2n characters without padding; padded base64 of 8 or 16
    bytes has another length, and of 4 bytes ends in `==`. The result is
    lower-case hex.
    """
    if len(value) == 2 * size and not value.endswith("="):
        return value.lower()
    raw = base64_bytes(value, path)
    if len(raw) != size:
        raise MessageRejected(f"{path} must hold {size} bytes, got {len(raw)}: {shown(value)}")
    return raw.hex()


def finite(value: float | None, path: str) -> float | None:
    """Protobuf floats may be NaN or infinite, which no reading or JSON column can hold."""
    if value is None or math.isfinite(value):
        return value
    raise MessageRejected(f"{path} must be a finite number, got {value}")


CACHE_LIMIT = 8192
"""Entries kept by each memo of normalised ids; a fleet repeats a bounded set of ids endlessly."""

_CACHEABLE_ID_LENGTH = 64
_DEV_EUIS: dict[str, DevEui] = {}


def dev_eui(value: str, path: str) -> DevEui:
    """`parse_dev_eui` memoised by the spelling received, since every uplink of a device repeats it.

    Only successes are kept, so a rejection always carries this call's path.
    The memo is emptied when full rather than tracked for recency: a refill
    costs one normalisation per device, and clearing needs no bookkeeping per hit.
    """
    known = _DEV_EUIS.get(value)
    if known is not None:
        return known
    try:
        parsed = parse_dev_eui(value)
    except InvalidIdentifier as exc:
        raise MessageRejected(f"{path}: {exc}") from exc
    if len(value) <= _CACHEABLE_ID_LENGTH:
        if len(_DEV_EUIS) >= CACHE_LIMIT:
            _DEV_EUIS.clear()
        _DEV_EUIS[value] = parsed
    return parsed


def gateway_id(value: str, path: str) -> GatewayId:
    try:
        return parse_gateway_id(value)
    except InvalidIdentifier as exc:
        raise MessageRejected(f"{path}: {exc}") from exc
