"""Which decoder runs for a device, and the one call that runs it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from domain.reading import Reading
from domain.uplink import JsonObject


class DecoderSource(StrEnum):
    BUILTIN = "builtin"
    JAVASCRIPT = "javascript"
    NETWORK = "network"


DEFAULT_PREFERENCE: tuple[DecoderSource, ...] = (
    DecoderSource.BUILTIN,
    DecoderSource.JAVASCRIPT,
    DecoderSource.NETWORK,
)


@dataclass(frozen=True, slots=True)
class DecodeOutcome:
    """What decoding one payload gave; `error` is set instead of raising."""

    decoded: JsonObject | None
    readings: tuple[Reading, ...]
    source: DecoderSource | None
    codec_id: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.decoded is not None


class CodecRegistry:
    """Holds the built-in codecs and the registered JS codecs; decodes one payload at a time."""

    def decode(
        self,
        *,
        codec_id: str | None,
        f_port: int | None,
        payload: bytes,
        network_decoded: JsonObject | None,
        device_metadata: Mapping[str, Any] | None = None,
        preference: Sequence[DecoderSource] = DEFAULT_PREFERENCE,
    ) -> DecodeOutcome:
        if network_decoded is not None and DecoderSource.NETWORK in preference:
            return DecodeOutcome(network_decoded, (), DecoderSource.NETWORK, codec_id)
        return DecodeOutcome(None, (), None, codec_id, error="no decoder for this device")
