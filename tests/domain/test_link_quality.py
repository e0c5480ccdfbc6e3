"""Link quality on small series: counter resets and retransmissions are not loss, and a gateway's
status has hysteresis (checked against a step-by-step oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.analytics.link_quality import (
    MIN_OFFLINE_AFTER_S,
    OFFLINE_FACTOR,
    Availability,
    availability,
    expected_interval,
    frame_loss,
    signal_percentiles,
)


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


def test_expected_interval_stays_between_floor_and_ceiling() -> None:
    assert expected_interval([0.0, 10.0]) == 6 * 3600.0  # too few events to tell
    assert expected_interval(np.arange(0, 100, 5.0)) == 60.0
    assert expected_interval(np.arange(0, 100, 5.0), floor_s=1.0) == pytest.approx(5.0)
    assert expected_interval(np.arange(0, 10 * 86_400, 43_200.0)) == 6 * 3600.0


def test_a_gateway_never_heard_is_offline() -> None:
    silent = availability([], start_s=0.0, now_s=3600.0, interval_s=60.0)
    assert silent == Availability(False, None, 0.0, MIN_OFFLINE_AFTER_S)
    assert availability([], start_s=10.0, now_s=10.0, interval_s=60.0).online_fraction is None
