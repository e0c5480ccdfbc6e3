"""The analytics' one conversion: any numbers in, float64 out, no copy when already float64."""

from __future__ import annotations

import numpy as np

from domain.analytics.arrays import as_floats


def test_as_floats_converts_once() -> None:
    converted = as_floats([1, 2, 3])
    assert converted.dtype == np.float64
    assert converted.tolist() == [1.0, 2.0, 3.0]
    already = np.array([0.5, 1.5])
    assert as_floats(already) is already
