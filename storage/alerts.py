"""Alerts: rules per municipality, events that open and resolve, and signed outgoing webhooks.

Two functions are meant to run periodically from a composition root, each safe to
run in several processes at once:

- `evaluate_alerts(engine, now)` checks every rule against the current state and
  opens or resolves events; each transition queues one delivery per subscription.
  A partial unique index keeps one open event per rule and subject, whoever evaluates.
- `deliver_notifications(engine, client, now)` POSTs due deliveries. Rows are
  claimed with `FOR UPDATE SKIP LOCKED` and a lease, committed before any HTTP
  call, so a slow receiver never holds a lock and a crashed sender's claims return.

A delivery is signed: `X-Lorakom-Signature: sha256=<hex>` is the HMAC-SHA256, keyed
with the subscription's secret, of `<X-Lorakom-Timestamp>.<body>`. The receiver
recomputes it and rejects old timestamps, so a captured request cannot be replayed.
The secret is stored encrypted (`storage.secret_box`) and opened only to sign.

Where a delivery may go, and how it is sent, is `storage.webhook_targets`: public
addresses only, checked at creation and again at each delivery; the log keeps only
the class of each attempt's outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, DateTime, Engine, String, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.errors import ConfigurationError, NotConfigured, NotFound
from storage.health import STATUS_WINDOW, activity_times, device_health, gateway_availability
from storage.models import Device, DeviceState, Gateway, Municipality
from storage.models_usecases import (
    AlertEvent,
    AlertRule,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from storage.secret_box import KEYS_VARIABLE, SecretBox
from storage.series import device_series, epoch_seconds
from storage.soil import DEFAULT_SOIL, SOIL_MOISTURE, thresholds
from storage.waste import FILL_LEVEL
from storage.webhook_targets import (
    Outcome,
    Resolver,
    WebhookSender,
    WebhookSettings,
    check_new_target,
    resolve_host,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Lorakom-Signature"
TIMESTAMP_HEADER = "X-Lorakom-Timestamp"
DELIVERY_HEADER = "X-Lorakom-Delivery"
CLAIM_LEASE = timedelta(minutes=5)
"""A claimed delivery not finished within this time (its sender died) is due again."""
BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)
"""Wait after the n-th failed attempt; after the last one the delivery is given up as failed."""
MAX_ATTEMPTS = len(BACKOFF) + 1
DURATION_LOOKBACK = timedelta(days=1)
"""History read beyond a rule's duration to find where the current violation began."""


class RuleKind(StrEnum):
    QUANTITY_ABOVE = "quantity_above"
    QUANTITY_BELOW = "quantity_below"
    BIN_ABOVE = "bin_above"
    SOIL_DRY = "soil_dry"
    BATTERY_LOW = "battery_low"
    DEVICE_SILENT = "device_silent"
    GATEWAY_OFFLINE = "gateway_offline"


DEFAULT_THRESHOLD: dict[RuleKind, float] = {RuleKind.BIN_ABOVE: 90.0, RuleKind.BATTERY_LOW: 15.0}


class Transition(StrEnum):
    OPENED = "opened"
    RESOLVED = "resolved"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Violation:
    subject_kind: str
    subject: str
    value: float | None
    message: str


# --- rules -------------------------------------------------------------------------------------


def list_rules(
    session: Session, municipality_id: int, *, after_id: int | None, limit: int
) -> list[AlertRule]:
    query = select(AlertRule).where(AlertRule.municipality_id == municipality_id).order_by(AlertRule.id)
    if after_id is not None:
        query = query.where(AlertRule.id > after_id)
    return list(session.scalars(query.limit(limit + 1)))


def create_rule(session: Session, municipality_id: int, **fields: Any) -> AlertRule:
    rule = AlertRule(municipality_id=municipality_id, **fields)
    session.add(rule)
    session.flush()
    session.refresh(rule)
    return rule


def get_rule(session: Session, municipality_id: int, rule_id: int) -> AlertRule:
    rule = session.scalar(
        select(AlertRule).where(AlertRule.municipality_id == municipality_id, AlertRule.id == rule_id)
    )
    if rule is None:
        raise NotFound(f"no alert rule {rule_id}")
    return rule


# --- evaluation --------------------------------------------------------------------------------


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


def _devices_of(session: Session, rule: AlertRule) -> list[Device]:
    query = select(Device).where(Device.municipality_id == rule.municipality_id)
    if rule.tag is not None:
        query = query.where(Device.tags.contains([rule.tag]))
    return list(session.scalars(query.order_by(Device.id)))


def _threshold_violations(
    session: Session, rule: AlertRule, kind: RuleKind, now: datetime
) -> list[Violation]:
    quantity = _rule_quantity(rule, kind)
    if quantity is None:
        return []
    query = (
        select(Device, DeviceState)
        .join(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.municipality_id == rule.municipality_id, DeviceState.quantity == quantity)
        .order_by(Device.id)
    )
    if rule.tag is not None:
        query = query.where(Device.tags.contains([rule.tag]))
    soil_limits = thresholds(session, rule.municipality_id) if kind is RuleKind.SOIL_DRY else {}
    candidates: list[tuple[Device, float, float]] = []
    for device, state in session.execute(query):
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
            if _violating_since(series[device.id].times_s, series[device.id].values, kind, limit)
            <= epoch_seconds(now - held)
        ]
    relation = "below" if _compare(kind, 0.0, 1.0) else "above"
    return [
        Violation(
            "device", device.dev_eui, value, f"{device.name}: {quantity} {value:g} {relation} {limit:g}"
        )
        for device, value, limit in candidates
    ]


def _violating_since(
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
    devices = _devices_of(session, rule)
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
    """Gateways the municipality runs; a neighbour's gateway is the neighbour's to watch."""
    gateways = list(
        session.scalars(
            select(Gateway)
            .where(Gateway.municipality_id == rule.municipality_id)
            .order_by(Gateway.gateway_id)
        )
    )
    heard = activity_times(
        session, [gateway.gateway_id for gateway in gateways], start=now - STATUS_WINDOW, end=now
    )
    violations = []
    for gateway in gateways:
        status = gateway_availability(gateway, heard[gateway.gateway_id], start=now - STATUS_WINDOW, now=now)
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


def _queue_notifications(session: Session, event: AlertEvent, transition: Transition, now: datetime) -> None:
    subscriptions = select(
        WebhookSubscription.id,
        literal(event.id, BigInteger()),
        literal(transition.value, String()),
        literal(now, DateTime(timezone=True)),
    ).where(
        WebhookSubscription.municipality_id == event.municipality_id, WebhookSubscription.enabled.is_(True)
    )
    session.execute(
        insert(WebhookDelivery)
        .from_select(["subscription_id", "event_id", "transition", "next_attempt_at"], subscriptions)
        .on_conflict_do_nothing()
    )


def evaluate_rule(session: Session, rule: AlertRule, now: datetime) -> tuple[int, int]:
    """Open events for new violations and resolve those that ended; (opened, resolved)."""
    current = (
        {violation.subject: violation for violation in violations(session, rule, now)} if rule.enabled else {}
    )
    open_events = {
        event.subject: event
        for event in session.scalars(
            select(AlertEvent).where(AlertEvent.rule_id == rule.id, AlertEvent.resolved_at.is_(None))
        )
    }
    opened = resolved = 0
    for subject, violation in current.items():
        if subject in open_events:
            continue
        event_id = session.scalar(
            insert(AlertEvent)
            .values(
                rule_id=rule.id,
                municipality_id=rule.municipality_id,
                subject_kind=violation.subject_kind,
                subject=subject,
                value=violation.value,
                message=violation.message,
                opened_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=["rule_id", "subject"], index_where=AlertEvent.resolved_at.is_(None)
            )
            .returning(AlertEvent.id)
        )
        if event_id is not None:
            event = session.get_one(AlertEvent, event_id)
            _queue_notifications(session, event, Transition.OPENED, now)
            opened += 1
    for subject, event in open_events.items():
        if subject in current:
            continue
        event.resolved_at = now
        session.flush()
        _queue_notifications(session, event, Transition.RESOLVED, now)
        resolved += 1
    return opened, resolved


def evaluate_alerts(engine: Engine, now: datetime | None = None) -> EvaluationResult:
    """Evaluate every rule of every municipality once; one transaction per rule."""
    moment = now or datetime.now(UTC)
    with Session(engine) as session:
        rule_ids = list(session.scalars(select(AlertRule.id).order_by(AlertRule.id)))
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


# --- events ------------------------------------------------------------------------------------


class EventStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    ALL = "all"


def list_events(
    session: Session, municipality_id: int, *, status: EventStatus, before_id: int | None, limit: int
) -> list[tuple[AlertEvent, AlertRule]]:
    """Newest first, at most `limit + 1`."""
    query = (
        select(AlertEvent, AlertRule)
        .join(AlertRule, AlertRule.id == AlertEvent.rule_id)
        .where(AlertEvent.municipality_id == municipality_id)
        .order_by(AlertEvent.id.desc())
        .limit(limit + 1)
    )
    if status is EventStatus.OPEN:
        query = query.where(AlertEvent.resolved_at.is_(None))
    elif status is EventStatus.RESOLVED:
        query = query.where(AlertEvent.resolved_at.is_not(None))
    if before_id is not None:
        query = query.where(AlertEvent.id < before_id)
    return [(event, rule) for event, rule in session.execute(query)]


def acknowledge(
    session: Session, municipality_id: int, event_id: int, *, by: str, now: datetime
) -> tuple[AlertEvent, AlertRule]:
    found = session.execute(
        select(AlertEvent, AlertRule)
        .join(AlertRule, AlertRule.id == AlertEvent.rule_id)
        .where(AlertEvent.municipality_id == municipality_id, AlertEvent.id == event_id)
    ).first()
    if found is None:
        raise NotFound(f"no alert event {event_id}")
    event, rule = found
    if event.acknowledged_at is None:
        event.acknowledged_at = now
        event.acknowledged_by = by
        session.flush()
    return event, rule


# --- webhooks ----------------------------------------------------------------------------------


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def create_subscription(
    session: Session,
    municipality_id: int,
    *,
    url: str,
    description: str | None,
    box: SecretBox | None,
    targets: WebhookSettings,
    resolver: Resolver = resolve_host,
) -> tuple[WebhookSubscription, str]:
    """The new subscription and its secret in plaintext, for the caller to show once.

    The URL is checked first (`TargetRefused`), so a refused URL is reported as such
    even where no key is configured.
    """
    check_new_target(url, targets, resolver)
    if box is None:
        raise NotConfigured(
            f"webhook subscriptions need {KEYS_VARIABLE}: their signing secrets are stored encrypted"
        )
    secret = new_webhook_secret()
    subscription = WebhookSubscription(
        municipality_id=municipality_id, url=url, description=description, secret_ciphertext=box.seal(secret)
    )
    session.add(subscription)
    session.flush()
    session.refresh(subscription)
    return subscription, secret


def verify_stored_secrets(engine: Engine, box: SecretBox | None) -> int:
    """Check at start-up that every stored secret can be opened; the number of them.

    Without it a missing or wrong key would surface only as deliveries that are never
    signed, minutes later, in a log line.
    """
    with Session(engine) as session:
        ciphertexts = list(session.scalars(select(WebhookSubscription.secret_ciphertext)))
    if ciphertexts and box is None:
        raise ConfigurationError(
            f"{len(ciphertexts)} webhook subscription(s) sign their deliveries with secrets encrypted "
            f"under {KEYS_VARIABLE}, which is not set"
        )
    for ciphertext in ciphertexts:
        assert box is not None
        box.open(ciphertext)
    return len(ciphertexts)


def rotate_secrets(engine: Engine, box: SecretBox) -> int:
    """Re-encrypt every stored secret under the first key; the number re-encrypted.

    One transaction: either every row is under the new key or none changed, so the old
    key may be dropped as soon as this returns.
    """
    with Session(engine) as session:
        subscriptions = list(
            session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id).with_for_update())
        )
        for subscription in subscriptions:
            subscription.secret_ciphertext = box.reseal(subscription.secret_ciphertext)
        session.commit()
    return len(subscriptions)


def list_subscriptions(
    session: Session, municipality_id: int, *, after_id: int | None, limit: int
) -> list[WebhookSubscription]:
    query = (
        select(WebhookSubscription)
        .where(WebhookSubscription.municipality_id == municipality_id)
        .order_by(WebhookSubscription.id)
        .limit(limit + 1)
    )
    if after_id is not None:
        query = query.where(WebhookSubscription.id > after_id)
    return list(session.scalars(query))


def get_subscription(session: Session, municipality_id: int, subscription_id: int) -> WebhookSubscription:
    found = session.scalar(
        select(WebhookSubscription).where(
            WebhookSubscription.municipality_id == municipality_id, WebhookSubscription.id == subscription_id
        )
    )
    if found is None:
        raise NotFound(f"no webhook subscription {subscription_id}")
    return found


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


def delivery_log(
    session: Session, subscription: WebhookSubscription, *, before_id: int | None, limit: int
) -> list[DeliveryLog]:
    """The subscription's deliveries, newest first, each with its attempts."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    deliveries = list(session.scalars(query))
    attempts: dict[int, list[WebhookAttempt]] = {delivery.id: [] for delivery in deliveries}
    rows = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(list(attempts)))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.id)
    )
    for attempt in session.scalars(rows):
        attempts[attempt.delivery_id].append(attempt)
    return [DeliveryLog(delivery, attempts[delivery.id]) for delivery in deliveries]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The value of `X-Lorakom-Signature` for a body sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_is_valid(secret: str, timestamp: int, body: bytes, presented: str) -> bool:
    """What a receiver checks (in constant time); the receiver also bounds the timestamp's age."""
    return hmac.compare_digest(signature(secret, timestamp, body), presented)


def _payload(delivery: WebhookDelivery, event: AlertEvent, rule: AlertRule, slug: str) -> dict[str, Any]:
    return {
        "delivery_id": delivery.id,
        "transition": delivery.transition,
        "municipality": slug,
        "event": {
            "id": event.id,
            "rule_id": rule.id,
            "rule_name": rule.name,
            "kind": rule.kind,
            "subject_kind": event.subject_kind,
            "subject": event.subject,
            "value": event.value,
            "message": event.message,
            "opened_at": event.opened_at.isoformat(),
            "resolved_at": event.resolved_at.isoformat() if event.resolved_at else None,
        },
    }


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivered: int
    retrying: int
    failed: int
    unsigned: int = 0
    """Deliveries whose secret no configured key opens (left pending, logged)."""


def _claim(engine: Engine, now: datetime, batch: int) -> list[int]:
    with Session(engine) as session:
        due = (
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING.value, WebhookDelivery.next_attempt_at <= now
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        claimed = list(
            session.scalars(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(due.scalar_subquery()))
                .values(next_attempt_at=now + CLAIM_LEASE)
                .returning(WebhookDelivery.id)
            )
        )
        session.commit()
    return sorted(claimed)


def deliver_notifications(
    engine: Engine, sender: WebhookSender, box: SecretBox, now: datetime | None = None, *, batch: int = 50
) -> DeliveryResult:
    """POST every due delivery once; failures are retried later with `BACKOFF`, then given up.

    A URL refused by the target policy is retried like any failure: the DNS answer that
    made it refused may be a passing one, and the admin sees `refused-by-policy` in the log.
    """
    moment = now or datetime.now(UTC)
    delivered = retrying = failed = unsigned = 0
    for delivery_id in _claim(engine, moment, batch):
        with Session(engine) as session:
            found = session.execute(
                select(WebhookDelivery, WebhookSubscription, AlertEvent, AlertRule, Municipality.slug)
                .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                .join(AlertEvent, AlertEvent.id == WebhookDelivery.event_id)
                .join(AlertRule, AlertRule.id == AlertEvent.rule_id)
                .join(Municipality, Municipality.id == WebhookSubscription.municipality_id)
                .where(WebhookDelivery.id == delivery_id)
            ).first()
            if found is None:
                continue
            delivery, subscription, event, rule, slug = found
            try:
                secret = box.open(subscription.secret_ciphertext)
            except ConfigurationError as exc:
                # Stored under a key this process lacks: not the receiver's failure, so no
                # attempt is counted; the claim's lease returns it once the key is back.
                log.error("webhook subscription %d: %s", subscription.id, exc)
                unsigned += 1
                continue
            body = json.dumps(_payload(delivery, event, rule, slug), separators=(",", ":")).encode()
            timestamp = int(moment.timestamp())
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signature(secret, timestamp, body),
                DELIVERY_HEADER: str(delivery.id),
            }
            started = time.perf_counter()
            outcome = sender.post(subscription.url, body, headers)
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    attempted_at=moment,
                    outcome=outcome.value,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            )
            delivery.attempts += 1
            if outcome is Outcome.SUCCESS:
                delivery.status = DeliveryStatus.DELIVERED.value
                delivery.delivered_at = moment
                delivered += 1
            elif delivery.attempts >= MAX_ATTEMPTS:
                delivery.status = DeliveryStatus.FAILED.value
                failed += 1
            else:
                delivery.next_attempt_at = moment + BACKOFF[delivery.attempts - 1]
                retrying += 1
            session.commit()
    return DeliveryResult(delivered, retrying, failed, unsigned)
