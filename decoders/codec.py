"""What a built-in codec is, and the bounds check every payload family shares.

A built-in decoder is a plain function `(f_port, payload) -> decoded object`
that raises only `DecodeError`. Families check lengths before reading rather
than catching `IndexError`/`struct.error` afterwards: the offset in the error
must name where the frame fell short, and a stray exception must never be
mistaken for a bad payload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from domain.errors import DecodeError
from domain.uplink import JsonObject
from domain.use_case import CodecUseCase

DecodeFunction = Callable[[int, bytes], JsonObject]


@dataclass(frozen=True, slots=True)
class BuiltinCodec:
    codec_id: str
    devices: tuple[str, ...]
    use_case: CodecUseCase
    decode: DecodeFunction

    @property
    def vendor(self) -> str:
        return self.codec_id.partition("/")[0]


def require_bytes(payload: bytes, offset: int, count: int, what: str) -> None:
    """Raise a DecodeError naming `what` when fewer than `count` bytes remain at `offset`."""
    if offset + count > len(payload):
        left = max(len(payload) - offset, 0)
        raise DecodeError(f"{what} needs {count} bytes, {left} left", offset)


def unknown_f_port(f_port: int) -> DecodeError:
    return DecodeError(f"unknown FPort {f_port}")


def signed_24_be(payload: bytes, at: int) -> int:
    """A 24-bit big-endian two's-complement integer (struct has no 3-byte format)."""
    value = payload[at] << 16 | payload[at + 1] << 8 | payload[at + 2]
    return value - (1 << 24) if value & 0x800000 else value
