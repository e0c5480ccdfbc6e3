"""Payloads of known devices through the decoders: one rule for live uplinks and stored frames.

The ingest pipeline decodes a batch of uplinks this way, and redecoding a chunk of
stored frames the same way, so a frame decodes to the same rows whichever path it
took: one registry call per batch, in which JS codecs run in batches too.
"""

from __future__ import annotations

from collections.abc import Sequence

from decoders import DEFAULT_PREFERENCE, CodecRegistry, DecodeOutcome, DecodeRequest, DecoderSource
from domain.decoding import DecodeStatus
from domain.uplink import JsonObject
from storage.device_registry import DeviceProfile
from storage.redecode import DecodedFrame, StoredFrame

_PREFERENCES: dict[str, tuple[DecoderSource, ...]] = {source.value: (source,) for source in DecoderSource}

FrameToDecode = tuple[DeviceProfile, int | None, bytes, JsonObject | None]
"""A payload of a known device: the device, fPort, payload, the network server's decoded object."""


def decode_frames(codecs: CodecRegistry, frames: Sequence[FrameToDecode]) -> list[DecodedFrame]:
    """Payloads of known devices through the decoders, each by its device's source preference.

    Failures are kept on the results, never raised. One registry call for all of
    them, so JS codecs run in batches.
    """
    outcomes = codecs.decode_many(
        [
            DecodeRequest(
                codec_id=profile.codec_id,
                f_port=f_port,
                payload=payload,
                network_decoded=network_decoded,
                device_metadata=profile.metadata,
                preference=_PREFERENCES.get(profile.decoder_source or "", DEFAULT_PREFERENCE),
                municipality_id=profile.municipality_id,
            )
            for profile, f_port, payload, network_decoded in frames
        ]
    )
    return [
        _decoded_frame(outcome, profile, network_decoded)
        for outcome, (profile, _, _, network_decoded) in zip(outcomes, frames, strict=True)
    ]


def _decoded_frame(
    outcome: DecodeOutcome, profile: DeviceProfile, network_decoded: JsonObject | None
) -> DecodedFrame:
    if outcome.ok:
        status = DecodeStatus.DECODED
    elif outcome.source is None and profile.codec_id is None and network_decoded is None:
        status = DecodeStatus.NO_DECODER
    else:
        status = DecodeStatus.FAILED
    return DecodedFrame(
        status=status,
        decoded=outcome.decoded,
        decoder_source=outcome.source.value if outcome.source else None,
        codec_id=outcome.codec_id,
        error=outcome.error,
        readings=outcome.readings,
    )


def decode_stored_frames(
    codecs: CodecRegistry, frames: Sequence[StoredFrame], profile: DeviceProfile
) -> list[DecodedFrame]:
    """A chunk of one device's stored frames by the live path's rules, one result per frame in order."""
    return decode_frames(
        codecs, [(profile, frame.f_port, frame.payload, frame.network_decoded) for frame in frames]
    )
