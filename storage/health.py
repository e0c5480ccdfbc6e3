"""Link activity as stored: when gateways were heard, what they heard, and devices' frame counters.

The queries behind `services.health`. Gateway activity is read from ingest's
`gateway_activity` bins and the gateways' own online heartbeats, each list packed
as big-endian doubles (see `storage.series`): the health list is polled from phones
in the field, and per-gateway queries cost more than their rows.

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

from domain.analytics import SignalPercentiles
from domain.buckets import BUCKET_ORIGIN
from storage.buckets import date_bin_bucket
from storage.models import (
    Device,
    DeviceActivity,
    GatewayActivity,
    GatewayDevice,
    GatewayHeartbeat,
    Reception,
    Uplink,
)
from storage.series import Series, doubles, epoch_of, packed_doubles
from storage.uplinks import GATEWAY_ACTIVITY_BIN

ACTIVITY_BIN = GATEWAY_ACTIVITY_BIN
SIGNAL_WINDOW = timedelta(days=7)


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


def signal_percentiles(
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


def devices_heard(
    session: Session, gateway_id: str, municipality_id: int, *, since: datetime
) -> tuple[list[str], list[str]]:
    """The municipality's devices the gateway heard since `since`, and those no other gateway heard."""
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
    return heard, only


def uplink_counters(
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


def device_activities(session: Session, owners: dict[str, int]) -> dict[str, DeviceActivity]:
    """Each DevEUI's activity row of its own municipality (DevEUI → municipality id in `owners`):
    another town's sources keep rows of their own."""
    found_activity = session.scalars(
        select(DeviceActivity).where(
            DeviceActivity.dev_eui.in_(owners), DeviceActivity.municipality_id.in_(set(owners.values()))
        )
    )
    return {a.dev_eui: a for a in found_activity if owners[a.dev_eui] == a.municipality_id}


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
