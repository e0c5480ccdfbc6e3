"""RFC 3339 timestamps and protobuf durations as the network servers write them.

TTS writes `2023-05-18T08:25:26.112483370Z`, ChirpStack (Rust) `...726+00:00`,
the Go gateway bridge `...Z` without fraction. Python 3.11's C
`datetime.fromisoformat` reads all three, including nine fractional digits
(it keeps microseconds), and is several times faster than any pure-Python
parser, so it is the parser; this module adds what it does not check: an
offset must be present, and the result is always UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from domain.errors import MessageRejected
from ingest.adapters.json_fields import shown

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_fromisoformat = datetime.fromisoformat


def parse_timestamp(value: str, path: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MessageRejected(f"{path} is not an RFC 3339 timestamp: {shown(value)}") from exc
    offset = parsed.tzinfo
    if offset is UTC:
        return parsed
    if offset is None:
        raise MessageRejected(f"{path} has no UTC offset: {shown(value)}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise MessageRejected(f"{path} is out of range: {shown(value)}") from exc


def utc_or_none(value: str) -> datetime | None:
    """The common case of `parse_timestamp` without building a path: None asks the caller to use it.

    Network servers write UTC (`Z` or `+00:00`), which `fromisoformat` returns
    with the `UTC` singleton; anything else (another offset, none, a typo) is
    left to `parse_timestamp`, which converts or rejects with the field's path.
    """
    try:
        parsed = _fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is UTC else None


def optional_timestamp(value: str | None, path: str) -> datetime | None:
    """`parse_timestamp` for a field that may be absent or empty, which means "not known"."""
    if not value:
        return None
    return utc_or_none(value) or parse_timestamp(value, path)


def from_epoch(seconds: int, nanos: int, path: str) -> datetime:
    """A protobuf Timestamp; its seconds can be anything a sender put there."""
    try:
        return EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError as exc:
        raise MessageRejected(f"{path} is out of range: {seconds} s since 1970") from exc


def parse_duration_s(value: str, path: str) -> float:
    """A protobuf Duration in JSON (`"0.097536s"`), as TTS reports consumed airtime."""
    if not value.endswith("s"):
        raise MessageRejected(f"{path} must be a duration such as '0.5s', got {shown(value)}")
    try:
        seconds = float(value[:-1])
    except ValueError as exc:
        raise MessageRejected(f"{path} must be a duration such as '0.5s', got {shown(value)}") from exc
    if not math.isfinite(seconds) or seconds < 0:
        raise MessageRejected(f"{path} must be a finite, non-negative duration, got {shown(value)}")
    return seconds
