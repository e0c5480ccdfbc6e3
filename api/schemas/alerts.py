"""Bodies of the alert routes: rules, events, webhook subscriptions and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, JsonValue, UrlConstraints, model_validator

from api.schemas.numbers import BodyInt
from domain.quantity import find_quantity
from domain.text import Label, Name
from services.webhook_targets import Outcome
from storage.alerts import DeliveryLog, RuleKind
from storage.models_usecases import AlertEvent, AlertRule, WebhookAttempt, WebhookSubscription

NEEDS_QUANTITY = (RuleKind.QUANTITY_ABOVE, RuleKind.QUANTITY_BELOW)


class AlertRuleIn(BaseModel):
    """A rule. Threshold rules fire once the condition has held for `duration_s`.

    `quantity_above`/`quantity_below` need `quantity` and `threshold`; `bin_above`
    (fill %, default 90) and `battery_low` (%, default 15) take an optional
    threshold; `soil_dry` uses each sensor's red threshold unless one is given;
    `device_silent` and `gateway_offline` take none. `tag` narrows device rules.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "Bins nearly full", "kind": "bin_above", "threshold": 85, "duration_s": 1800},
                {"name": "Hot classroom", "kind": "quantity_above", "quantity": "co2", "threshold": 1500},
            ]
        },
    )

    name: Name
    kind: RuleKind
    quantity: Annotated[str, Field(pattern=r"^[a-z0-9_@.-]{1,40}$")] | None = None
    threshold: float | None = Field(default=None, allow_inf_nan=False, ge=-1e9, le=1e9, strict=True)
    duration_s: BodyInt = Field(default=0, ge=0, le=30 * 86_400)
    tag: Label | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def parameters_fit_the_kind(self) -> AlertRuleIn:
        if self.kind in NEEDS_QUANTITY:
            if self.quantity is None or self.threshold is None:
                raise ValueError(f"{self.kind.value} needs a quantity and a threshold")
            if find_quantity(self.quantity) is None:
                raise ValueError(f"unknown quantity {self.quantity!r}")
        elif self.quantity is not None:
            raise ValueError(f"{self.kind.value} takes no quantity")
        if self.kind in (RuleKind.DEVICE_SILENT, RuleKind.GATEWAY_OFFLINE) and self.threshold is not None:
            raise ValueError(f"{self.kind.value} takes no threshold")
        return self


RULE_EXAMPLE: dict[str, JsonValue] = {
    "id": 3,
    "name": "Bins nearly full",
    "kind": "bin_above",
    "quantity": None,
    "threshold": 85.0,
    "duration_s": 1800,
    "tag": None,
    "enabled": True,
    "created_at": "2026-11-26T09:00:00Z",
}


class AlertRuleOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [RULE_EXAMPLE]})

    id: int
    name: str
    kind: RuleKind
    quantity: str | None
    threshold: float | None
    duration_s: int
    tag: str | None
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, rule: AlertRule) -> AlertRuleOut:
        return cls(
            id=rule.id,
            name=rule.name,
            kind=RuleKind(rule.kind),
            quantity=rule.quantity,
            threshold=rule.threshold,
            duration_s=rule.duration_s,
            tag=rule.tag,
            enabled=rule.enabled,
            created_at=rule.created_at,
        )


class AlertEventOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 41,
                    "rule_id": 3,
                    "rule_name": "Bins nearly full",
                    "kind": "bin_above",
                    "subject_kind": "device",
                    "subject": "70b3d57ed0001234",
                    "value": 91.5,
                    "message": "Bin Marktplatz 3: fill_level 91.5 above 85",
                    "opened_at": "2026-11-26T07:10:00Z",
                    "resolved_at": None,
                    "acknowledged_at": "2026-11-26T07:25:00Z",
                    "acknowledged_by": "Bauhof tablet (3f9a0c1b22de)",
                }
            ]
        }
    )

    id: int
    rule_id: int
    rule_name: str
    kind: RuleKind
    subject_kind: str = Field(description="`device` (subject is a DevEUI) or `gateway`")
    subject: str
    value: float | None
    message: str
    opened_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None

    @classmethod
    def of(cls, found: tuple[AlertEvent, AlertRule]) -> AlertEventOut:
        event, rule = found
        return cls(
            id=event.id,
            rule_id=rule.id,
            rule_name=rule.name,
            kind=RuleKind(rule.kind),
            subject_kind=event.subject_kind,
            subject=event.subject,
            value=event.value,
            message=event.message,
            opened_at=event.opened_at,
            resolved_at=event.resolved_at,
            acknowledged_at=event.acknowledged_at,
            acknowledged_by=event.acknowledged_by,
        )


WebhookUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=2000, allowed_schemes=["http", "https"])]
WEBHOOK_URL_PATTERN = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]"
"""What `WebhookUrl` takes, as far as a schema can say: an http(s) URL with a host."""


class WebhookIn(BaseModel):
    """A receiver: https, on a public address, without credentials in the URL.

    The host must not be or resolve to a private, loopback, link-local, shared (CGNAT),
    multicast or reserved address; it is resolved again at every delivery. An
    installation in a closed network can allow plain http and name private targets.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://leitstelle.example.org/lorakom", "description": "Bauhof Leitstelle"}
            ]
        },
    )

    url: WebhookUrl = Field(json_schema_extra={"pattern": WEBHOOK_URL_PATTERN})
    description: Name | None = None


WEBHOOK_EXAMPLE: dict[str, JsonValue] = {
    "id": 2,
    "url": "https://leitstelle.example.org/lorakom",
    "description": "Bauhof Leitstelle",
    "enabled": True,
    "created_at": "2026-11-26T09:00:00Z",
}


class WebhookOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [WEBHOOK_EXAMPLE]})

    id: int
    url: str
    description: str | None
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, subscription: WebhookSubscription) -> WebhookOut:
        return cls(
            id=subscription.id,
            url=subscription.url,
            description=subscription.description,
            enabled=subscription.enabled,
            created_at=subscription.created_at,
        )


class CreatedWebhook(WebhookOut):
    model_config = ConfigDict(json_schema_extra={"examples": [{**WEBHOOK_EXAMPLE, "secret": "whsec_Qm9…"}]})

    secret: str = Field(
        description="Shown this once. Verify each delivery: `X-Lorakom-Signature` is `sha256=` and the hex "
        "HMAC-SHA256 of `<X-Lorakom-Timestamp>.<raw body>` keyed with this secret"
    )


class AttemptOut(BaseModel):
    attempted_at: datetime
    outcome: Outcome = Field(
        description="Only the class of what happened: `2xx`, `3xx` (redirects are not followed), `4xx`, "
        "`5xx`, `timeout`, `refused-by-policy` (the URL or an address it resolved to is not allowed) or "
        "`network-error`"
    )
    duration_ms: float

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> AttemptOut:
        return cls(
            attempted_at=attempt.attempted_at,
            outcome=Outcome(attempt.outcome),
            duration_ms=round(attempt.duration_ms, 1),
        )


class DeliveryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 77,
                    "event_id": 41,
                    "transition": "opened",
                    "status": "delivered",
                    "attempts": 2,
                    "next_attempt_at": "2026-11-26T07:11:00Z",
                    "delivered_at": "2026-11-26T07:11:02Z",
                    "log": [
                        {
                            "attempted_at": "2026-11-26T07:10:30Z",
                            "outcome": "5xx",
                            "duration_ms": 41.2,
                        },
                        {
                            "attempted_at": "2026-11-26T07:11:00Z",
                            "outcome": "2xx",
                            "duration_ms": 38.0,
                        },
                    ],
                }
            ]
        }
    )

    id: int
    event_id: int
    transition: str = Field(description="`opened` or `resolved`")
    status: str = Field(description="`pending`, `delivered` or `failed` (retries exhausted)")
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    log: list[AttemptOut]

    @classmethod
    def of(cls, found: DeliveryLog) -> DeliveryOut:
        delivery = found.delivery
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            transition=delivery.transition,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
            log=[AttemptOut.of(attempt) for attempt in found.attempts],
        )
