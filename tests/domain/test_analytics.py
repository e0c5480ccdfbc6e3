"""The analytics rules on small numpy series: what they must see through (noise, wild values,
emptyings, counter resets, flicker) and what they must not invent."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.analytics import (
    HOURS_PER_WEEK,
    MIN_OFFLINE_AFTER_S,
    OFFLINE_FACTOR,
    SECONDS_PER_DAY,
    Availability,
    availability,
    battery_trend,
    debounce,
    emptyings,
    expected_interval,
    forecast_drying,
    forecast_fill,
    frame_loss,
    hour_of_week_profile,
    median,
    quantile,
    signal_percentiles,
    step_means,
    theil_sen,
)

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


def test_frame_loss_counts_each_run_between_resets() -> None:
    # 10..19 with 12 and 15 lost, a retransmitted 17, then a rejoin: 0..4 with 3 lost
    counters = [10, 11, 13, 14, 16, 17, 17, 18, 19, 0, 1, 2, 4]
    loss = frame_loss(counters)
    assert loss.resets == 1
    assert loss.expected == 10 + 5
    assert loss.received == 8 + 4
    assert loss.lost == 3
    assert loss.percent == pytest.approx(20.0)
    assert frame_loss([]).percent is None


def test_signal_percentiles() -> None:
    values = np.linspace(-120, -20, 101)
    found = signal_percentiles(values)
    assert found is not None
    assert (found.p5, found.p50, found.p95) == pytest.approx((-115.0, -70.0, -25.0))
    assert signal_percentiles([]) is None


def test_hour_of_week_profile_averages_per_hour() -> None:
    hours = np.array([0, 0, 1, 167, 167, 167])
    values = np.array([0.2, 0.4, 1.0, 0.0, 0.5, 1.0])
    profile = hour_of_week_profile(hours, values)
    assert profile.shape == (HOURS_PER_WEEK,)
    assert profile[0] == pytest.approx(0.3)
    assert profile[1] == pytest.approx(1.0)
    assert profile[167] == pytest.approx(0.5)
    assert np.isnan(profile[2])


def test_debounce_drops_flicker_and_dates_real_changes() -> None:
    minute = 60.0
    times = np.array([0, 10, 11, 30, 30.5, 31, 60]) * minute
    states = np.array([0, 1, 0, 1, 0, 1, 0])
    changes = debounce(times, states, hold_s=5 * minute, now_s=62 * minute)
    # 10→11 flickers; 30, 30.5 flicker; the car parked from 31 until 60 counts;
    # leaving at 60 has held only 2 minutes at now
    assert list(changes.states) == [False, True]
    assert list(changes.times_s / minute) == [0, 31]
    assert changes.raw_changes == 6
    assert changes.state_at(62 * minute) is True
    assert changes.since() == 31 * minute
    later = debounce(times, states, hold_s=5 * minute, now_s=70 * minute)
    assert later.state_at(70 * minute) is False
    assert later.since() == 60 * minute


def test_step_means_weight_by_time() -> None:
    changes = debounce([0.0, 30.0], [0, 1], hold_s=0, now_s=120.0)
    means = step_means(changes, [-60.0, 0.0, 60.0, 120.0])
    assert np.isnan(means[0])
    assert means[1] == pytest.approx(0.5)
    assert means[2] == pytest.approx(1.0)


def test_gateway_availability_has_hysteresis() -> None:
    minute = 60.0
    regular = np.arange(0, 60) * minute  # heard every minute for an hour
    outage_end = np.array([120.0]) * minute  # one stray packet after an hour of silence
    back = np.arange(180, 240) * minute
    events = np.concatenate((regular, outage_end, back))
    interval = expected_interval(events[:60])
    assert interval == pytest.approx(60.0)
    at_stray = availability(events[:61], start_s=0, now_s=121 * minute, interval_s=interval)
    assert at_stray.online is False  # one packet does not bring it back
    assert at_stray.since_s == pytest.approx(59 * minute + at_stray.offline_after_s)
    now = 240 * minute
    result = availability(events, start_s=0, now_s=now, interval_s=interval)
    assert result.online is True
    assert result.since_s == 181 * minute  # the second packet in a row confirms it
    # online 1..69 min (last packet at 59 plus ten minutes' grace) and 181..240 min
    assert result.online_fraction == pytest.approx((68 + 59) / 240)


def test_gateway_stays_online_through_its_usual_gaps() -> None:
    minute = 60.0
    events = np.arange(0, 600, 7) * minute
    interval = expected_interval(events)
    result = availability(events, start_s=0, now_s=600 * minute, interval_s=interval)
    assert result.online is True
    assert result.since_s == 7 * minute
    assert result.online_fraction == pytest.approx((600 - 7) / 600, abs=0.01)


def availability_step_by_step(
    times: list[float], *, start_s: float, now_s: float, interval_s: float, confirming_events: int = 2
) -> Availability:
    """The status machine event by event, as first written: the oracle for the vectorised one."""
    offline_after = max(MIN_OFFLINE_AFTER_S, OFFLINE_FACTOR * interval_s)
    t = np.unique(np.asarray(times, dtype=np.float64))
    t = t[(t >= start_s - offline_after) & (t <= now_s)]
    online, since, online_from, online_time, streak = False, None, 0.0, 0.0, 0
    previous: float | None = None
    for moment in t.tolist():
        gap_ok = previous is not None and moment - previous <= offline_after
        if online and not gap_ok:
            assert previous is not None
            went_off = previous + offline_after
            online_time += max(0.0, went_off - max(online_from, start_s))
            online, since = False, went_off
        streak = streak + 1 if gap_ok else 1
        if not online and streak >= confirming_events:
            online, since, online_from = True, moment, moment
        previous = moment
    if online and previous is not None and now_s - previous > offline_after:
        went_off = previous + offline_after
        online_time += max(0.0, went_off - max(online_from, start_s))
        online, since = False, went_off
    elif online:
        online_time += max(0.0, now_s - max(online_from, start_s))
    span = now_s - start_s
    fraction = None if span <= 0 else min(1.0, online_time / span)
    return Availability(online, since, fraction, offline_after)


@given(
    st.lists(st.integers(min_value=-3000, max_value=200_000), max_size=80),
    st.integers(min_value=0, max_value=150_000),
    st.integers(min_value=0, max_value=200_000),
    st.sampled_from([60.0, 300.0, 900.0]),
    st.integers(min_value=1, max_value=3),
)
def test_availability_agrees_with_the_step_by_step_machine(
    times: list[int], start: int, now: int, interval: float, confirming: int
) -> None:
    events = [float(moment) for moment in times]
    expected = availability_step_by_step(
        events, start_s=start, now_s=now, interval_s=interval, confirming_events=confirming
    )
    found = availability(events, start_s=start, now_s=now, interval_s=interval, confirming_events=confirming)
    assert found.online == expected.online
    assert found.since_s == expected.since_s
    assert found.offline_after_s == expected.offline_after_s
    if expected.online_fraction is None:
        assert found.online_fraction is None
    else:
        assert found.online_fraction == pytest.approx(expected.online_fraction, abs=1e-9)
