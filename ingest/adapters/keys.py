"""Dedup keys for uplinks; the rules per server are in the package docstring."""

from __future__ import annotations

from hashlib import blake2b

KEY_LIMIT = 64
_EMPTY_DIGEST = blake2b(digest_size=16)
"""Copied per key: cheaper than constructing a hash with its parameters each time, same digest."""
"""The uplink table's `uplink_key` column holds 64 characters."""


def hashed_key(*parts: str) -> str:
    """32 hex digits naming a frame by the fields that identify it.

    The separator cannot occur in any part (ids, digits, timestamps), so two
    different tuples never join to the same string.
    """
    digest = _EMPTY_DIGEST.copy()
    digest.update("\x1f".join(parts).encode())
    return digest.hexdigest()


def bounded_key(given: str) -> str:
    """A server-given id as key, hashed only when it would not fit the column."""
    return given if len(given) <= KEY_LIMIT else hashed_key(given)
