"""Alert rules, events and webhook deliveries as stored: the queries that the alert services run.

Evaluating rules is `services.alerts`; signing and sending deliveries is
`services.webhook_delivery`. What is here keeps the rows consistent when several
processes evaluate and deliver at once: a partial unique index keeps one open event
per rule and subject, and due deliveries are claimed with `FOR UPDATE SKIP LOCKED`
and a lease, committed before any HTTP call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, String, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.errors import ConfigurationError, NotFound
from storage.models import Device, DeviceState, Gateway, Municipality
from storage.models_usecases import (
    AlertEvent,
    AlertRule,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from storage.secret_box import KEYS_VARIABLE, SecretBox


class RuleKind(StrEnum):
    QUANTITY_ABOVE = "quantity_above"
    QUANTITY_BELOW = "quantity_below"
    BIN_ABOVE = "bin_above"
    SOIL_DRY = "soil_dry"
    BATTERY_LOW = "battery_low"
    DEVICE_SILENT = "device_silent"
    GATEWAY_OFFLINE = "gateway_offline"


class Transition(StrEnum):
    OPENED = "opened"
    RESOLVED = "resolved"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


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


def all_rule_ids(engine: Engine) -> list[int]:
    """Every rule of every municipality, in the order they are evaluated."""
    with Session(engine) as session:
        return list(session.scalars(select(AlertRule.id).order_by(AlertRule.id)))


def devices_of_rule(session: Session, rule: AlertRule) -> list[Device]:
    """The devices a rule watches: its municipality's, narrowed to its tag if it has one."""
    query = select(Device).where(Device.municipality_id == rule.municipality_id)
    if rule.tag is not None:
        query = query.where(Device.tags.contains([rule.tag]))
    return list(session.scalars(query.order_by(Device.id)))


def latest_of_rule(session: Session, rule: AlertRule, quantity: str) -> list[tuple[Device, DeviceState]]:
    """The rule's devices that report `quantity`, by id, each with its latest value."""
    query = (
        select(Device, DeviceState)
        .join(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.municipality_id == rule.municipality_id, DeviceState.quantity == quantity)
        .order_by(Device.id)
    )
    if rule.tag is not None:
        query = query.where(Device.tags.contains([rule.tag]))
    return [(device, state) for device, state in session.execute(query)]


def gateways_of_rule(session: Session, rule: AlertRule) -> list[Gateway]:
    """Gateways the rule's municipality runs; a neighbour's gateway is the neighbour's to watch."""
    return list(
        session.scalars(
            select(Gateway)
            .where(Gateway.municipality_id == rule.municipality_id)
            .order_by(Gateway.gateway_id)
        )
    )


# --- events ------------------------------------------------------------------------------------


def open_events(session: Session, rule_id: int) -> dict[str, AlertEvent]:
    """The rule's unresolved events by subject."""
    return {
        event.subject: event
        for event in session.scalars(
            select(AlertEvent).where(AlertEvent.rule_id == rule_id, AlertEvent.resolved_at.is_(None))
        )
    }


def open_event(
    session: Session,
    rule: AlertRule,
    *,
    subject_kind: str,
    subject: str,
    value: float | None,
    message: str,
    now: datetime,
) -> AlertEvent | None:
    """A new open event, or None when another evaluator opened one for this subject first."""
    event_id = session.scalar(
        insert(AlertEvent)
        .values(
            rule_id=rule.id,
            municipality_id=rule.municipality_id,
            subject_kind=subject_kind,
            subject=subject,
            value=value,
            message=message,
            opened_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["rule_id", "subject"], index_where=AlertEvent.resolved_at.is_(None)
        )
        .returning(AlertEvent.id)
    )
    return None if event_id is None else session.get_one(AlertEvent, event_id)


def resolve_event(session: Session, event: AlertEvent, now: datetime) -> None:
    event.resolved_at = now
    session.flush()


def queue_notifications(session: Session, event: AlertEvent, transition: Transition, now: datetime) -> None:
    """One delivery of this transition per enabled subscription of the event's municipality."""
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


# --- subscriptions -----------------------------------------------------------------------------


def add_subscription(
    session: Session, municipality_id: int, *, url: str, description: str | None, secret_ciphertext: str
) -> WebhookSubscription:
    subscription = WebhookSubscription(
        municipality_id=municipality_id, url=url, description=description, secret_ciphertext=secret_ciphertext
    )
    session.add(subscription)
    session.flush()
    session.refresh(subscription)
    return subscription


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


# --- deliveries --------------------------------------------------------------------------------


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


def claim_due_deliveries(engine: Engine, now: datetime, *, batch: int, lease: timedelta) -> list[int]:
    """Claim up to `batch` due deliveries for `lease`, committed at once; their ids in order.

    A claim not finished within the lease (its sender died) is due again.
    """
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
                .values(next_attempt_at=now + lease)
                .returning(WebhookDelivery.id)
            )
        )
        session.commit()
    return sorted(claimed)


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """A claimed delivery with all that its request is made of."""

    delivery: WebhookDelivery
    subscription: WebhookSubscription
    event: AlertEvent
    rule: AlertRule
    municipality_slug: str


def pending_delivery(session: Session, delivery_id: int) -> PendingDelivery | None:
    found = session.execute(
        select(WebhookDelivery, WebhookSubscription, AlertEvent, AlertRule, Municipality.slug)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .join(AlertEvent, AlertEvent.id == WebhookDelivery.event_id)
        .join(AlertRule, AlertRule.id == AlertEvent.rule_id)
        .join(Municipality, Municipality.id == WebhookSubscription.municipality_id)
        .where(WebhookDelivery.id == delivery_id)
    ).first()
    if found is None:
        return None
    delivery, subscription, event, rule, slug = found
    return PendingDelivery(delivery, subscription, event, rule, slug)


def record_attempt(
    session: Session, delivery: WebhookDelivery, *, outcome: str, at: datetime, duration_ms: float
) -> None:
    """Log one attempt and count it on the delivery; the caller settles the delivery's status."""
    session.add(
        WebhookAttempt(delivery_id=delivery.id, attempted_at=at, outcome=outcome, duration_ms=duration_ms)
    )
    delivery.attempts += 1
