"""The robust statistics on small series: numpy's answers without its cost, and lines and steps
that see through a few wild values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.analytics.robust_statistics import THEIL_SEN_MAX_POINTS, median, quantile, sudden_steps, theil_sen

HOUR = 3600.0


@given(st.lists(st.floats(min_value=-1e300, max_value=1e300), min_size=1, max_size=60))
def test_median_is_numpys(values: list[float]) -> None:
    array = np.asarray(values, dtype=np.float64)
    expected = float(np.median(array))
    assert median(array) == expected
    assert array.tolist() == values  # the input is not reordered


@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=60),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_quantile_is_numpys(values: list[float], fraction: float) -> None:
    array = np.asarray(values, dtype=np.float64)
    expected = float(np.quantile(array, fraction))
    assert quantile(array, fraction) == pytest.approx(expected, rel=1e-12, abs=1e-9)
    assert array.tolist() == values  # the input is not reordered


def test_theil_sen_ignores_a_few_wild_values() -> None:
    t = np.arange(50) * HOUR
    y = 10.0 + 0.5 * np.arange(50)
    y[[5, 17, 33]] = [100.0, 0.0, 95.0]
    fit = theil_sen(t, y)
    assert fit is not None
    assert fit.slope_per_s * HOUR == pytest.approx(0.5, abs=0.01)
    assert fit.value_at(49 * HOUR) == pytest.approx(34.5, abs=0.2)


def test_theil_sen_needs_two_distinct_times() -> None:
    assert theil_sen([1.0], [2.0]) is None
    assert theil_sen([1.0, 1.0], [2.0, 3.0]) is None


def test_median_and_quantile_of_nothing_are_nan() -> None:
    empty = np.array([], dtype=np.float64)
    assert np.isnan(median(empty))
    assert np.isnan(quantile(empty, 0.5))


def test_theil_sen_skips_missing_values_and_thins_long_series() -> None:
    t = np.arange(3 * THEIL_SEN_MAX_POINTS) * HOUR
    y = 2.0 * np.arange(t.size)
    y[[4, 40]] = np.nan
    fit = theil_sen(t, y, at_s=0.0)
    assert fit is not None
    assert fit.slope_per_s * HOUR == pytest.approx(2.0)
    assert fit.at_s == 0.0
    assert fit.value_at(10 * HOUR) == pytest.approx(20.0)


def test_sudden_steps_finds_lasting_jumps_in_either_direction() -> None:
    rising = [0, 0, 0, 10, 20, 20, 20]
    assert sudden_steps(rising, step=5) == [3]  # one step over two readings is one step
    assert sudden_steps(rising, step=-5) == []
    falling = [50, 51, 50, 20, 21, 20, 55, 56, 55]
    assert sudden_steps(falling, step=-25) == [3]
    assert sudden_steps(falling, step=25) == [6]


def test_a_single_wild_reading_is_no_step() -> None:
    assert sudden_steps([10, 10, 10, 90, 10, 10, 10], step=25) == []
    assert sudden_steps([10, 10, 10, 90, 90, 10, 10], step=25, window=1) == [3]
