"""Parking: spots are devices with `parking_zone` (and `parking_spot`) metadata reporting `occupied`.

Every state shown is debounced (`domain.analytics.debounce`): a change counts once
it has held for `hold`, so a flickering sensor neither shows a free spot that is
not free nor floods the history. A zone's capacity is the row in `parking_zone`
when someone entered one (spots without sensors), else the number of sensors.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.orm import Session

from domain.analytics import StateChanges, debounce, hour_of_week_profile, step_means
from domain.buckets import BucketGrid, bucket_start
from domain.errors import NotFound
from storage.models import Device
from storage.parking import parking_devices, zone_capacities
from storage.series import device_series, epoch_seconds, from_epoch

OCCUPIED = "occupied"
LOCAL_TIME = ZoneInfo("Europe/Berlin")
"""Typical occupancy is by the town's clock: Saturday morning is Saturday morning in summer too."""

FLAP_WINDOW = timedelta(hours=1)
FLAP_CHANGES = 6
"""More raw changes than this within `FLAP_WINDOW` marks a spot as flapping (worth a look)."""


def debounce_lookback(hold: timedelta) -> timedelta:
    """How much history settles a spot's state: several hold periods, at least the flap window."""
    return max(FLAP_WINDOW, 4 * hold)


@dataclass(frozen=True, slots=True)
class SpotState:
    device: Device
    zone: str
    spot: str | None
    occupied: bool | None
    since: datetime | None
    flapping: bool


@dataclass(frozen=True, slots=True)
class ZoneSummary:
    name: str
    capacity: int
    capacity_entered: bool
    sensors: int
    occupied: int
    free: int
    unknown: int


def _zone_of(device: Device) -> str:
    return str(device.metadata_["parking_zone"])


def _changes(
    session: Session, devices: list[Device], *, start: datetime, end: datetime, hold: timedelta
) -> dict[int, StateChanges]:
    series = device_series(
        session, [device.id for device in devices], OCCUPIED, start=start, end=end, with_state_before=True
    )
    return {
        device_id: debounce(
            found.times_s, found.values, hold_s=hold.total_seconds(), now_s=epoch_seconds(end)
        )
        for device_id, found in series.items()
    }


def spot_states(
    session: Session, devices: list[Device], *, now: datetime, hold: timedelta
) -> list[SpotState]:
    """Each spot's debounced state now, since when, and whether it flaps."""
    changes = _changes(session, devices, start=now - debounce_lookback(hold), end=now, hold=hold)
    recent = device_series(
        session, [device.id for device in devices], OCCUPIED, start=now - FLAP_WINDOW, end=now
    )
    states = []
    for device in devices:
        change = changes[device.id]
        raw = recent[device.id].values >= 0.5
        flaps = int(np.count_nonzero(raw[1:] != raw[:-1]))
        since = change.since()
        states.append(
            SpotState(
                device=device,
                zone=_zone_of(device),
                spot=device.metadata_.get("parking_spot"),
                occupied=change.state_at(epoch_seconds(now)),
                since=from_epoch(since) if since is not None else None,
                flapping=flaps > FLAP_CHANGES,
            )
        )
    return states


def zone_summaries(
    session: Session, municipality_id: int, *, now: datetime, hold: timedelta, zone: str | None = None
) -> list[ZoneSummary]:
    """Zones by name with occupied and free spaces now.

    Free counts only spaces known to be free: a spot whose sensor never reported is
    `unknown`, neither free nor occupied, so a driver is not sent to it.
    """
    devices = parking_devices(session, municipality_id, zone)
    capacities = zone_capacities(session, municipality_id)
    by_zone: dict[str, list[SpotState]] = defaultdict(list)
    for state in spot_states(session, devices, now=now, hold=hold):
        by_zone[state.zone].append(state)
    names = set(by_zone) | ({zone} & set(capacities) if zone is not None else set(capacities))
    if zone is not None and not names:
        raise NotFound(f"no parking zone {zone!r}")
    summaries = []
    for name in sorted(names):
        spots = by_zone.get(name, [])
        occupied = sum(1 for spot in spots if spot.occupied is True)
        unknown = sum(1 for spot in spots if spot.occupied is None)
        capacity = capacities.get(name, len(spots))
        summaries.append(
            ZoneSummary(
                name=name,
                capacity=capacity,
                capacity_entered=name in capacities,
                sensors=len(spots),
                occupied=occupied,
                free=max(0, capacity - occupied - unknown),
                unknown=unknown,
            )
        )
    return summaries


@dataclass(frozen=True, slots=True)
class OccupancyBucket:
    start: datetime
    occupied: float | None
    known_spots: int


def occupancy_history(
    session: Session,
    municipality_id: int,
    zone: str,
    *,
    start: datetime,
    end: datetime,
    width: timedelta,
    hold: timedelta,
    time_zone: ZoneInfo | None = None,
) -> list[OccupancyBucket]:
    """The mean number of occupied spots per bucket, weighted by time (a car parked for half of
    an hour counts half). Buckets are laid out like the readings history's (`BucketGrid`):
    day buckets begin at midnight in `time_zone`."""
    devices = parking_devices(session, municipality_id, zone)
    if not devices and zone not in zone_capacities(session, municipality_id):
        raise NotFound(f"no parking zone {zone!r}")
    grid = BucketGrid(width, time_zone)
    starts = grid.starts(grid.floor(start), end)
    count = len(starts)
    edges = np.asarray([epoch_seconds(moment) for moment in [*starts, grid.shift(starts[-1], 1)]])
    first = starts[0]
    changes = _changes(session, devices, start=first - debounce_lookback(hold), end=end, hold=hold)
    means = np.asarray([step_means(change, edges) for change in changes.values()]).reshape(-1, count)
    known = np.isfinite(means)
    occupied = np.where(known, means, 0.0).sum(axis=0)
    spots = known.sum(axis=0)
    return [
        OccupancyBucket(
            start=starts[index],
            occupied=float(occupied[index]) if spots[index] else None,
            known_spots=int(spots[index]),
        )
        for index in range(count)
    ]


@dataclass(frozen=True, slots=True)
class TypicalHour:
    weekday: int
    hour: int
    occupancy_percent: float | None


def typical_week(
    session: Session, municipality_id: int, zone: str, *, now: datetime, weeks: int, hold: timedelta
) -> list[TypicalHour]:
    """Mean occupancy (% of the spots known at the time) for each local hour of the week."""
    end = bucket_start(now, timedelta(hours=1))
    buckets = occupancy_history(
        session,
        municipality_id,
        zone,
        start=end - timedelta(weeks=weeks),
        end=end,
        width=timedelta(hours=1),
        hold=hold,
    )
    hours = []
    shares = []
    for bucket in buckets:
        if bucket.occupied is None:
            continue
        local = bucket.start.astimezone(LOCAL_TIME)
        hours.append(local.weekday() * 24 + local.hour)
        shares.append(100.0 * bucket.occupied / bucket.known_spots)
    profile = hour_of_week_profile(np.asarray(hours, dtype=np.int64), np.asarray(shares))
    return [
        TypicalHour(
            weekday=index // 24,
            hour=index % 24,
            occupancy_percent=None if np.isnan(value) else round(float(value), 2),
        )
        for index, value in enumerate(profile)
    ]
