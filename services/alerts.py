"""Alert evaluation: which devices and gateways break a rule now, and the events that follow.

`evaluate_alerts(engine, now)` is meant to run periodically from a composition root,
safe to run in several processes at once: it checks every rule against the current
state and opens or resolves events; each transition queues one delivery per
subscription (sent by `services.webhook_delivery`). A partial unique index keeps one
open event per rule and subject, whoever evaluates (`storage.alerts.open_event`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from services.health import STATUS_WINDOW, device_health, gateway_availability
from services.soil import DEFAULT_SOIL, SOIL_MOISTURE, thresholds
from services.waste import FILL_LEVEL
from storage.alerts import (
    RuleKind,
    Transition,
    all_rule_ids,
    devices_of_rule,
    gateways_of_rule,
    latest_of_rule,
    open_event,
    open_events,
    queue_notifications,
    resolve_event,
)
from storage.health import activity_times
from storage.models import Device
from storage.models_usecases import AlertRule
from storage.series import device_series, epoch_seconds

DEFAULT_THRESHOLD: dict[RuleKind, float] = {RuleKind.BIN_ABOVE: 90.0, RuleKind.BATTERY_LOW: 15.0}
DURATION_LOOKBACK = timedelta(days=1)
"""History read beyond a rule's duration to find where the current violation began."""


@dataclass(frozen=True, slots=True)
class Violation:
    subject_kind: str
    subject: str
    value: float | None
    message: str


def _compare(kind: RuleKind, value: float, threshold: float) -> bool:
    below = kind in (RuleKind.QUANTITY_BELOW, RuleKind.SOIL_DRY, RuleKind.BATTERY_LOW)
    return value < threshold if below else value > threshold


def _rule_quantity(rule: AlertRule, kind: RuleKind) -> str | None:
    match kind:
        case RuleKind.BIN_ABOVE:
            return FILL_LEVEL
        case RuleKind.SOIL_DRY:
            return SOIL_MOISTURE
        case RuleKind.BATTERY_LOW:
            return "battery"
        case _:
            return rule.quantity


def _threshold_violations(
    session: Session, rule: AlertRule, kind: RuleKind, now: datetime
) -> list[Violation]:
    quantity = _rule_quantity(rule, kind)
    if quantity is None:
        return []
    soil_limits = thresholds(session, rule.municipality_id) if kind is RuleKind.SOIL_DRY else {}
    candidates: list[tuple[Device, float, float]] = []
    for device, state in latest_of_rule(session, rule, quantity):
        limit = rule.threshold if rule.threshold is not None else DEFAULT_THRESHOLD.get(kind)
        if kind is RuleKind.SOIL_DRY and rule.threshold is None:
            soil = device.metadata_.get("soil_type") or DEFAULT_SOIL
            limit = soil_limits.get(soil, soil_limits[DEFAULT_SOIL]).red_below_percent
        if limit is not None and _compare(kind, state.value, limit):
            candidates.append((device, state.value, limit))
    if rule.duration_s > 0 and candidates:
        held = timedelta(seconds=rule.duration_s)
        series = device_series(
            session,
            [device.id for device, _, _ in candidates],
            quantity,
            start=now - held - DURATION_LOOKBACK,
            end=now,
        )
        candidates = [
            (device, value, limit)
            for device, value, limit in candidates
            if violating_since(series[device.id].times_s, series[device.id].values, kind, limit)
            <= epoch_seconds(now - held)
        ]
    relation = "below" if _compare(kind, 0.0, 1.0) else "above"
    return [
        Violation(
            "device", device.dev_eui, value, f"{device.name}: {quantity} {value:g} {relation} {limit:g}"
        )
        for device, value, limit in candidates
    ]


def violating_since(
    times_s: np.ndarray[Any, Any], values: np.ndarray[Any, Any], kind: RuleKind, limit: float
) -> float:
    """When the current run of violating readings began (infinity if the newest reading is fine)."""
    if times_s.size == 0:
        return float("inf")
    violating = np.asarray([_compare(kind, float(value), limit) for value in values])
    if not violating[-1]:
        return float("inf")
    fine = np.flatnonzero(~violating)
    first = int(fine[-1]) + 1 if fine.size else 0
    return float(times_s[first])


def _silent_devices(session: Session, rule: AlertRule, now: datetime) -> list[Violation]:
    devices = devices_of_rule(session, rule)
    return [
        Violation(
            "device",
            health.device.dev_eui,
            None,
            f"{health.device.name}: silent since "
            + (health.activity.last_seen_at.isoformat() if health.activity else "it was registered"),
        )
        for health in device_health(session, devices, now=now, loss_window=timedelta(days=1))
        if health.silent
    ]


def _offline_gateways(session: Session, rule: AlertRule, now: datetime) -> list[Violation]:
    gateways = gateways_of_rule(session, rule)
    heard = activity_times(
        session, [gateway.gateway_id for gateway in gateways], start=now - STATUS_WINDOW, end=now
    )
    violations = []
    for gateway in gateways:
        heard_of_it = heard[gateway.gateway_id]
        status = gateway_availability(gateway.first_seen_at, heard_of_it, start=now - STATUS_WINDOW, now=now)
        if not status.online:
            violations.append(
                Violation(
                    "gateway",
                    gateway.gateway_id,
                    None,
                    f"gateway {gateway.name or gateway.gateway_id} offline",
                )
            )
    return violations


def violations(session: Session, rule: AlertRule, now: datetime) -> list[Violation]:
    """Every device or gateway that breaks `rule` at `now`."""
    kind = RuleKind(rule.kind)
    match kind:
        case RuleKind.DEVICE_SILENT:
            return _silent_devices(session, rule, now)
        case RuleKind.GATEWAY_OFFLINE:
            return _offline_gateways(session, rule, now)
        case _:
            return _threshold_violations(session, rule, kind, now)


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    rules: int
    opened: int
    resolved: int


def evaluate_rule(session: Session, rule: AlertRule, now: datetime) -> tuple[int, int]:
    """Open events for new violations and resolve those that ended; (opened, resolved)."""
    current = (
        {violation.subject: violation for violation in violations(session, rule, now)} if rule.enabled else {}
    )
    already_open = open_events(session, rule.id)
    opened = resolved = 0
    for subject, violation in current.items():
        if subject in already_open:
            continue
        event = open_event(
            session,
            rule,
            subject_kind=violation.subject_kind,
            subject=subject,
            value=violation.value,
            message=violation.message,
            now=now,
        )
        if event is not None:
            queue_notifications(session, event, Transition.OPENED, now)
            opened += 1
    for subject, event in already_open.items():
        if subject in current:
            continue
        resolve_event(session, event, now)
        queue_notifications(session, event, Transition.RESOLVED, now)
        resolved += 1
    return opened, resolved


def evaluate_alerts(engine: Engine, now: datetime | None = None) -> EvaluationResult:
    """Evaluate every rule of every municipality once; one transaction per rule."""
    moment = now or datetime.now(UTC)
    rule_ids = all_rule_ids(engine)
    opened = resolved = 0
    for rule_id in rule_ids:
        with Session(engine) as session:
            rule = session.get(AlertRule, rule_id)
            if rule is None:
                continue
            rule_opened, rule_resolved = evaluate_rule(session, rule, moment)
            session.commit()
        opened += rule_opened
        resolved += rule_resolved
    return EvaluationResult(len(rule_ids), opened, resolved)
