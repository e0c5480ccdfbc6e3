"""Robust statistics for noisy sensor series: fast median and quantile, the Theil–Sen line, lasting steps.

Why robust fits: bin and soil sensors are ultrasonic or capacitive and report the
odd wild value (a bag under the sensor, a wet leaf); a least-squares line bends
towards such outliers, the Theil–Sen slope (median of pairwise slopes) does not
until almost a third of the points are bad.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from domain.analytics.arrays import as_floats

THEIL_SEN_MAX_POINTS = 200
"""Pairwise slopes grow with the square of the points; beyond this the series is thinned evenly.

200 points (19,900 slopes) pin a fill or drying rate down far below the sensors' own
noise, and keep a town's collection list (a fit per bin) within milliseconds."""


@dataclass(frozen=True, slots=True)
class LineFit:
    """`value(t) = level + slope_per_s * (t - at_s)`: the line evaluated at a reference time."""

    slope_per_s: float
    level: float
    at_s: float

    def value_at(self, moment_s: float) -> float:
        return self.level + self.slope_per_s * (moment_s - self.at_s)


def median(values: NDArray[np.float64]) -> float:
    """`np.median` of finite values, without its NaN check and reduction machinery.

    Called for every bin and soil sensor of a page (tens of thousands of pair slopes,
    and many three-point windows), where that machinery cost more than the selection.
    The same value as `np.median`: the middle element, or the mean of the two middle ones.
    """
    size = values.size
    if size == 0:
        return float("nan")
    middle = size // 2
    if size % 2:
        return float(np.partition(values, middle)[middle])
    low, high = np.partition(values, (middle - 1, middle))[middle - 1 : middle + 1]
    return float((low + high) / 2)


def quantile(values: NDArray[np.float64], fraction: float) -> float:
    """`np.quantile` of finite values with its default (linear) method, by partition.

    Called for every gateway of a health page, where `np.percentile`'s general machinery
    took longer than the selection of the two neighbouring values.
    """
    size = values.size
    if size == 0:
        return float("nan")
    position = fraction * (size - 1)
    below = min(int(position), size - 1)
    above = min(below + 1, size - 1)
    low, high = np.partition(values, (below, above))[[below, above]]
    weight = position - below
    # numpy's interpolation: from the nearer neighbour, so that equal neighbours give that value
    if weight >= 0.5:
        return float(high - (high - low) * (1.0 - weight))
    return float(low + (high - low) * weight)


@cache
def _pairs(size: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Index pairs i < j of `size` points: the same few sizes come back for every series."""
    first, second = np.triu_indices(size, k=1)
    first.setflags(write=False)  # shared by every caller of this size
    second.setflags(write=False)
    return first, second


def theil_sen(times_s: ArrayLike, values: ArrayLike, *, at_s: float | None = None) -> LineFit | None:
    """The Theil–Sen line through the points, or None with fewer than two distinct times.

    The level is the median of `value - slope * (t - at)`, which is as robust as the
    slope itself; `at_s` defaults to the last time, where forecasts start.
    """
    t = as_floats(times_s)
    y = as_floats(values)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    if t.size > THEIL_SEN_MAX_POINTS:
        chosen = np.linspace(0, t.size - 1, THEIL_SEN_MAX_POINTS).round().astype(np.int64)
        t, y = t[chosen], y[chosen]
    if t.size < 2:
        return None
    first, second = _pairs(int(t.size))
    dt = t[second] - t[first]
    distinct = dt != 0
    if not distinct.any():
        return None
    slope = median((y[second] - y[first])[distinct] / dt[distinct])
    reference = float(t.max()) if at_s is None else at_s
    level = median(y - slope * (t - reference))
    return LineFit(slope, level, reference)


def sudden_steps(values: ArrayLike, *, step: float, window: int = 3) -> list[int]:
    """Indices where the series jumps by at least `step` (negative: a drop) and stays there.

    A jump counts when the single step is that large and the median of up to
    `window` points after it differs that much from the median of up to `window`
    points before it; so one wild reading between normal ones is no step, while a
    real emptying or watering is. Consecutive indices of one step are merged.
    """
    y = as_floats(values)
    found: list[int] = []
    direction = 1.0 if step > 0 else -1.0
    size = abs(step)
    # Only the few single steps that are large enough are looked at closely; a bin's
    # fortnight is over a thousand readings and this runs for every bin of a town.
    large = np.flatnonzero(direction * np.diff(y) >= size) + 1
    for index in large.tolist():
        before = median(y[max(0, index - window) : index])
        after = median(y[index : index + window])
        if direction * (after - before) < size:
            continue
        if found and found[-1] == index - 1:
            continue
        found.append(index)
    return found
