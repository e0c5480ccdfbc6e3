"""Notification delivery without the API: what a receiver gets, how it checks it, and the retries."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from domain.errors import NotConfigured
from services.webhook_delivery import (
    BACKOFF,
    DELIVERY_HEADER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    create_subscription,
    deliver_notifications,
    signature,
    signature_is_valid,
    signed_headers,
)
from services.webhook_targets import IPAddress, Outcome, TargetRefused, WebhookSettings
from storage.alerts import RuleKind, Transition, create_rule, open_event, queue_notifications
from storage.models_usecases import WebhookDelivery
from storage.secret_box import SecretBox, new_key
from tests.services.conftest import new_town

BOX = SecretBox([new_key()])
RECEIVERS = WebhookSettings(allow_http=True)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def public(host: str, port: int) -> list[IPAddress]:
    return [ip_address("93.184.216.34")]


@dataclass
class Receiver:
    """A sender stand-in that answers with `outcome` and keeps what it was given."""

    outcome: Outcome = Outcome.SUCCESS
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        self.received.append((url, body, dict(headers)))
        return self.outcome


def test_the_signature_is_the_hmac_of_timestamp_and_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_x", 1_700_000_000, body) == f"sha256={expected}"
    assert signature_is_valid("whsec_x", 1_700_000_000, body, f"sha256={expected}")
    assert not signature_is_valid("whsec_y", 1_700_000_000, body, f"sha256={expected}")
    assert not signature_is_valid("whsec_x", 1_700_000_001, body, f"sha256={expected}")
    assert not signature_is_valid("whsec_x", 1_700_000_000, body + b" ", f"sha256={expected}")


def test_signed_headers_name_the_delivery_and_the_moment() -> None:
    headers = signed_headers("whsec_x", 42, b"{}", NOW)
    assert headers[TIMESTAMP_HEADER] == str(int(NOW.timestamp()))
    assert headers[DELIVERY_HEADER] == "42"
    assert headers["Content-Type"] == "application/json"
    assert signature_is_valid("whsec_x", int(NOW.timestamp()), b"{}", headers[SIGNATURE_HEADER])


def test_a_subscription_needs_an_allowed_url_and_a_key(services_engine: Engine) -> None:
    town = new_town(services_engine)
    with Session(services_engine) as session:
        with pytest.raises(TargetRefused):
            create_subscription(
                session,
                town,
                url="http://127.0.0.1/hook",
                description=None,
                box=BOX,
                targets=RECEIVERS,
                resolver=public,
            )
        with pytest.raises(NotConfigured):
            create_subscription(
                session,
                town,
                url="https://receiver.example/hook",
                description=None,
                box=None,
                targets=RECEIVERS,
                resolver=public,
            )
        subscription, secret = create_subscription(
            session,
            town,
            url="https://receiver.example/hook",
            description="dispatch",
            box=BOX,
            targets=RECEIVERS,
            resolver=public,
        )
        assert secret.startswith("whsec_")
        assert BOX.open(subscription.secret_ciphertext) == secret
        assert secret not in subscription.secret_ciphertext


def _queued_event(engine: Engine) -> tuple[int, str]:
    """A town with one subscription and one opened event queued for it: (delivery id, secret)."""
    town = new_town(engine)
    with Session(engine) as session:
        subscription, secret = create_subscription(
            session,
            town,
            url="https://receiver.example/hook",
            description=None,
            box=BOX,
            targets=RECEIVERS,
            resolver=public,
        )
        rule = create_rule(session, town, name="full", kind=RuleKind.BIN_ABOVE.value, threshold=80.0)
        event = open_event(
            session,
            rule,
            subject_kind="device",
            subject="0011223344556677",
            value=95.0,
            message="full",
            now=NOW,
        )
        assert event is not None
        queue_notifications(session, event, Transition.OPENED, NOW)
        delivery = session.query(WebhookDelivery).filter_by(subscription_id=subscription.id).one()
        session.commit()
        return delivery.id, secret


def test_a_due_delivery_is_posted_once_signed(services_engine: Engine) -> None:
    delivery_id, secret = _queued_event(services_engine)
    receiver = Receiver()
    result = deliver_notifications(services_engine, receiver, BOX, NOW)
    ours = [sent for sent in receiver.received if sent[2][DELIVERY_HEADER] == str(delivery_id)]
    assert len(ours) == 1
    url, body, headers = ours[0]
    assert url == "https://receiver.example/hook"
    assert signature_is_valid(secret, int(headers[TIMESTAMP_HEADER]), body, headers[SIGNATURE_HEADER])
    document = json.loads(body)
    assert document["transition"] == "opened"
    assert document["event"]["subject"] == "0011223344556677"
    assert document["event"]["kind"] == "bin_above"
    assert result.delivered >= 1
    again = Receiver()
    deliver_notifications(services_engine, again, BOX, NOW + timedelta(hours=1))
    assert all(sent[2][DELIVERY_HEADER] != str(delivery_id) for sent in again.received)
    with Session(services_engine) as session:
        delivery = session.get_one(WebhookDelivery, delivery_id)
        assert (delivery.status, delivery.attempts, delivery.delivered_at) == ("delivered", 1, NOW)


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(services_engine: Engine) -> None:
    delivery_id, _ = _queued_event(services_engine)
    receiver = Receiver(Outcome.SERVER_ERROR)
    moment = NOW
    for attempt in range(1, MAX_ATTEMPTS + 1):
        deliver_notifications(services_engine, receiver, BOX, moment)
        with Session(services_engine) as session:
            delivery = session.get_one(WebhookDelivery, delivery_id)
            assert delivery.attempts == attempt
            if attempt < MAX_ATTEMPTS:
                assert delivery.status == "pending"
                assert delivery.next_attempt_at == moment + BACKOFF[attempt - 1]
                moment = delivery.next_attempt_at
            else:
                assert delivery.status == "failed"


def test_a_secret_no_key_opens_is_left_pending_without_an_attempt(services_engine: Engine) -> None:
    delivery_id, _ = _queued_event(services_engine)
    receiver = Receiver()
    result = deliver_notifications(services_engine, receiver, SecretBox([new_key()]), NOW)
    assert result.unsigned >= 1
    assert all(sent[2][DELIVERY_HEADER] != str(delivery_id) for sent in receiver.received)
    with Session(services_engine) as session:
        delivery = session.get_one(WebhookDelivery, delivery_id)
        assert (delivery.status, delivery.attempts) == ("pending", 0)
