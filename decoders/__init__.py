"""Payload decoding in two stages: bytes → decoded object → typed readings.

The public entry points are `CodecRegistry.decode` and its batch form
`decode_many`; the pipeline, the API and the CLI call nothing else in this
package directly, apart from the codec list
(`CodecRegistry.codecs`), JS codec registration (`register_javascript`) and the
CLI's `decoders.cli_format.decode_to_json`.
"""

from decoders.javascript import SandboxLimits, ScriptStyle
from decoders.registry import DEFAULT_PREFERENCE, CodecInfo, CodecRegistry, DecodeOutcome, DecodeRequest
from domain.decoding import DecoderSource

__all__ = [
    "DEFAULT_PREFERENCE",
    "CodecInfo",
    "CodecRegistry",
    "DecodeOutcome",
    "DecodeRequest",
    "DecoderSource",
    "SandboxLimits",
    "ScriptStyle",
]
