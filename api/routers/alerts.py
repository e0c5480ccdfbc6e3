"""Alerts: rules (admin), events (everyone reads, field roles acknowledge), webhooks (admin).

Events are opened and resolved by `services.alerts.evaluate_alerts`, run periodically
by the composition root; notifications go out through
`services.webhook_delivery.deliver_notifications`. Here people manage rules and subscriptions
and acknowledge what they have seen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from api.access import Action
from api.deps import (
    CurrentKey,
    KeyAdminDep,
    MunicipalityDep,
    ServicesDep,
    SessionDep,
    SettingsDep,
    municipality_for,
)
from api.pagination import BIGINT_MAX, CursorQuery, LimitQuery, Page, int_cursor, page_of
from api.problems import problem_responses
from api.schemas.alerts import (
    AlertEventOut,
    AlertRuleIn,
    AlertRuleOut,
    CreatedWebhook,
    DeliveryOut,
    WebhookIn,
    WebhookOut,
)
from domain.municipality import Municipality
from services.webhook_delivery import create_subscription
from services.webhook_targets import Resolver
from storage.alerts import (
    EventStatus,
    acknowledge,
    create_rule,
    delivery_log,
    get_rule,
    get_subscription,
    list_events,
    list_rules,
    list_subscriptions,
)
from storage.secret_box import SecretBox

router = APIRouter(prefix="/municipalities/{slug}/alerts", tags=["alerts"])

FieldRoleDep = Annotated[Municipality, Depends(municipality_for(Action.EDIT_GATEWAYS))]
"""Acknowledging is for the people who go out and fix things: technicians, editors, admins."""
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
EventIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get(
    "/rules",
    summary="The municipality's alert rules",
    response_model=Page[AlertRuleOut],
    responses=problem_responses(403, 404),
)
def rules(
    municipality: MunicipalityDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[AlertRuleOut]:
    rows = list_rules(session, municipality.id, after_id=int_cursor(cursor), limit=limit)
    return page_of(rows, limit, item=AlertRuleOut.of, position=lambda rule: rule.id)


@router.post(
    "/rules",
    summary="Add an alert rule (admin)",
    response_model=AlertRuleOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403, 404),
)
def add_rule(body: AlertRuleIn, municipality: KeyAdminDep, session: SessionDep) -> AlertRuleOut:
    rule = create_rule(session, municipality.id, **body.model_dump(mode="json"))
    session.commit()
    return AlertRuleOut.of(rule)


@router.delete(
    "/rules/{rule_id}",
    summary="Remove an alert rule and its events (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
def remove_rule(rule_id: IdPath, municipality: KeyAdminDep, session: SessionDep) -> None:
    session.delete(get_rule(session, municipality.id, rule_id))
    session.commit()


@router.get(
    "/events",
    summary="Alert events, newest first",
    response_model=Page[AlertEventOut],
    responses=problem_responses(403, 404),
)
def events(
    municipality: MunicipalityDep,
    session: SessionDep,
    state: Annotated[
        EventStatus, Query(alias="status", description="Open, resolved or all")
    ] = EventStatus.OPEN,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[AlertEventOut]:
    rows = list_events(
        session, municipality.id, status=state, before_id=int_cursor(cursor, maximum=BIGINT_MAX), limit=limit
    )
    return page_of(rows, limit, item=AlertEventOut.of, position=lambda row: row[0].id)


@router.post(
    "/events/{event_id}/ack",
    summary="Acknowledge an event (technician, editor, admin); acknowledging twice keeps the first",
    response_model=AlertEventOut,
    responses=problem_responses(403, 404),
)
def ack(
    event_id: EventIdPath, municipality: FieldRoleDep, session: SessionDep, key: CurrentKey
) -> AlertEventOut:
    found = acknowledge(
        session, municipality.id, event_id, by=f"{key.name} ({key.prefix})", now=datetime.now(UTC)
    )
    session.commit()
    return AlertEventOut.of(found)


@router.get(
    "/webhooks",
    summary="Webhook subscriptions (admin)",
    response_model=Page[WebhookOut],
    responses=problem_responses(403, 404),
)
def webhooks(
    municipality: KeyAdminDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[WebhookOut]:
    rows = list_subscriptions(session, municipality.id, after_id=int_cursor(cursor), limit=limit)
    return page_of(rows, limit, item=WebhookOut.of, position=lambda row: row.id)


def secret_box(services: ServicesDep) -> SecretBox | None:
    """The box of `LORAKOM_SECRET_KEYS`, built once per app (None when no key is set)."""
    return services.secret_box


def webhook_resolver(services: ServicesDep) -> Resolver:
    """The system resolver; `AppServices.webhook_resolver` replaces it (a test's DNS answers)."""
    return services.webhook_resolver


@router.post(
    "/webhooks",
    summary="Subscribe a URL to alert events (admin); the signing secret is in this response only",
    response_model=CreatedWebhook,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403, 404),
)
def add_webhook(
    body: WebhookIn,
    municipality: KeyAdminDep,
    session: SessionDep,
    settings: SettingsDep,
    box: Annotated[SecretBox | None, Depends(secret_box)],
    resolver: Annotated[Resolver, Depends(webhook_resolver)],
) -> CreatedWebhook:
    subscription, secret = create_subscription(
        session,
        municipality.id,
        url=str(body.url),
        description=body.description,
        box=box,
        targets=settings.webhooks,
        resolver=resolver,
    )
    session.commit()
    return CreatedWebhook(**WebhookOut.of(subscription).model_dump(), secret=secret)


@router.delete(
    "/webhooks/{webhook_id}",
    summary="Unsubscribe (admin); pending deliveries are dropped",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
def remove_webhook(webhook_id: IdPath, municipality: KeyAdminDep, session: SessionDep) -> None:
    session.delete(get_subscription(session, municipality.id, webhook_id))
    session.commit()


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    summary="Delivery log of a subscription, newest first, with every attempt (admin)",
    response_model=Page[DeliveryOut],
    responses=problem_responses(403, 404),
)
def deliveries(
    webhook_id: IdPath,
    municipality: KeyAdminDep,
    session: SessionDep,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[DeliveryOut]:
    subscription = get_subscription(session, municipality.id, webhook_id)
    rows = delivery_log(session, subscription, before_id=int_cursor(cursor, maximum=BIGINT_MAX), limit=limit)
    return page_of(rows, limit, item=DeliveryOut.of, position=lambda row: row.delivery.id)
