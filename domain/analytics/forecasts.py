"""Forecasts from robust lines: when a bin is full, when soil needs water, when a battery is empty.

Each forecast fits only the readings since the series last restarted (an emptying,
a watering), because the rate before that says nothing about the rate now.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from domain.analytics.arrays import as_floats
from domain.analytics.robust_statistics import median, sudden_steps, theil_sen

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY

EMPTYING_DROP_PERCENT = 25.0
"""A fall of the fill level by at least this many points between readings is an emptying, not noise."""

WATERING_RISE_PERCENT = 5.0
"""A rise of soil moisture by at least this many points is rain or watering: drying starts anew."""


def emptyings(fill_percent: ArrayLike) -> list[int]:
    """Indices of the first reading after each emptying of a bin (a sudden, lasting drop)."""
    return sudden_steps(fill_percent, step=-EMPTYING_DROP_PERCENT)


@dataclass(frozen=True, slots=True)
class FillForecast:
    """A bin's fill since its last emptying and when it reaches `full_percent`.

    `rate_percent_per_day` is None with too little data since the emptying;
    `seconds_until_full` is None when the level does not rise, 0 when already full.
    """

    fill_percent: float
    rate_percent_per_day: float | None
    seconds_until_full: float | None
    last_emptied_index: int | None


MIN_FIT_POINTS = 3
MIN_FIT_SPAN_S = 3600.0


def forecast_fill(
    times_s: ArrayLike, fill_percent: ArrayLike, *, now_s: float, full_percent: float = 100.0
) -> FillForecast | None:
    """Fill rate and time until full from the readings since the last emptying (None without data)."""
    t = as_floats(times_s)
    y = as_floats(fill_percent)
    if t.size == 0:
        return None
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    found = emptyings(y)
    start = found[-1] if found else 0
    since_t, since_y = t[start:], y[start:]
    current = median(since_y[-3:])
    emptied = found[-1] if found else None
    if since_t.size < MIN_FIT_POINTS or since_t[-1] - since_t[0] < MIN_FIT_SPAN_S:
        return FillForecast(current, None, 0.0 if current >= full_percent else None, emptied)
    fit = theil_sen(since_t, since_y, at_s=now_s)
    assert fit is not None  # at least three points over an hour have distinct times
    rate = fit.slope_per_s * SECONDS_PER_DAY
    if current >= full_percent or fit.level >= full_percent:
        until: float | None = 0.0
    elif fit.slope_per_s > 0:
        until = (full_percent - fit.level) / fit.slope_per_s
    else:
        until = None
    return FillForecast(current, rate, until, emptied)


@dataclass(frozen=True, slots=True)
class DryingForecast:
    """Soil moisture now, how fast it falls (positive = drying) and when it crosses `lower_percent`."""

    moisture_percent: float
    drying_percent_per_day: float | None
    days_until_lower: float | None


def forecast_drying(
    times_s: ArrayLike, moisture_percent: ArrayLike, *, now_s: float, lower_percent: float
) -> DryingForecast | None:
    """Drying rate since the last rain or watering (a sudden rise) and days until `lower_percent`.

    `days_until_lower` is 0 when already below, None when the soil is not drying.
    """
    t = as_floats(times_s)
    y = as_floats(moisture_percent)
    if t.size == 0:
        return None
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    rises = sudden_steps(y, step=WATERING_RISE_PERCENT)
    start = rises[-1] if rises else 0
    since_t, since_y = t[start:], y[start:]
    current = median(since_y[-3:])
    if current <= lower_percent:
        days: float | None = 0.0
    else:
        days = None
    if since_t.size < MIN_FIT_POINTS or since_t[-1] - since_t[0] < MIN_FIT_SPAN_S:
        return DryingForecast(current, None, days)
    fit = theil_sen(since_t, since_y, at_s=now_s)
    assert fit is not None
    drying = -fit.slope_per_s * SECONDS_PER_DAY
    if days is None and drying > 0:
        days = max(0.0, (min(current, fit.level) - lower_percent) / drying)
    return DryingForecast(current, drying, days)


@dataclass(frozen=True, slots=True)
class BatteryTrend:
    """Battery now, its change per week (negative = draining) and weeks until `empty_percent`."""

    battery_percent: float
    percent_per_week: float | None
    weeks_left: float | None


def battery_trend(
    times_s: ArrayLike, battery_percent: ArrayLike, *, now_s: float, empty_percent: float = 5.0
) -> BatteryTrend | None:
    """A robust line through battery readings (daily means are enough) and its reach to empty.

    Battery readings are coarse (whole percent steps) and jump with temperature, so
    only a fit over weeks says anything; with less than two days of data the trend is None.
    """
    t = as_floats(times_s)
    y = as_floats(battery_percent)
    if t.size == 0:
        return None
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    current = float(y[-1])
    if t.size < MIN_FIT_POINTS or t[-1] - t[0] < 2 * SECONDS_PER_DAY:
        return BatteryTrend(current, None, None)
    fit = theil_sen(t, y, at_s=now_s)
    assert fit is not None
    per_week = fit.slope_per_s * SECONDS_PER_WEEK
    weeks = None
    if per_week < 0:
        weeks = max(0.0, (fit.level - empty_percent) / -per_week)
    return BatteryTrend(current, per_week, weeks)
