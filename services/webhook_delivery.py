"""Notification delivery: alert events signed and POSTed to the municipalities' webhooks.

`deliver_notifications(engine, sender, box, now)` is meant to run periodically from a
composition root, safe to run in several processes at once: due deliveries are
claimed with a lease (`storage.alerts.claim_due_deliveries`), committed before any
HTTP call, so a slow receiver never holds a lock and a crashed sender's claims return.

A delivery is signed: `X-Lorakom-Signature: sha256=<hex>` is the HMAC-SHA256, keyed
with the subscription's secret, of `<X-Lorakom-Timestamp>.<body>`. The receiver
recomputes it and rejects old timestamps, so a captured request cannot be replayed.
The secret is stored encrypted (`storage.secret_box`) and opened only to sign.

Where a delivery may go, and how it is sent, is `services.webhook_targets`: public
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
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from domain.errors import ConfigurationError, NotConfigured
from services.webhook_targets import (
    Outcome,
    Resolver,
    WebhookSender,
    WebhookSettings,
    check_new_target,
    resolve_host,
)
from storage.alerts import (
    DeliveryStatus,
    PendingDelivery,
    add_subscription,
    claim_due_deliveries,
    pending_delivery,
    record_attempt,
)
from storage.models_usecases import WebhookSubscription
from storage.secret_box import KEYS_VARIABLE, SecretBox

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
    subscription = add_subscription(
        session, municipality_id, url=url, description=description, secret_ciphertext=box.seal(secret)
    )
    return subscription, secret


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The value of `X-Lorakom-Signature` for a body sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_is_valid(secret: str, timestamp: int, body: bytes, presented: str) -> bool:
    """What a receiver checks (in constant time); the receiver also bounds the timestamp's age."""
    return hmac.compare_digest(signature(secret, timestamp, body), presented)


def payload(pending: PendingDelivery) -> dict[str, Any]:
    """The JSON document a delivery sends."""
    delivery, event, rule = pending.delivery, pending.event, pending.rule
    return {
        "delivery_id": delivery.id,
        "transition": delivery.transition,
        "municipality": pending.municipality_slug,
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


def signed_headers(secret: str, delivery_id: int, body: bytes, moment: datetime) -> dict[str, str]:
    """The request headers of a delivery sent at `moment`, its signature among them."""
    timestamp = int(moment.timestamp())
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        DELIVERY_HEADER: str(delivery_id),
    }


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivered: int
    retrying: int
    failed: int
    unsigned: int = 0
    """Deliveries whose secret no configured key opens (left pending, logged)."""


def deliver_notifications(
    engine: Engine, sender: WebhookSender, box: SecretBox, now: datetime | None = None, *, batch: int = 50
) -> DeliveryResult:
    """POST every due delivery once; failures are retried later with `BACKOFF`, then given up.

    A URL refused by the target policy is retried like any failure: the DNS answer that
    made it refused may be a passing one, and the admin sees `refused-by-policy` in the log.
    """
    moment = now or datetime.now(UTC)
    delivered = retrying = failed = unsigned = 0
    for delivery_id in claim_due_deliveries(engine, moment, batch=batch, lease=CLAIM_LEASE):
        with Session(engine) as session:
            pending = pending_delivery(session, delivery_id)
            if pending is None:
                continue
            delivery, subscription = pending.delivery, pending.subscription
            try:
                secret = box.open(subscription.secret_ciphertext)
            except ConfigurationError as exc:
                # Stored under a key this process lacks: not the receiver's failure, so no
                # attempt is counted; the claim's lease returns it once the key is back.
                log.error("webhook subscription %d: %s", subscription.id, exc)
                unsigned += 1
                continue
            body = json.dumps(payload(pending), separators=(",", ":")).encode()
            headers = signed_headers(secret, delivery.id, body, moment)
            started = time.perf_counter()
            outcome = sender.post(subscription.url, body, headers)
            duration_ms = (time.perf_counter() - started) * 1000
            record_attempt(session, delivery, outcome=outcome.value, at=moment, duration_ms=duration_ms)
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
