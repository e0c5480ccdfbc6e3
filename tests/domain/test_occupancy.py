"""Occupancy on small series: flicker is dropped, real changes keep their time, and means are
weighted by how long each state lasted."""

from __future__ import annotations

import numpy as np
import pytest

from domain.analytics.occupancy import HOURS_PER_WEEK, debounce, hour_of_week_profile, step_means


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


def test_hour_of_week_profile_ignores_missing_values_and_foreign_hours() -> None:
    profile = hour_of_week_profile([3, 3, -1, 168], [1.0, np.nan, 1.0, 1.0])
    assert profile[3] == 1.0
    assert int(np.isfinite(profile).sum()) == 1


def test_nothing_reported_is_no_state() -> None:
    changes = debounce([], [], hold_s=60.0, now_s=100.0)
    assert changes.raw_changes == 0
    assert changes.state_at(100.0) is None
    assert changes.since() is None
    assert np.isnan(step_means(changes, [0.0, 50.0, 100.0])).all()
    assert step_means(changes, [0.0]).size == 0
