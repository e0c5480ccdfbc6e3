"""Link health for field technicians: is a gateway up, is a device still talking, and how well.

Gateway status is computed from when the gateway was heard (receptions of uplinks
and its own online heartbeats), counted in `ACTIVITY_BIN` bins so that a busy
gateway's month is at most 8,640 points; `domain.analytics.link_quality.availability` then puts
hysteresis on it. The network server's own `gateway.online` flag is shown beside it
but not trusted alone: some servers never send a status message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from domain.analytics.forecasts import BatteryTrend, battery_trend
from domain.analytics.link_quality import (
    Availability,
    FrameLoss,
    SignalPercentiles,
    availability,
    expected_interval,
    frame_loss,
)
from domain.gateway import Gateway as GatewayValue
from storage.health import (
    ACTIVITY_BIN,
    SIGNAL_WINDOW,
    activity_times,
    device_activities,
    devices_heard,
    gateway_signals,
    signal_percentiles,
    uplink_counters,
)
from storage.models import Device, DeviceActivity, Reception
from storage.series import Series, daily_means, epoch_seconds, from_epoch

STATUS_WINDOW = timedelta(days=2)
TRAFFIC_WINDOW = timedelta(hours=24)
UPTIME_WINDOWS = (timedelta(days=7), timedelta(days=30))
BATTERY_WINDOW = timedelta(days=90)
SILENT_FACTOR = 2.5
"""A device is silent once quiet for this many expected intervals: one lost frame is normal."""
DEFAULT_DEVICE_INTERVAL = timedelta(hours=1)
BATTERY = "battery"


def gateway_availability(
    first_seen_at: datetime | None, heard: Series, *, start: datetime, now: datetime
) -> Availability:
    """Status now and online share of [start, now]; a gateway first seen later is judged from then."""
    if first_seen_at is not None and first_seen_at > start:
        start = first_seen_at
    interval = max(ACTIVITY_BIN.total_seconds(), expected_interval(heard.times_s))
    return availability(
        heard.times_s, start_s=epoch_seconds(start), now_s=epoch_seconds(now), interval_s=interval
    )


@dataclass(frozen=True, slots=True)
class GatewayHealth:
    gateway: GatewayValue
    status: Availability
    last_heard_at: datetime | None
    uplinks_per_hour: float
    devices_heard: int


def gateway_health(
    session: Session, gateways: list[GatewayValue], municipality_id: int, *, now: datetime
) -> list[GatewayHealth]:
    ids = [gateway.gateway_id for gateway in gateways]
    signals = gateway_signals(
        session, ids, start=now - STATUS_WINDOW, end=now, traffic_of=(municipality_id, now - TRAFFIC_WINDOW)
    )
    found = []
    for gateway in gateways:
        gateway_signal = signals[gateway.gateway_id]
        times = gateway_signal.heard
        last_bin = from_epoch(float(times.times_s[-1])) if len(times) else None
        frames, devices = gateway_signal.receptions, gateway_signal.devices_heard
        candidates = [moment for moment in (gateway.last_seen_at, last_bin) if moment is not None]
        found.append(
            GatewayHealth(
                gateway=gateway,
                status=gateway_availability(gateway.first_seen_at, times, start=now - STATUS_WINDOW, now=now),
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


def gateway_detail(
    session: Session, gateway: GatewayValue, municipality_id: int, *, now: datetime
) -> GatewayDetail:
    gateway_id = gateway.gateway_id
    health = gateway_health(session, [gateway], municipality_id, now=now)[0]
    since = now - SIGNAL_WINDOW
    heard, only = devices_heard(session, gateway_id, municipality_id, since=since)
    longest = max(UPTIME_WINDOWS)
    times = activity_times(session, [gateway_id], start=now - longest, end=now)[gateway_id]
    uptime: dict[int, float | None] = {}
    for window in UPTIME_WINDOWS:
        share = gateway_availability(
            gateway.first_seen_at, times, start=now - window, now=now
        ).online_fraction
        uptime[window.days] = None if share is None else round(100.0 * share, 2)
    return GatewayDetail(
        health=health,
        rssi_dbm=signal_percentiles(session, Reception.rssi_dbm, gateway_id, since),
        snr_db=signal_percentiles(session, Reception.snr_db, gateway_id, since),
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
    owners = {device.dev_eui: device.municipality_id for device in devices}
    activities = device_activities(session, owners)
    counters = uplink_counters(session, owners, since=now - loss_window)
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
