"""Use-case and link-health analytics over plain numpy arrays.

Everything here is pure: times are float seconds since the epoch (UTC), values are
the stored units of `domain.quantity`, and nothing reads a clock or a database.
That keeps each rule (what counts as an emptying, when a gateway is offline, when a
parking spot really changed) testable on a handful of numbers, and lets storage
choose how much history to hand over.

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

Floats = NDArray[np.float64]

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
HOURS_PER_WEEK = 168

THEIL_SEN_MAX_POINTS = 200
"""Pairwise slopes grow with the square of the points; beyond this the series is thinned evenly.

200 points (19,900 slopes) pin a fill or drying rate down far below the sensors' own
noise, and keep a town's collection list (a fit per bin) within milliseconds."""

EMPTYING_DROP_PERCENT = 25.0
"""A fall of the fill level by at least this many points between readings is an emptying, not noise."""

WATERING_RISE_PERCENT = 5.0
"""A rise of soil moisture by at least this many points is rain or watering: drying starts anew."""


def _floats(values: ArrayLike) -> Floats:
    return np.asarray(values, dtype=np.float64)


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
    t = _floats(times_s)
    y = _floats(values)
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
    y = _floats(values)
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
    t = _floats(times_s)
    y = _floats(fill_percent)
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
    t = _floats(times_s)
    y = _floats(moisture_percent)
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
    t = _floats(times_s)
    y = _floats(battery_percent)
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


@dataclass(frozen=True, slots=True)
class FrameLoss:
    """Frames expected from the counters, frames received, and how often the counter restarted."""

    expected: int
    received: int
    resets: int

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def percent(self) -> float | None:
        return None if self.expected == 0 else 100.0 * self.lost / self.expected


def frame_loss(f_cnts_in_arrival_order: ArrayLike) -> FrameLoss:
    """Loss from gaps in the uplink frame counter, counting each run between resets on its own.

    A counter that goes down is a restart (a rejoin or a reboot of an ABP device),
    not a billion lost frames; a repeated counter is a retransmission, not a new frame.
    """
    counters = np.asarray(f_cnts_in_arrival_order, dtype=np.int64)
    if counters.size == 0:
        return FrameLoss(0, 0, 0)
    restarts = np.flatnonzero(np.diff(counters) < 0) + 1
    expected = received = 0
    for run in np.split(counters, restarts):
        unique = np.unique(run)
        expected += int(unique[-1] - unique[0]) + 1
        received += int(unique.size)
    return FrameLoss(expected, received, int(restarts.size))


@dataclass(frozen=True, slots=True)
class SignalPercentiles:
    p5: float
    p50: float
    p95: float


def signal_percentiles(values: ArrayLike) -> SignalPercentiles | None:
    """5th, 50th and 95th percentile of RSSI or SNR values; None without values."""
    v = _floats(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    p5, p50, p95 = np.percentile(v, [5.0, 50.0, 95.0])
    return SignalPercentiles(float(p5), float(p50), float(p95))


def hour_of_week_profile(hours_of_week: ArrayLike, values: ArrayLike) -> Floats:
    """The mean value for each of the 168 hours of a week (Monday 00–01 first); NaN where none.

    The caller computes each sample's hour of week in local time, so that "Saturday
    morning" means the town's Saturday morning the whole year round.
    """
    hours = np.asarray(hours_of_week, dtype=np.int64)
    v = _floats(values)
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
    t = _floats(times_s)
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
    edges = _floats(edges_s)
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


@dataclass(frozen=True, slots=True)
class Availability:
    """A gateway's status now with hysteresis, since when, and its online share of the window."""

    online: bool
    since_s: float | None
    online_fraction: float | None
    offline_after_s: float


MIN_OFFLINE_AFTER_S = 600.0
OFFLINE_FACTOR = 3.0
CONFIRMING_EVENTS = 2


def expected_interval(
    event_times_s: ArrayLike, *, floor_s: float = 60.0, ceiling_s: float = 6 * 3600.0
) -> float:
    """How often a gateway is normally heard: the 90th percentile of the gaps between its events.

    The 90th rather than the median so that a quiet night with few uplinks is still
    "normal" and does not take the gateway offline every night.
    """
    t = np.unique(_floats(event_times_s))
    if t.size < 3:
        return ceiling_s
    return float(np.clip(quantile(np.diff(t), 0.9), floor_s, ceiling_s))


def availability(
    event_times_s: ArrayLike,
    *,
    start_s: float,
    now_s: float,
    interval_s: float,
    confirming_events: int = CONFIRMING_EVENTS,
) -> Availability:
    """Online/offline over [start, now] from the times a gateway was heard, with hysteresis.

    Offline after silence longer than `OFFLINE_FACTOR` expected intervals (at least
    `MIN_OFFLINE_AFTER_S`); online again only after `confirming_events` events in a row
    with no such silence between them. One stray packet after an outage does not
    flip the status back, and a gap within the usual rhythm never flips it off.
    The window starts offline: a gateway must show itself.
    """
    offline_after = max(MIN_OFFLINE_AFTER_S, OFFLINE_FACTOR * interval_s)
    t = np.unique(_floats(event_times_s))
    t = t[(t >= start_s - offline_after) & (t <= now_s)]
    span = now_s - start_s
    if t.size == 0:
        return Availability(False, None, None if span <= 0 else 0.0, offline_after)
    # Runs of events with no silence longer than `offline_after` between them; a run
    # brings the gateway online at its `confirming_events`-th event and takes it off
    # `offline_after` after its last one (or not yet, for a last run still going on).
    breaks = np.flatnonzero(np.diff(t) > offline_after)
    run_starts = np.concatenate(([0], breaks + 1))
    run_ends = np.concatenate((breaks, [t.size - 1]))
    confirmed = run_ends - run_starts + 1 >= confirming_events
    went_on = t[run_starts[confirmed] + confirming_events - 1]
    went_off = t[run_ends[confirmed]] + offline_after
    online = bool(went_on.size and run_ends[confirmed][-1] == t.size - 1 and now_s - t[-1] <= offline_after)
    if online:
        went_off[-1] = now_s
    online_time = float(np.maximum(0.0, went_off - np.maximum(went_on, start_s)).sum())
    since: float | None = None
    if went_on.size:
        since = float(went_on[-1] if online else went_off[-1])
    fraction = None if span <= 0 else min(1.0, online_time / span)
    return Availability(online, since, fraction, offline_after)
