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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import ColumnElement, DateTime, Select, String, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
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
from domain.buckets import BUCKET_ORIGIN
from storage.buckets import date_bin_bucket
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
from storage.series import Series, daily_means, doubles, epoch_of, epoch_seconds, from_epoch, packed_doubles
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


@dataclass(frozen=True, slots=True)
class GatewaySignals:
    """What a gateway's status rests on: when it was heard (bin starts, epoch s), and in the
    traffic window its receptions and how many of the municipality's devices it heard."""

    heard: Series
    receptions: int = 0
    devices_heard: int = 0


def _signals_statement(*, with_traffic: bool) -> Select[str, bytes | None, bytes | None, int, int]:
    """Bins heard, heartbeat bins and (optionally) 24-hour traffic of every listed gateway.

    One row per gateway from correlated subqueries on an `unnest` of the ids: each
    walks one gateway's slice of its table's key, which per-gateway queries would do
    too, but at one round trip and one plan for the whole list.
    """
    listed = func.unnest(bindparam("gateway_ids", type_=ARRAY(String)))
    gateways = listed.table_valued("gateway_id").render_derived(name="g")
    heard = (
        select(packed_doubles(epoch_of(GatewayActivity.bin_start), GatewayActivity.bin_start))
        .where(
            GatewayActivity.gateway_id == gateways.c.gateway_id,
            GatewayActivity.bin_start > bindparam("first_bin"),
            GatewayActivity.bin_start <= bindparam("end_at"),
        )
        .scalar_subquery()
    )
    beat_bins = (
        select(epoch_of(date_bin_bucket(ACTIVITY_BIN, GatewayHeartbeat.time, BUCKET_ORIGIN)).label("moment"))
        .distinct()
        .where(
            GatewayHeartbeat.gateway_id == gateways.c.gateway_id,
            GatewayHeartbeat.online,
            GatewayHeartbeat.time.between(bindparam("start_at"), bindparam("end_at")),
        )
        .correlate(gateways)
        .subquery("beat_bins")
    )
    beats = select(packed_doubles(beat_bins.c.moment, beat_bins.c.moment)).scalar_subquery()
    receptions: ColumnElement[int] = literal(0)
    devices_heard: ColumnElement[int] = literal(0)
    if with_traffic:
        since = bindparam("traffic_since", type_=DateTime(timezone=True))
        receptions = (
            select(func.coalesce(func.sum(GatewayActivity.receptions), 0))
            .where(GatewayActivity.gateway_id == gateways.c.gateway_id, GatewayActivity.bin_start > since)
            .scalar_subquery()
        )
        devices_heard = (
            select(func.count())
            .select_from(GatewayDevice)
            .join(Device, Device.dev_eui == GatewayDevice.dev_eui)
            .where(
                GatewayDevice.gateway_id == gateways.c.gateway_id,
                GatewayDevice.heard_at > since,
                Device.municipality_id == bindparam("municipality_id"),
            )
            .scalar_subquery()
        )
    return select(gateways.c.gateway_id, heard, beats, receptions, devices_heard)


_SIGNALS = _signals_statement(with_traffic=False)
_SIGNALS_WITH_TRAFFIC = _signals_statement(with_traffic=True)


def gateway_signals(
    session: Session,
    gateway_ids: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    traffic_of: tuple[int, datetime] | None = None,
) -> dict[str, GatewaySignals]:
    """For each gateway the start times (epoch s) of the bins in [start, end] in which it was
    heard, and with `traffic_of=(municipality id, since)` its traffic since then.

    Receptions come from ingest's `gateway_activity` bins, heartbeats are binned here
    (being few), and the two are merged in numpy. One statement for all gateways,
    each list packed as big-endian doubles (see `storage.series`): the health list is
    polled from phones in the field, and per-gateway queries cost more than their rows.
    """
    if not gateway_ids:
        return {}
    statement = _SIGNALS_WITH_TRAFFIC if traffic_of else _SIGNALS
    parameters: dict[str, object] = {
        "gateway_ids": list(gateway_ids),
        "first_bin": start - ACTIVITY_BIN,
        "start_at": start,
        "end_at": end,
    }
    if traffic_of is not None:
        parameters |= {"municipality_id": traffic_of[0], "traffic_since": traffic_of[1]}
    found = {}
    for gateway_id, heard, beats, receptions, devices in session.connection().execute(statement, parameters):
        times = doubles(heard)
        if beats:
            times = np.union1d(times, doubles(beats))
        found[gateway_id] = GatewaySignals(Series(times, np.ones(times.size)), int(receptions), int(devices))
    return found


def activity_times(
    session: Session, gateway_ids: Sequence[str], *, start: datetime, end: datetime
) -> dict[str, Series]:
    """For each gateway the start times (epoch s) of the bins in which it was heard."""
    signals = gateway_signals(session, gateway_ids, start=start, end=end)
    return {gateway_id: found.heard for gateway_id, found in signals.items()}


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


def gateway_health(
    session: Session, views: list[GatewayView], municipality_id: int, *, now: datetime
) -> list[GatewayHealth]:
    ids = [view.gateway.gateway_id for view in views]
    signals = gateway_signals(
        session, ids, start=now - STATUS_WINDOW, end=now, traffic_of=(municipality_id, now - TRAFFIC_WINDOW)
    )
    found = []
    for view in views:
        gateway_signal = signals[view.gateway.gateway_id]
        times = gateway_signal.heard
        last_bin = from_epoch(float(times.times_s[-1])) if len(times) else None
        frames, devices = gateway_signal.receptions, gateway_signal.devices_heard
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
    session: Session, owners: dict[str, int], *, since: datetime
) -> dict[str, tuple[list[float], list[int]]]:
    """Arrivals and frame counters of each DevEUI in `owners` (DevEUI → municipality id), counting
    only the frames stored for that municipality: another town's source hearing the DevEUI is not it."""
    rows = (
        select(Uplink.dev_eui, Uplink.municipality_id, epoch_of(Uplink.received_at), Uplink.f_cnt)
        .where(
            Uplink.dev_eui.in_(owners),
            Uplink.municipality_id.in_(set(owners.values())),
            Uplink.received_at > since,
        )
        .order_by(Uplink.dev_eui, Uplink.received_at)
    )
    found: dict[str, tuple[list[float], list[int]]] = {dev_eui: ([], []) for dev_eui in owners}
    for dev_eui, municipality_id, moment, f_cnt in session.execute(rows):
        if dev_eui is None or owners[dev_eui] != municipality_id:
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
    owners = {device.dev_eui: device.municipality_id for device in devices}
    # Each device's own municipality's row: another town's sources keep rows of their own.
    found_activity = session.scalars(
        select(DeviceActivity).where(
            DeviceActivity.dev_eui.in_(owners), DeviceActivity.municipality_id.in_(set(owners.values()))
        )
    )
    activities = {a.dev_eui: a for a in found_activity if owners[a.dev_eui] == a.municipality_id}
    counters = _uplink_counters(session, owners, since=now - loss_window)
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
        .where(
            Reception.dev_eui == device.dev_eui,
            # Receptions stored for the device's own town: another town's source hearing
            # the same DevEUI shows that town's gateways, not this device's.
            Reception.municipality_id == device.municipality_id,
            Reception.received_at > now - SIGNAL_WINDOW,
        )
        .group_by(Reception.gateway_id)
    )
    signals = [
        GatewaySignal(gateway_id, count, rssi, snr, last)
        for gateway_id, count, rssi, snr, last in session.execute(rows)
    ]
    return sorted(signals, key=lambda signal: -(signal.rssi_dbm_median or -1000.0))
