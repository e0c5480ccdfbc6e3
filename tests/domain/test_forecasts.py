"""The forecasts on small series: emptyings and waterings restart the fit, and too little data
gives no rate rather than a made-up one."""

from __future__ import annotations

import numpy as np
import pytest

from domain.analytics.forecasts import (
    SECONDS_PER_DAY,
    SECONDS_PER_WEEK,
    battery_trend,
    emptyings,
    forecast_drying,
    forecast_fill,
)

HOUR = 3600.0


def test_fill_forecast_fits_only_the_data_since_the_emptying() -> None:
    rng = np.random.default_rng(7)
    before = np.arange(0, 72) * HOUR
    after = np.arange(72, 120) * HOUR
    fill_before = 20 + (70 / 72) * np.arange(72)
    fill_after = 5 + 1.0 * np.arange(48)
    t = np.concatenate((before, after))
    y = np.concatenate((fill_before, fill_after)) + rng.normal(0, 1.5, t.size)
    y[100] = 99.0  # a bag right under the sensor for one reading
    now = float(t[-1])
    forecast = forecast_fill(t, y, now_s=now, full_percent=90.0)
    assert forecast is not None
    assert forecast.last_emptied_index == 72
    assert forecast.rate_percent_per_day == pytest.approx(24.0, rel=0.1)
    assert forecast.seconds_until_full is not None
    # 5 + 47 = 52 % now, 38 points to go at 1 %/h
    assert forecast.seconds_until_full / HOUR == pytest.approx(38, abs=3)


def test_one_low_reading_is_no_emptying() -> None:
    y = [60, 62, 63, 10, 64, 66, 67]
    assert emptyings(y) == []
    assert emptyings([60, 62, 63, 10, 11, 12]) == [3]


def test_a_bin_that_does_not_fill_has_no_time_full() -> None:
    t = np.arange(10) * HOUR
    forecast = forecast_fill(t, np.full(10, 40.0), now_s=float(t[-1]))
    assert forecast is not None
    assert forecast.rate_percent_per_day == pytest.approx(0.0)
    assert forecast.seconds_until_full is None


def test_a_full_bin_is_due_now_and_sparse_data_has_no_rate() -> None:
    forecast = forecast_fill([0.0, 60.0], [95.0, 97.0], now_s=120.0, full_percent=90.0)
    assert forecast is not None
    assert forecast.rate_percent_per_day is None
    assert forecast.seconds_until_full == 0.0
    assert forecast_fill([], [], now_s=0.0) is None


def test_drying_rate_restarts_after_watering() -> None:
    days = np.arange(0, 10, 0.25)
    moisture = np.where(days < 5, 30 - 2 * days, 35 - 1.5 * (days - 5))
    forecast = forecast_drying(
        days * SECONDS_PER_DAY, moisture, now_s=float(days[-1]) * SECONDS_PER_DAY, lower_percent=20
    )
    assert forecast is not None
    assert forecast.drying_percent_per_day == pytest.approx(1.5, rel=0.02)
    # 35 - 1.5 * 4.75 = 27.9 → (27.9 - 20) / 1.5
    assert forecast.days_until_lower == pytest.approx(5.25, abs=0.1)


def test_dry_soil_needs_water_now() -> None:
    forecast = forecast_drying([0.0], [12.0], now_s=0.0, lower_percent=15.0)
    assert forecast is not None
    assert forecast.days_until_lower == 0.0


def test_battery_weeks_left() -> None:
    days = np.arange(60.0)
    battery = np.round(90 - 0.5 * days)  # whole-percent steps, 3.5 %/week
    trend = battery_trend(days * SECONDS_PER_DAY, battery, now_s=59 * SECONDS_PER_DAY, empty_percent=5)
    assert trend is not None
    assert trend.percent_per_week == pytest.approx(-3.5, abs=0.1)
    assert trend.weeks_left == pytest.approx((60.5 - 5) / 3.5, abs=0.3)
    steady = battery_trend(days * SECONDS_PER_DAY, np.full(60, 80.0), now_s=59 * SECONDS_PER_DAY)
    assert steady is not None
    assert steady.weeks_left is None


def test_a_battery_needs_two_days_for_a_trend() -> None:
    trend = battery_trend([0.0, HOUR, 2 * HOUR, 47 * HOUR], [80.0, 79.0, 78.0, 77.0], now_s=47 * HOUR)
    assert trend is not None
    assert trend.battery_percent == 77.0
    assert trend.percent_per_week is None
    assert trend.weeks_left is None
    assert battery_trend([], [], now_s=0.0) is None


def test_a_battery_already_empty_has_no_weeks_left() -> None:
    days = np.arange(14.0)
    trend = battery_trend(days * SECONDS_PER_DAY, 10 - days, now_s=20 * SECONDS_PER_DAY, empty_percent=5)
    assert trend is not None
    assert trend.percent_per_week == pytest.approx(-SECONDS_PER_WEEK / SECONDS_PER_DAY)
    assert trend.weeks_left == 0.0


def test_soil_without_readings_or_wetting_has_no_forecast() -> None:
    assert forecast_drying([], [], now_s=0.0, lower_percent=20.0) is None
    days = np.arange(0, 4, 0.25)
    wetting = forecast_drying(
        days * SECONDS_PER_DAY, 30 + 0.5 * days, now_s=float(days[-1]) * SECONDS_PER_DAY, lower_percent=20
    )
    assert wetting is not None
    assert wetting.drying_percent_per_day == pytest.approx(-0.5)
    assert wetting.days_until_lower is None
