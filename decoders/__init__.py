"""Payload decoding in two stages: bytes → decoded object → typed readings.

The public entry point is `CodecRegistry.decode`; the pipeline, the API and the
CLI call nothing else in this package directly.
"""

from decoders.registry import CodecRegistry, DecodeOutcome, DecoderSource

__all__ = ["CodecRegistry", "DecodeOutcome", "DecoderSource"]
