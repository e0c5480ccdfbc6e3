"""A network-decoded object may carry any JSON number; none may escape as an exception."""

from __future__ import annotations

from decoders import CodecRegistry
from domain.reading import Quality


def test_an_integer_beyond_float_range_is_an_implausible_reading() -> None:
    outcome = CodecRegistry().decode(
        codec_id=None, f_port=1, payload=b"", network_decoded={"temperature": 10**400, "humidity": -(10**400)}
    )
    by_quantity = {reading.quantity: reading for reading in outcome.readings}
    assert by_quantity["temperature"].value == float("inf")
    assert by_quantity["temperature"].quality is Quality.IMPLAUSIBLE
    assert by_quantity["relative_humidity"].value == float("-inf")
