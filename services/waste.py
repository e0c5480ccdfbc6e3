"""Waste bins: devices reporting `fill_level`, with fill rate and forecast full time.

The forecast looks at `FORECAST_WINDOW` of history: a bin emptied weekly has its
last emptying in there, and the fit (`domain.analytics.forecast_fill`) uses only
the readings after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from domain.analytics import FillForecast, Floats, emptyings, forecast_fill
from storage.models import Device, DeviceState
from storage.series import Series, device_series, devices_with_state, epoch_seconds, from_epoch

FILL_LEVEL = "fill_level"
FORECAST_WINDOW = timedelta(days=14)
COLLECTION_CANDIDATES = 5000
"""At most this many bins are ranked for one collection list: more than any member town has."""


@dataclass(frozen=True, slots=True)
class BinStatus:
    device: Device
    fill_percent: float
    measured_at: datetime
    rate_percent_per_day: float | None
    full_at: datetime | None
    last_emptied_at: datetime | None


class EmptyingHints:
    """Per bin, where the history that decides its forecast starts: shortly before its last emptying.

    The forecast fits only the readings since the last emptying, so a list of bins
    need not read each bin's whole fortnight again on every request: once an emptying
    has been found, later requests start the bin's series `HINT_MARGIN` readings
    before it (enough for the step detector to see the same step the same way). A hint
    whose emptying is no longer found in the shorter series (its readings were decoded
    anew, or it left the window) is dropped and the bin is read whole, so an answer is
    always the one the whole window gives.
    """

    HINT_MARGIN = 10
    CAPACITY = 200_000

    def __init__(self) -> None:
        self._starts: dict[int, datetime] = {}

    def usable(self, device_ids: list[int], window_start: datetime) -> dict[int, datetime]:
        starts = self._starts
        return {
            device_id: hinted
            for device_id in device_ids
            if (hinted := starts.get(device_id)) is not None and hinted > window_start
        }

    def learn(self, device_id: int, times_s: Floats, emptied_index: int | None) -> None:
        if emptied_index is None:
            self._starts.pop(device_id, None)
            return
        if len(self._starts) >= self.CAPACITY:
            self._starts.clear()
        self._starts[device_id] = from_epoch(float(times_s[max(0, emptied_index - self.HINT_MARGIN)]))


HINTS = EmptyingHints()


def _statuses(
    session: Session, rows: list[tuple[Device, DeviceState]], *, now: datetime, full_percent: float
) -> list[BinStatus]:
    window_start = now - FORECAST_WINDOW
    device_ids = [device.id for device, _ in rows]
    hinted = HINTS.usable(device_ids, window_start)
    series = device_series(session, device_ids, FILL_LEVEL, start=window_start, end=now, later_starts=hinted)
    now_s = epoch_seconds(now)

    def fitted(part: dict[int, Series]) -> dict[int, FillForecast | None]:
        return {
            device_id: forecast_fill(found.times_s, found.values, now_s=now_s, full_percent=full_percent)
            for device_id, found in part.items()
        }

    forecasts = fitted(series)
    lost = [
        device_id
        for device_id in hinted
        if (forecast := forecasts[device_id]) is None or forecast.last_emptied_index is None
    ]
    if lost:
        whole = device_series(session, lost, FILL_LEVEL, start=window_start, end=now)
        series.update(whole)
        forecasts.update(fitted(whole))
    statuses = []
    for device, state in rows:
        found = series[device.id]
        forecast = forecasts[device.id]
        rate = until = emptied = None
        if forecast is not None:
            HINTS.learn(device.id, found.times_s, forecast.last_emptied_index)
            rate = forecast.rate_percent_per_day
            until = forecast.seconds_until_full
            if forecast.last_emptied_index is not None:
                emptied = from_epoch(float(found.times_s[forecast.last_emptied_index]))
        elif state.value >= full_percent:
            until = 0.0
        statuses.append(
            BinStatus(
                device=device,
                fill_percent=state.value,
                measured_at=state.time,
                rate_percent_per_day=rate,
                full_at=now + timedelta(seconds=until) if until is not None else None,
                last_emptied_at=emptied,
            )
        )
    return statuses


def bin_statuses(
    session: Session,
    municipality_id: int,
    *,
    now: datetime,
    full_percent: float,
    after_device_id: int | None,
    limit: int,
) -> list[BinStatus]:
    """Bins by device id, at most `limit + 1`, each with its forecast."""
    rows = devices_with_state(
        session, municipality_id, FILL_LEVEL, after_device_id=after_device_id, limit=limit + 1
    )
    return _statuses(session, rows, now=now, full_percent=full_percent)


def collection_list(
    session: Session, municipality_id: int, *, now: datetime, within: timedelta, full_percent: float
) -> list[BinStatus]:
    """Bins full now or forecast full within `within`, most urgent first (then by DevEUI)."""
    rows = devices_with_state(
        session, municipality_id, FILL_LEVEL, after_device_id=None, limit=COLLECTION_CANDIDATES
    )
    due = [
        status
        for status in _statuses(session, rows, now=now, full_percent=full_percent)
        if status.full_at is not None and status.full_at <= now + within
    ]
    return sorted(
        due, key=lambda status: (status.full_at or now, -status.fill_percent, status.device.dev_eui)
    )


@dataclass(frozen=True, slots=True)
class Emptying:
    time: datetime
    before_percent: float
    after_percent: float


def emptying_history(session: Session, device: Device, *, start: datetime, end: datetime) -> list[Emptying]:
    """Each detected emptying in [start, end]: when, and the fill level before and after."""
    found = device_series(session, [device.id], FILL_LEVEL, start=start, end=end, with_state_before=True)[
        device.id
    ]
    events = []
    for index in emptyings(found.values):
        moment = from_epoch(float(found.times_s[index]))
        if moment < start:
            continue
        events.append(
            Emptying(
                time=moment,
                before_percent=float(found.values[index - 1]),
                after_percent=float(np.median(found.values[index : index + 3])),
            )
        )
    return events
