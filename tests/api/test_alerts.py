"""Alerts end to end: rules through the API, `evaluate_alerts` opening and resolving events,
acknowledging, and signed webhooks delivered to a real HTTP server in a thread, with
retries and the delivery log.

The receiver listens on 127.0.0.1 over plain http, which the platform refuses by
default; this module's app and sender allow exactly that, as a closed network would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from services.alerts import evaluate_alerts
from services.webhook_delivery import (
    BACKOFF,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    deliver_notifications,
    signature_is_valid,
)
from services.webhook_targets import WebhookSender, WebhookSettings
from storage.models import DeviceState, Reading
from storage.models_usecases import AlertRule
from storage.secret_box import SecretBox
from tests.api.data import RegisteredHooks, Tenant, add_readings, device_id, register

LOCAL_RECEIVERS = WebhookSettings(allow_http=True, allowed_private_targets=["127.0.0.1"])


@pytest.fixture(scope="module")
def client(settings: ApiSettings, engine: Engine, hook: RegisteredHooks) -> Iterator[TestClient]:
    """The API suite's app, but one that accepts receivers on this machine."""
    local = settings.model_copy(update={"webhooks": LOCAL_RECEIVERS})
    with TestClient(create_app(local, engine=engine, on_device_registered=hook)) as client:
        yield client


@pytest.fixture
def box(settings: ApiSettings) -> SecretBox:
    found = SecretBox.from_settings(settings.secrets)
    assert found is not None
    return found


@pytest.fixture
def http() -> Iterator[WebhookSender]:
    with WebhookSender(LOCAL_RECEIVERS) as sender:
        yield sender


@dataclass
class Receiver:
    """A webhook receiver that answers with the queued statuses (then 204) and keeps what it got."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            found.received.append(({name: value for name, value in self.headers.items()}, body))
            self.send_response(found.statuses.pop(0) if found.statuses else 204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def only_this_tests_rules(engine: Engine) -> None:
    """`evaluate_alerts` looks at every municipality; other tests' rules would fire here too."""
    with Session(engine) as session:
        session.execute(delete(AlertRule))
        session.commit()


def fill(engine: Engine, dev_eui: str, points: list[tuple[datetime, float]]) -> None:
    """Fill readings and the latest state, upserted as the ingest writer does on every batch."""
    device = device_id(engine, dev_eui)
    with Session(engine) as session:
        session.execute(
            insert(Reading),
            [{"time": t, "device_id": device, "quantity": "fill_level", "value": v} for t, v in points],
        )
        moment, value = max(points)
        state = pg_insert(DeviceState).values(
            device_id=device, quantity="fill_level", time=moment, value=value
        )
        session.execute(
            state.on_conflict_do_update(
                index_elements=["device_id", "quantity"], set_={"time": moment, "value": value}
            )
        )
        session.commit()


def test_rule_fires_after_its_duration_resolves_and_notifies_signed(
    client: TestClient,
    engine: Engine,
    tenant: Tenant,
    receiver: Receiver,
    box: SecretBox,
    http: WebhookSender,
) -> None:
    admin = tenant.headers("admin")
    now = datetime.now(UTC)
    bin_eui = register(client, tenant, name="Bin Markt")["dev_eui"]
    fill(
        engine,
        bin_eui,
        [
            (now - timedelta(hours=3), 50.0),
            (now - timedelta(minutes=40), 92.0),
            (now - timedelta(minutes=5), 95.0),
        ],
    )
    rule = client.post(
        tenant.url("/alerts/rules"),
        json={"name": "Bins full", "kind": "bin_above", "threshold": 90, "duration_s": 3600},
        headers=admin,
    )
    assert rule.status_code == 201, rule.text
    hook = client.post(tenant.url("/alerts/webhooks"), json={"url": receiver.url}, headers=admin).json()
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    assert "secret" not in client.get(tenant.url("/alerts/webhooks"), headers=admin).json()["items"][0]

    # full for 40 minutes only: the rule wants an hour
    assert evaluate_alerts(engine, now).opened == 0
    later = now + timedelta(minutes=30)
    assert evaluate_alerts(engine, later).opened == 1
    assert evaluate_alerts(engine, later).opened == 0  # still open, not opened twice
    events = client.get(tenant.url("/alerts/events"), headers=tenant.headers("viewer")).json()["items"]
    assert [(event["subject"], event["value"], event["resolved_at"]) for event in events] == [
        (bin_eui, 95.0, None)
    ]

    assert (
        client.post(
            tenant.url(f"/alerts/events/{events[0]['id']}/ack"), headers=tenant.headers("viewer")
        ).status_code
        == 403
    )
    acked = client.post(
        tenant.url(f"/alerts/events/{events[0]['id']}/ack"), headers=tenant.headers("technician")
    ).json()
    assert acked["acknowledged_by"].startswith("technician")

    result = deliver_notifications(engine, http, box, later)
    assert result.delivered == 1
    headers, body = receiver.received[0]
    assert signature_is_valid(secret, int(headers[TIMESTAMP_HEADER]), body, headers[SIGNATURE_HEADER])
    assert not signature_is_valid(
        "whsec_other", int(headers[TIMESTAMP_HEADER]), body, headers[SIGNATURE_HEADER]
    )
    payload = json.loads(body)
    assert payload["transition"] == "opened"
    assert payload["municipality"] == tenant.slug
    assert payload["event"]["subject"] == bin_eui

    fill(engine, bin_eui, [(later + timedelta(minutes=10), 3.0)])
    emptied = later + timedelta(minutes=11)
    assert evaluate_alerts(engine, emptied).resolved == 1
    resolved = client.get(
        tenant.url("/alerts/events"), params={"status": "resolved"}, headers=tenant.headers("viewer")
    ).json()
    assert resolved["items"][0]["resolved_at"] is not None
    assert client.get(tenant.url("/alerts/events"), headers=tenant.headers("viewer")).json()["items"] == []
    assert deliver_notifications(engine, http, box, emptied).delivered == 1
    assert json.loads(receiver.received[1][1])["transition"] == "resolved"


def test_failed_deliveries_back_off_and_are_logged(
    client: TestClient,
    engine: Engine,
    tenant: Tenant,
    receiver: Receiver,
    box: SecretBox,
    http: WebhookSender,
) -> None:
    admin = tenant.headers("admin")
    now = datetime.now(UTC)
    bin_eui = register(client, tenant)["dev_eui"]
    fill(engine, bin_eui, [(now - timedelta(minutes=5), 97.0)])
    client.post(tenant.url("/alerts/rules"), json={"name": "Full", "kind": "bin_above"}, headers=admin)
    hook = client.post(tenant.url("/alerts/webhooks"), json={"url": receiver.url}, headers=admin).json()
    evaluate_alerts(engine, now)
    receiver.statuses = [503, 500]
    assert deliver_notifications(engine, http, box, now).retrying == 1
    assert deliver_notifications(engine, http, box, now + BACKOFF[0] / 2).retrying == 0  # not due yet
    assert deliver_notifications(engine, http, box, now + BACKOFF[0]).retrying == 1
    assert deliver_notifications(engine, http, box, now + BACKOFF[0] + BACKOFF[1]).delivered == 1
    log = client.get(tenant.url(f"/alerts/webhooks/{hook['id']}/deliveries"), headers=admin).json()["items"]
    assert len(log) == 1
    assert log[0]["status"] == "delivered"
    assert [attempt["outcome"] for attempt in log[0]["log"]] == ["5xx", "5xx", "2xx"]
    assert len(receiver.received) == 3


def test_unreachable_receiver_is_retried_then_given_up(
    client: TestClient, engine: Engine, tenant: Tenant, box: SecretBox, http: WebhookSender
) -> None:
    admin = tenant.headers("admin")
    now = datetime.now(UTC)
    bin_eui = register(client, tenant)["dev_eui"]
    fill(engine, bin_eui, [(now - timedelta(minutes=5), 97.0)])
    client.post(tenant.url("/alerts/rules"), json={"name": "Full", "kind": "bin_above"}, headers=admin)
    hook = client.post(
        tenant.url("/alerts/webhooks"), json={"url": "http://127.0.0.1:9/closed"}, headers=admin
    ).json()
    evaluate_alerts(engine, now)
    moment = now
    for wait in (*BACKOFF, timedelta(0)):
        deliver_notifications(engine, http, box, moment)
        moment += wait
    log = client.get(tenant.url(f"/alerts/webhooks/{hook['id']}/deliveries"), headers=admin).json()["items"]
    assert log[0]["status"] == "failed"
    assert len(log[0]["log"]) == len(BACKOFF) + 1
    # A closed port is only a `network-error`: the log tells nothing more about the far side.
    assert [set(attempt) for attempt in log[0]["log"]] == [{"attempted_at", "outcome", "duration_ms"}] * 7
    assert {attempt["outcome"] for attempt in log[0]["log"]} == {"network-error"}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "kind": "quantity_above", "threshold": 1},
        {"name": "x", "kind": "quantity_above", "quantity": "no_such_thing", "threshold": 1},
        {"name": "x", "kind": "device_silent", "threshold": 3},
        {"name": "x", "kind": "bin_above", "quantity": "co2"},
        {"name": "x", "kind": "sunspots"},
    ],
)
def test_rules_that_make_no_sense_are_refused(
    client: TestClient, tenant: Tenant, body: dict[str, Any]
) -> None:
    response = client.post(tenant.url("/alerts/rules"), json=body, headers=tenant.headers("admin"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_quantity_silence_and_gateway_rules(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    admin = tenant.headers("admin")
    now = datetime.now(UTC)
    room = register(
        client, tenant, use_case="environment", name="Klassenzimmer", metadata={"expected_interval_s": 600}
    )["dev_eui"]
    add_readings(engine, [(now - timedelta(minutes=1), device_id(engine, room), "co2", 1800.0)])
    for body in (
        {"name": "CO2", "kind": "quantity_above", "quantity": "co2", "threshold": 1500},
        {"name": "Silent", "kind": "device_silent"},
    ):
        assert client.post(tenant.url("/alerts/rules"), json=body, headers=admin).status_code == 201
    evaluate_alerts(engine, now)
    events = client.get(tenant.url("/alerts/events"), headers=admin).json()["items"]
    # the room has never been heard (no activity row): silent as well as stuffy
    assert sorted(event["rule_name"] for event in events) == ["CO2", "Silent"]
    rule_id = events[0]["rule_id"]
    assert client.delete(tenant.url(f"/alerts/rules/{rule_id}"), headers=admin).status_code == 204
    assert len(client.get(tenant.url("/alerts/events"), headers=admin).json()["items"]) == 1
