"""Dedup keys for uplinks; the rules per server are in the package docstring."""

from __future__ import annotations

from hashlib import blake2b

KEY_LIMIT = 64
"""The uplink table's `uplink_key` column holds 64 characters."""


def hashed_key(*parts: str) -> str:
    """32 hex digits naming a frame by the fields that identify it.

    The separator cannot occur in any part (ids, digits, timestamps), so two
    different tuples never join to the same string.
    """
    return blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def bounded_key(given: str) -> str:
    """A server-given id as key, hashed only when it would not fit the column."""
    return given if len(given) <= KEY_LIMIT else hashed_key(given)
