"""Every vendor example of every vector file, through the built-in decoders.

Comparison is on the keys the example lists (several examples are subsets of
what the vendor decoder emits, see each file's notes), with a float tolerance.
Where lorakom deliberately differs from a vector, DIVERGENCES says so and what
it gives instead; such a divergence is asserted, not skipped.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from decoders.registry import BUILTIN_CODECS, CodecRegistry
from domain.errors import DecodeError
from tests.decoders.conftest import vector_files

# (codec id, example description) -> (why, the expected output lorakom gives instead)
DIVERGENCES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("milesight-iot/vs121-codec", "AI Workplace Sensor (example 1) - Milesight IoT"): (
        "region occupancy read as a bitmap (0x0002 = only region 1); the vendor compares bitmap > index",
        {
            "people_counter_all": 3,
            "region_count": 3,
            "regions": [{"count": 0, "index": 0}, {"count": 1, "index": 1}, {"count": 0, "index": 2}],
        },
    ),
}

# Keys whose value in an example is `null` only because the YAML spells a missing unit that way.
_ABSENT_WHEN_NULL = {"unit"}


def _cases() -> list[Any]:
    cases = []
    for vector in vector_files():
        codec_id = f"{vector['vendor']}/{vector['codec']}"
        examples = list(vector["examples"]) + list(vector.get("alternate_examples", {}).get("examples", []))
        for index, example in enumerate(examples):
            cases.append(pytest.param(codec_id, example, id=f"{codec_id}#{index}"))
    return cases


def _matches(actual: object, expected: object, where: str = "") -> list[str]:
    """Differences between `actual` and `expected`, restricted to the keys `expected` lists."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                if value is None and key in _ABSENT_WHEN_NULL:
                    continue
                problems.append(f"{where}.{key}: missing")
                continue
            problems.extend(_matches(actual[key], value, f"{where}.{key}"))
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        return [
            p
            for i, (a, e) in enumerate(zip(actual, expected, strict=True))
            for p in _matches(a, e, f"{where}[{i}]")
        ]
    numeric = (int, float)
    if isinstance(expected, numeric) and not isinstance(expected, bool):
        if isinstance(actual, bool) or not isinstance(actual, numeric):
            return [f"{where}: expected number {expected!r}, got {actual!r}"]
        return (
            []
            if math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
            else [f"{where}: {actual!r} != {expected!r}"]
        )
    return [] if actual == expected else [f"{where}: {actual!r} != {expected!r}"]


@pytest.mark.parametrize(("codec_id", "example"), _cases())
def test_vendor_example(registry: CodecRegistry, codec_id: str, example: dict[str, Any]) -> None:
    payload = bytes.fromhex(example["bytes_hex"])
    if "errors" in example:
        with pytest.raises(DecodeError) as raised:
            registry.decode_builtin(codec_id, example["fPort"], payload)
        for message in example["errors"]:
            assert message in str(raised.value)
        return
    decoded = registry.decode_builtin(codec_id, example["fPort"], payload)
    expected = example["expected"]
    divergence = DIVERGENCES.get((codec_id, example["description"]))
    if divergence is not None:
        assert _matches(decoded, expected), "a listed divergence now matches the vendor; remove it"
        expected = divergence[1]
    assert _matches(decoded, expected) == []


def test_every_vector_file_has_a_builtin_codec_and_back() -> None:
    in_vectors = {f"{vector['vendor']}/{vector['codec']}" for vector in vector_files()}
    builtin = {codec.codec_id for codec in BUILTIN_CODECS}
    assert in_vectors <= builtin
    assert builtin - in_vectors == {"cayenne/lpp"}


def test_extra_channels_the_vendor_examples_leave_out_are_decoded(registry: CodecRegistry) -> None:
    smtc = registry.decode_builtin(
        "milesight-iot/em500-smtc-codec", 85, bytes.fromhex("01755c03673401046865057ff000")
    )
    assert smtc["conductivity"] == 240
    am307 = registry.decode_builtin(
        "milesight-iot/am307-codec", 85, bytes.fromhex("01755c03673401046865056a4900")
    )
    assert am307["activity"] == 73
