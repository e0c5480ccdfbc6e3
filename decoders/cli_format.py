"""The JSON a technician sees for `lorakom decode --codec ID --fport N HEX`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decoders.registry import CodecRegistry
from domain.decoding import DecoderSource
from domain.errors import DecodeError
from domain.quantity import find_quantity
from domain.uplink import JsonObject


def decode_to_json(
    codec_id: str,
    f_port: int,
    payload_hex: str,
    *,
    registry: CodecRegistry | None = None,
    device_metadata: Mapping[str, Any] | None = None,
) -> JsonObject:
    """`{"decoded": {...}, "readings": [{"quantity", "value", "unit", "quality"}]}`; raises DecodeError.

    Built-in first, then a JS codec registered in `registry`; the network
    server's object does not exist here.
    """
    try:
        payload = bytes.fromhex(payload_hex.replace(" ", ""))
    except ValueError as exc:
        raise DecodeError(f"payload is not hex: {exc}") from None
    codecs = registry or CodecRegistry()
    if not codecs.knows(codec_id):
        known = ", ".join(sorted({info.codec_id for info in codecs.codecs()}))
        raise DecodeError(f"unknown codec {codec_id!r}; known codecs: {known}")
    outcome = codecs.decode(
        codec_id=codec_id,
        f_port=f_port,
        payload=payload,
        network_decoded=None,
        device_metadata=device_metadata,
        preference=(DecoderSource.BUILTIN, DecoderSource.JAVASCRIPT),
    )
    if outcome.decoded is None:
        raise DecodeError(outcome.error or "nothing decoded")
    readings = []
    for reading in outcome.readings:
        found = find_quantity(reading.quantity)
        readings.append(
            {
                "quantity": reading.quantity,
                "value": reading.value,
                "unit": found.unit if found else None,
                "quality": reading.quality.name.lower(),
            }
        )
    return {"decoded": outcome.decoded, "readings": readings}
