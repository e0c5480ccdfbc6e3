"""Link quality of devices and gateways: frame loss, signal percentiles, gateway availability.

A device's link is judged from its frame counters and the RSSI/SNR of its receptions;
a gateway's from the times it was heard, with hysteresis so that one stray packet or
one quiet night does not flip its status.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from domain.analytics.arrays import as_floats
from domain.analytics.robust_statistics import quantile


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
    v = as_floats(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    p5, p50, p95 = np.percentile(v, [5.0, 50.0, 95.0])
    return SignalPercentiles(float(p5), float(p50), float(p95))


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
    t = np.unique(as_floats(event_times_s))
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
    t = np.unique(as_floats(event_times_s))
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
