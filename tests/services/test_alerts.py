"""Alert evaluation without the API: violations, events opened once and resolved, held durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Engine, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from services.alerts import evaluate_rule, violating_since, violations
from services.webhook_delivery import create_subscription
from storage.alerts import RuleKind, create_rule
from storage.models import DeviceState, Reading
from storage.models_usecases import AlertEvent, AlertRule, WebhookDelivery
from tests.api.data import add_readings
from tests.services.conftest import new_device, new_town
from tests.services.test_webhook_delivery import BOX, RECEIVERS, public

NOW = datetime.now(UTC).replace(microsecond=0)


def test_violating_since_is_where_the_current_run_of_violations_began() -> None:
    times = np.asarray([0.0, 10.0, 20.0, 30.0])
    assert violating_since(times, np.asarray([95.0, 50.0, 95.0, 96.0]), RuleKind.BIN_ABOVE, 90.0) == 20.0
    assert violating_since(times, np.asarray([95.0, 95.0, 95.0, 95.0]), RuleKind.BIN_ABOVE, 90.0) == 0.0
    assert violating_since(times, np.asarray([95.0, 95.0, 95.0, 50.0]), RuleKind.BIN_ABOVE, 90.0) == float(
        "inf"
    )
    assert violating_since(times, np.asarray([20.0, 10.0, 9.0, 5.0]), RuleKind.BATTERY_LOW, 15.0) == 10.0
    assert violating_since(np.asarray([]), np.asarray([]), RuleKind.BIN_ABOVE, 90.0) == float("inf")


def _measure_again(engine: Engine, device: int, quantity: str, value: float, at: datetime) -> None:
    """A newer reading and the latest state it leaves, as the ingest writer would."""
    with Session(engine) as session:
        session.execute(insert(Reading).values(time=at, device_id=device, quantity=quantity, value=value))
        state = pg_insert(DeviceState).values(device_id=device, quantity=quantity, time=at, value=value)
        session.execute(
            state.on_conflict_do_update(
                index_elements=["device_id", "quantity"], set_={"time": at, "value": value}
            )
        )
        session.commit()


def _rule(engine: Engine, town: int, **fields: object) -> int:
    with Session(engine) as session:
        rule = create_rule(session, town, name="rule", **fields)
        session.commit()
        return rule.id


def _evaluate(engine: Engine, rule_id: int, now: datetime) -> tuple[int, int]:
    with Session(engine) as session:
        rule = session.get_one(AlertRule, rule_id)
        found = evaluate_rule(session, rule, now)
        session.commit()
        return found


def test_an_event_opens_once_and_resolves_when_the_value_is_fine_again(services_engine: Engine) -> None:
    town = new_town(services_engine)
    full, _ = new_device(services_engine, town, name="Bin 1")
    fine, _ = new_device(services_engine, town, name="Bin 2")
    add_readings(
        services_engine,
        [
            (NOW - timedelta(minutes=5), full, "fill_level", 95.0),
            (NOW - timedelta(minutes=5), fine, "fill_level", 40.0),
        ],
    )
    rule_id = _rule(services_engine, town, kind=RuleKind.BIN_ABOVE.value)
    with Session(services_engine) as session:
        found = violations(session, session.get_one(AlertRule, rule_id), NOW)
    assert [(v.subject_kind, v.value) for v in found] == [("device", 95.0)]
    assert found[0].message == "Bin 1: fill_level 95 above 90"

    assert _evaluate(services_engine, rule_id, NOW) == (1, 0)
    assert _evaluate(services_engine, rule_id, NOW + timedelta(minutes=1)) == (0, 0)
    _measure_again(services_engine, full, "fill_level", 10.0, NOW)
    assert _evaluate(services_engine, rule_id, NOW + timedelta(minutes=2)) == (0, 1)
    with Session(services_engine) as session:
        events = list(session.scalars(select(AlertEvent).where(AlertEvent.rule_id == rule_id)))
        assert len(events) == 1
        assert events[0].resolved_at == NOW + timedelta(minutes=2)


def test_a_threshold_must_hold_for_the_rules_duration(services_engine: Engine) -> None:
    town = new_town(services_engine)
    device, _ = new_device(services_engine, town)
    add_readings(
        services_engine,
        [
            (NOW - timedelta(minutes=30), device, "temperature", 20.0),
            (NOW - timedelta(minutes=10), device, "temperature", 31.0),
        ],
    )
    rule_id = _rule(
        services_engine,
        town,
        kind=RuleKind.QUANTITY_ABOVE.value,
        quantity="temperature",
        threshold=30.0,
        duration_s=900,
    )
    assert _evaluate(services_engine, rule_id, NOW) == (0, 0)
    assert _evaluate(services_engine, rule_id, NOW + timedelta(minutes=6)) == (1, 0)


def test_a_disabled_rule_resolves_its_open_events(services_engine: Engine) -> None:
    town = new_town(services_engine)
    device, _ = new_device(services_engine, town)
    add_readings(services_engine, [(NOW - timedelta(minutes=1), device, "battery", 5.0)])
    rule_id = _rule(services_engine, town, kind=RuleKind.BATTERY_LOW.value)
    assert _evaluate(services_engine, rule_id, NOW) == (1, 0)
    with Session(services_engine) as session:
        session.get_one(AlertRule, rule_id).enabled = False
        session.commit()
    assert _evaluate(services_engine, rule_id, NOW) == (0, 1)


def test_a_device_never_heard_is_silent(services_engine: Engine) -> None:
    town = new_town(services_engine)
    _, dev_eui = new_device(services_engine, town, name="Quiet")
    silent = _rule(services_engine, town, kind=RuleKind.DEVICE_SILENT.value)
    with Session(services_engine) as session:
        found = violations(session, session.get_one(AlertRule, silent), NOW)
    assert [(v.subject, v.message) for v in found] == [(dev_eui, "Quiet: silent since it was registered")]


def test_each_transition_queues_one_delivery_per_enabled_subscription(services_engine: Engine) -> None:
    town = new_town(services_engine)
    device, _ = new_device(services_engine, town)
    add_readings(services_engine, [(NOW - timedelta(minutes=1), device, "battery", 5.0)])
    with Session(services_engine) as session:
        for url in ("https://one.example/hook", "https://two.example/hook"):
            create_subscription(
                session, town, url=url, description=None, box=BOX, targets=RECEIVERS, resolver=public
            )
        session.commit()
    rule_id = _rule(services_engine, town, kind=RuleKind.BATTERY_LOW.value)
    assert _evaluate(services_engine, rule_id, NOW) == (1, 0)
    _measure_again(services_engine, device, "battery", 90.0, NOW)
    assert _evaluate(services_engine, rule_id, NOW + timedelta(minutes=1)) == (0, 1)
    with Session(services_engine) as session:
        event = session.scalars(select(AlertEvent).where(AlertEvent.rule_id == rule_id)).one()
        deliveries = session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id))
        assert sorted(delivery.transition for delivery in deliveries) == [
            "opened",
            "opened",
            "resolved",
            "resolved",
        ]
