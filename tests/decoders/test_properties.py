"""Any bytes on any fPort: a decoded object or a DecodeError naming its reason, never anything else."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders.codec import BuiltinCodec
from decoders.readings import readings_from
from decoders.registry import BUILTIN_CODECS, CodecRegistry
from domain.decoding import DecoderSource
from domain.errors import DecodeError

_PAYLOADS = st.binary(max_size=80)
_PORTS = st.integers(min_value=0, max_value=255)

_JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize("codec", BUILTIN_CODECS, ids=lambda codec: codec.codec_id)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f_port=_PORTS, payload=_PAYLOADS)
def test_builtin_decoder_returns_json_or_decode_error(
    codec: BuiltinCodec, f_port: int, payload: bytes
) -> None:
    try:
        decoded = codec.decode(f_port, payload)
    except DecodeError as exc:
        failure: DecodeError | None = exc
    else:
        failure = None
    if failure is not None:
        assert failure.reason
        assert failure.offset is None or 0 <= failure.offset <= len(payload)
        return
    assert isinstance(decoded, dict)
    json.dumps(decoded, allow_nan=False)  # storable as JSON: no NaN, no bytes, no custom objects


@pytest.mark.parametrize("codec", BUILTIN_CODECS, ids=lambda codec: codec.codec_id)
@settings(max_examples=100, deadline=None)
@given(f_port=_PORTS, payload=_PAYLOADS)
def test_registry_never_raises_and_readings_are_finite_or_flagged(
    codec: BuiltinCodec, f_port: int, payload: bytes
) -> None:
    registry = _REGISTRY
    outcome = registry.decode(codec_id=codec.codec_id, f_port=f_port, payload=payload, network_decoded=None)
    if outcome.ok:
        assert outcome.source is DecoderSource.BUILTIN
    else:
        assert outcome.error
        assert outcome.readings == ()
    for reading in outcome.readings:
        assert math.isfinite(reading.value) or reading.quality.name == "IMPLAUSIBLE"


@settings(max_examples=300, deadline=None)
@given(
    decoded=st.dictionaries(st.text(max_size=20), _JSON, max_size=8),
    codec_id=st.sampled_from([None, *(c.codec_id for c in BUILTIN_CODECS)]),
)
def test_stage_two_accepts_any_network_object(decoded: dict[str, object], codec_id: str | None) -> None:
    """The network server's object is not ours to trust: stage 2 must survive whatever arrives."""
    readings = readings_from(codec_id, decoded, {"bin_depth_mm": 1000, "sensor_height_mm": 3000})
    assert all(isinstance(reading.value, float) for reading in readings)


_REGISTRY = CodecRegistry()
