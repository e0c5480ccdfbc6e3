"""Link health for field technicians: is a gateway up, is a device still talking, and how well.

Gateway status is computed from when the gateway was heard (receptions of uplinks
and its own online heartbeats), counted in `ACTIVITY_BIN` bins so that a busy
gateway's month is at most 8,640 points; `domain.analytics.availability` then puts
hysteresis on it. The network server's own `gateway.online` flag is shown beside it
but not trusted alone: some servers never send a status message.

What a municipality sees of a gateway it does not run (a neighbour's gateway that
carries its devices) is limited to its own devices: "devices heard" never lists a
neighbour's sensors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Float, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.orm import Session, aliased

from domain.analytics import (
    Availability,
    BatteryTrend,
    FrameLoss,
    SignalPercentiles,
    availability,
    battery_trend,
    expected_interval,
    frame_loss,
)
from storage.gateways import GatewayView
from storage.models import (
    Device,
    DeviceActivity,
    Gateway,
    GatewayActivity,
    GatewayDevice,
    GatewayHeartbeat,
    Reception,
    Uplink,
)
from storage.readings import BUCKET_ORIGIN, date_bin_bucket
from storage.series import Series, daily_means, epoch_of, epoch_seconds, from_epoch
from storage.uplinks import GATEWAY_ACTIVITY_BIN

ACTIVITY_BIN = GATEWAY_ACTIVITY_BIN
STATUS_WINDOW = timedelta(days=2)
TRAFFIC_WINDOW = timedelta(hours=24)
SIGNAL_WINDOW = timedelta(days=7)
UPTIME_WINDOWS = (timedelta(days=7), timedelta(days=30))
BATTERY_WINDOW = timedelta(days=90)
SILENT_FACTOR = 2.5
"""A device is silent once quiet for this many expected intervals: one lost frame is normal."""
DEFAULT_DEVICE_INTERVAL = timedelta(hours=1)
BATTERY = "battery"


def activity_times(
    session: Session, gateway_ids: Sequence[str], *, start: datetime, end: datetime
) -> dict[str, Series]:
    """For each gateway the start times (epoch s) of the bins in which it was heard.

    Receptions come from ingest's `gateway_activity` bins, one array per gateway (a
    month of bins is thousands of rows, cheap as one value); heartbeats are binned
    here, being few, and the two are merged in numpy.
    """
    if not gateway_ids:
        return {}
    moments = epoch_of(GatewayActivity.bin_start)
    heard = (
        select(
            GatewayActivity.gateway_id,
            func.array_agg(aggregate_order_by(moments, GatewayActivity.bin_start), type_=ARRAY(Float)),
        )
        .where(
            GatewayActivity.gateway_id.in_(gateway_ids),
            GatewayActivity.bin_start > start - ACTIVITY_BIN,
            GatewayActivity.bin_start <= end,
        )
        .group_by(GatewayActivity.gateway_id)
    )
    # Column queries go through the Core connection: the ORM's compile and result layers
    # cost more than these queries (health is polled by phones in the field).
    core = session.connection()
    found: dict[str, Sequence[float]] = {gateway_id: bins for gateway_id, bins in core.execute(heard)}
    beat_bin = date_bin_bucket(ACTIVITY_BIN, GatewayHeartbeat.time, BUCKET_ORIGIN)
    beats = (
        select(GatewayHeartbeat.gateway_id, epoch_of(beat_bin))
        .where(
            GatewayHeartbeat.gateway_id.in_(gateway_ids),
            GatewayHeartbeat.online.is_(True),
            GatewayHeartbeat.time.between(start, end),
        )
        .distinct()
    )
    beat_bins: dict[str, list[float]] = defaultdict(list)
    for gateway_id, moment in core.execute(beats):
        beat_bins[gateway_id].append(moment)
    series = {}
    for gateway_id in gateway_ids:
        times = np.asarray(found.get(gateway_id, ()), dtype=np.float64)
        if gateway_id in beat_bins:
            times = np.union1d(times, np.asarray(beat_bins[gateway_id], dtype=np.float64))
        series[gateway_id] = Series(times, np.ones(times.size))
    return series


def gateway_availability(gateway: Gateway, heard: Series, *, start: datetime, now: datetime) -> Availability:
    """Status now and online share of [start, now]; a gateway first seen later is judged from then."""
    if gateway.first_seen_at is not None and gateway.first_seen_at > start:
        start = gateway.first_seen_at
    interval = max(ACTIVITY_BIN.total_seconds(), expected_interval(heard.times_s))
    return availability(
        heard.times_s, start_s=epoch_seconds(start), now_s=epoch_seconds(now), interval_s=interval
    )


@dataclass(frozen=True, slots=True)
class GatewayHealth:
    view: GatewayView
    status: Availability
    last_heard_at: datetime | None
    uplinks_per_hour: float
    devices_heard: int


def _traffic(
    session: Session, gateway_ids: Sequence[str], municipality_id: int, *, now: datetime
) -> dict[str, tuple[int, int]]:
    """Per gateway: receptions in the last day (to the 5-minute bin), and how many of the
    municipality's devices it heard then (to the hour, see `GatewayDevice`)."""
    since = now - TRAFFIC_WINDOW
    core = session.connection()  # Core, not ORM: see `activity_times`
    receptions = dict(
        core.execute(
            select(GatewayActivity.gateway_id, func.sum(GatewayActivity.receptions))
            .where(GatewayActivity.gateway_id.in_(gateway_ids), GatewayActivity.bin_start > since)
            .group_by(GatewayActivity.gateway_id)
        ).all()
    )
    devices = dict(
        core.execute(
            select(GatewayDevice.gateway_id, func.count())
            .join(Device, Device.dev_eui == GatewayDevice.dev_eui)
            .where(
                GatewayDevice.gateway_id.in_(gateway_ids),
                GatewayDevice.heard_at > since,
                Device.municipality_id == municipality_id,
            )
            .group_by(GatewayDevice.gateway_id)
        ).all()
    )
    return {
        gateway_id: (int(receptions.get(gateway_id) or 0), int(devices.get(gateway_id) or 0))
        for gateway_id in gateway_ids
    }


def gateway_health(
    session: Session, views: list[GatewayView], municipality_id: int, *, now: datetime
) -> list[GatewayHealth]:
    ids = [view.gateway.gateway_id for view in views]
    heard = activity_times(session, ids, start=now - STATUS_WINDOW, end=now)
    traffic = _traffic(session, ids, municipality_id, now=now)
    found = []
    for view in views:
        times = heard[view.gateway.gateway_id]
        last_bin = from_epoch(float(times.times_s[-1])) if len(times) else None
        frames, devices = traffic.get(view.gateway.gateway_id, (0, 0))
        candidates = [moment for moment in (view.gateway.last_seen_at, last_bin) if moment is not None]
        found.append(
            GatewayHealth(
                view=view,
                status=gateway_availability(view.gateway, times, start=now - STATUS_WINDOW, now=now),
                last_heard_at=max(candidates) if candidates else None,
                uplinks_per_hour=frames / (TRAFFIC_WINDOW.total_seconds() / 3600),
                devices_heard=devices,
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class GatewayDetail:
    health: GatewayHealth
    rssi_dbm: SignalPercentiles | None
    snr_db: SignalPercentiles | None
    devices_heard_7d: list[str]
    heard_only_by_this: list[str]
    uptime_percent: dict[int, float | None]


def _percentiles(
    session: Session, column: object, gateway_id: str, since: datetime
) -> SignalPercentiles | None:
    """Computed in the database: a busy gateway's week is too many rows to move for three numbers."""
    fractions = literal([0.05, 0.5, 0.95])
    query = select(func.percentile_cont(fractions).within_group(column)).where(  # type: ignore[arg-type]
        Reception.gateway_id == gateway_id, Reception.received_at > since
    )
    values = session.scalar(query)
    if not values or values[0] is None:
        return None
    return SignalPercentiles(float(values[0]), float(values[1]), float(values[2]))


def gateway_detail(
    session: Session, view: GatewayView, municipality_id: int, *, now: datetime
) -> GatewayDetail:
    gateway_id = view.gateway.gateway_id
    health = gateway_health(session, [view], municipality_id, now=now)[0]
    since = now - SIGNAL_WINDOW
    others = aliased(GatewayDevice)
    heard_elsewhere = (
        select(others.dev_eui)
        .where(
            others.dev_eui == GatewayDevice.dev_eui,
            others.gateway_id != gateway_id,
            others.heard_at > since,
        )
        .exists()
    )
    ours = (
        select(GatewayDevice.dev_eui, ~heard_elsewhere)
        .join(Device, Device.dev_eui == GatewayDevice.dev_eui)
        .where(
            GatewayDevice.gateway_id == gateway_id,
            GatewayDevice.heard_at > since,
            Device.municipality_id == municipality_id,
        )
        .order_by(GatewayDevice.dev_eui)
    )
    heard: list[str] = []
    only: list[str] = []
    for dev_eui, alone in session.execute(ours):
        heard.append(dev_eui)
        if alone:
            only.append(dev_eui)
    longest = max(UPTIME_WINDOWS)
    times = activity_times(session, [gateway_id], start=now - longest, end=now)[gateway_id]
    uptime: dict[int, float | None] = {}
    for window in UPTIME_WINDOWS:
        share = gateway_availability(view.gateway, times, start=now - window, now=now).online_fraction
        uptime[window.days] = None if share is None else round(100.0 * share, 2)
    return GatewayDetail(
        health=health,
        rssi_dbm=_percentiles(session, Reception.rssi_dbm, gateway_id, since),
        snr_db=_percentiles(session, Reception.snr_db, gateway_id, since),
        devices_heard_7d=heard,
        heard_only_by_this=only,
        uptime_percent=uptime,
    )


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    device: Device
    activity: DeviceActivity | None
    expected_interval_s: float
    interval_from_metadata: bool
    silent: bool
    battery: BatteryTrend | None
    frame_loss: FrameLoss


def _uplink_counters(
    session: Session, dev_euis: Sequence[str], *, since: datetime
) -> dict[str, tuple[list[float], list[int]]]:
    rows = (
        select(Uplink.dev_eui, epoch_of(Uplink.received_at), Uplink.f_cnt)
        .where(Uplink.dev_eui.in_(dev_euis), Uplink.received_at > since)
        .order_by(Uplink.dev_eui, Uplink.received_at)
    )
    found: dict[str, tuple[list[float], list[int]]] = {dev_eui: ([], []) for dev_eui in dev_euis}
    for dev_eui, moment, f_cnt in session.execute(rows):
        if dev_eui is None:
            continue
        found[dev_eui][0].append(moment)
        if f_cnt is not None:
            found[dev_eui][1].append(f_cnt)
    return found


def device_interval(device: Device, arrivals_s: Sequence[float]) -> tuple[float, bool]:
    """The expected uplink interval: the registered one, else the median gap seen, else an hour."""
    registered = device.metadata_.get("expected_interval_s")
    if isinstance(registered, int | float) and registered > 0:
        return float(registered), True
    if len(arrivals_s) >= 3:
        return float(np.median(np.diff(np.asarray(arrivals_s)))), False
    return DEFAULT_DEVICE_INTERVAL.total_seconds(), False


def device_health(
    session: Session, devices: list[Device], *, now: datetime, loss_window: timedelta
) -> list[DeviceHealth]:
    dev_euis = [device.dev_eui for device in devices]
    activities = {
        activity.dev_eui: activity
        for activity in session.scalars(select(DeviceActivity).where(DeviceActivity.dev_eui.in_(dev_euis)))
    }
    counters = _uplink_counters(session, dev_euis, since=now - loss_window)
    batteries = daily_means(
        session, [device.id for device in devices], BATTERY, start=now - BATTERY_WINDOW, end=now
    )
    found = []
    for device in devices:
        arrivals, f_cnts = counters[device.dev_eui]
        interval, registered = device_interval(device, arrivals)
        activity = activities.get(device.dev_eui)
        silent = activity is None or (now - activity.last_seen_at).total_seconds() > SILENT_FACTOR * interval
        battery = batteries[device.id]
        trend = battery_trend(battery.times_s, battery.values, now_s=epoch_seconds(now))
        if trend is None and activity is not None and activity.network_battery_percent is not None:
            trend = BatteryTrend(activity.network_battery_percent, None, None)
        found.append(
            DeviceHealth(
                device=device,
                activity=activity,
                expected_interval_s=interval,
                interval_from_metadata=registered,
                silent=silent,
                battery=trend,
                frame_loss=frame_loss(f_cnts),
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class GatewaySignal:
    gateway_id: str
    receptions: int
    rssi_dbm_median: float | None
    snr_db_median: float | None
    last_heard_at: datetime


def device_signals(session: Session, device: Device, *, now: datetime) -> list[GatewaySignal]:
    """Every gateway that heard the device in the last week, strongest first."""
    rows = (
        select(
            Reception.gateway_id,
            func.count(),
            func.percentile_cont(0.5).within_group(Reception.rssi_dbm),
            func.percentile_cont(0.5).within_group(Reception.snr_db),
            func.max(Reception.received_at),
        )
        .where(Reception.dev_eui == device.dev_eui, Reception.received_at > now - SIGNAL_WINDOW)
        .group_by(Reception.gateway_id)
    )
    signals = [
        GatewaySignal(gateway_id, count, rssi, snr, last)
        for gateway_id, count, rssi, snr, last in session.execute(rows)
    ]
    return sorted(signals, key=lambda signal: -(signal.rssi_dbm_median or -1000.0))
