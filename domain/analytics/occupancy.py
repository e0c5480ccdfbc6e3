"""Occupancy from on/off sensors: debounced state changes, time-weighted means, the weekly profile.

Parking sensors flicker and report at irregular times, so a state only counts once
it has held, and a share of time occupied is weighted by how long each state lasted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from domain.analytics.arrays import Floats, as_floats

HOURS_PER_WEEK = 168


def hour_of_week_profile(hours_of_week: ArrayLike, values: ArrayLike) -> Floats:
    """The mean value for each of the 168 hours of a week (Monday 00–01 first); NaN where none.

    The caller computes each sample's hour of week in local time, so that "Saturday
    morning" means the town's Saturday morning the whole year round.
    """
    hours = np.asarray(hours_of_week, dtype=np.int64)
    v = as_floats(values)
    keep = np.isfinite(v) & (hours >= 0) & (hours < HOURS_PER_WEEK)
    return _weighted_means(hours[keep], v[keep], np.ones(int(keep.sum())), HOURS_PER_WEEK)


def _weighted_means(groups: NDArray[np.int64], values: Floats, weights: Floats, size: int) -> Floats:
    """The weighted mean of `values` per group 0..size-1; NaN for a group without weight."""
    totals = np.bincount(groups, weights=values * weights, minlength=size)[:size]
    weight_sums = np.bincount(groups, weights=weights, minlength=size)[:size]
    means = np.full(size, np.nan)
    has = weight_sums > 0
    means[has] = totals[has] / weight_sums[has]
    return means


@dataclass(frozen=True, slots=True)
class StateChanges:
    """A debounced on/off series: the time of each accepted change and the state it changed to."""

    times_s: Floats
    states: NDArray[np.bool_]
    raw_changes: int

    def state_at(self, moment_s: float) -> bool | None:
        index = int(np.searchsorted(self.times_s, moment_s, side="right")) - 1
        return None if index < 0 else bool(self.states[index])

    def since(self) -> float | None:
        return float(self.times_s[-1]) if self.times_s.size else None


def debounce(times_s: ArrayLike, states: ArrayLike, *, hold_s: float, now_s: float) -> StateChanges:
    """Accept a state change only once the new state has held for `hold_s`.

    A parking sensor that flickers (a car door, a passing lorry, a wet surface)
    reports short-lived changes; they are dropped, and the spot keeps its last
    state held long enough. An accepted change is dated to when it really began.
    The newest state counts once it has held until `now_s`.
    """
    t = as_floats(times_s)
    s = np.asarray(states, dtype=np.float64) >= 0.5
    order = np.argsort(t, kind="stable")
    t, s = t[order], s[order]
    if t.size == 0:
        return StateChanges(t, s, 0)
    change = np.concatenate(([True], s[1:] != s[:-1]))
    run_start_t = t[change]
    run_state = s[change]
    run_end_t = np.concatenate((run_start_t[1:], [now_s]))
    held = (run_end_t - run_start_t) >= hold_s
    accepted_times: list[float] = []
    accepted_states: list[bool] = []
    for start, state, long_enough in zip(run_start_t, run_state, held, strict=True):
        if not long_enough:
            continue
        if accepted_states and accepted_states[-1] == bool(state):
            continue
        accepted_times.append(float(start))
        accepted_states.append(bool(state))
    return StateChanges(
        np.asarray(accepted_times, dtype=np.float64),
        np.asarray(accepted_states, dtype=np.bool_),
        int(change.sum()) - 1,
    )


def step_means(changes: StateChanges, edges_s: ArrayLike) -> Floats:
    """Time-weighted mean of a debounced on/off series within each interval between `edges_s`.

    NaN for time before the first known state, so a chart shows "unknown", not "free".
    """
    edges = as_floats(edges_s)
    means = np.full(max(0, edges.size - 1), np.nan)
    if changes.times_s.size == 0 or edges.size < 2:
        return means
    knots = np.concatenate((changes.times_s, edges))
    knots = np.unique(knots[(knots >= edges[0]) & (knots <= edges[-1])])
    segment_start, segment_end = knots[:-1], knots[1:]
    index = np.searchsorted(changes.times_s, segment_start, side="right") - 1
    known = index >= 0
    value = np.where(known, changes.states[np.clip(index, 0, None)].astype(np.float64), 0.0)
    length = segment_end - segment_start
    bucket = np.searchsorted(edges, segment_start, side="right") - 1
    return _weighted_means(bucket, value, length * known, means.size)
