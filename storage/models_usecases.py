"""Tables the use cases and alerts add: parking capacity, soil thresholds, alert rules and
events, outgoing webhooks and their delivery log.

They share `Base` (and so the naming convention) with `storage.models`; a module of
their own keeps the ingest schema readable and says these rows are written by
people and by the alert evaluator, never by the ingest hot path.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class ParkingZone(Base):
    """A zone's capacity, where it differs from the number of spots with a sensor.

    Zones exist by being named in devices' `parking_zone` metadata; a row here only
    adds how many cars fit (some spots have no sensor).
    """

    __tablename__ = "parking_zone"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    capacity: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (UniqueConstraint("municipality_id", "name"),)


class SoilThreshold(Base):
    """Where a soil type's moisture turns yellow and red, in % volumetric water content.

    Sand holds little water and is still fine at 12 %, clay is already dry at 25 %;
    one threshold for every tree would be wrong for most of them.
    """

    __tablename__ = "soil_threshold"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id", ondelete="CASCADE"))
    soil_type: Mapped[str] = mapped_column(String(100))
    yellow_below_percent: Mapped[float] = mapped_column(Float)
    red_below_percent: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (UniqueConstraint("municipality_id", "soil_type"),)


class AlertRule(Base):
    """What to watch in one municipality; `kind` says which of the parameters apply."""

    __tablename__ = "alert_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipality.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    quantity: Mapped[str | None] = mapped_column(String(40))
    threshold: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    tag: Mapped[str | None] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AlertEvent(Base):
    """One rule firing for one device or gateway, from opening until it resolves.

    At most one open event per rule and subject (a partial unique index), so a
    repeated evaluation never opens a second one.
    """

    __tablename__ = "alert_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rule.id", ondelete="CASCADE"))
    municipality_id: Mapped[int] = mapped_column(Integer)
    subject_kind: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(128))
    value: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index(
            "uq_alert_event_open",
            "rule_id",
            "subject",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_alert_event_municipality_id_id", "municipality_id", "id"),
    )


class WebhookSubscription(Base):
    """A URL that receives the municipality's alert events, signed with its own secret.

    The secret cannot be hashed (signing each delivery needs it), so it is stored
    encrypted with a key from outside the database (`storage.secret_box`): a reader
    of this table, or of a backup, cannot forge alerts.
    """

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipality.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WebhookDelivery(Base):
    """One notification (an event opened or resolved) owed to one subscription, until delivered."""

    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscription.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("alert_event.id", ondelete="CASCADE"))
    transition: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    next_attempt_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", "transition"),
        Index(
            "ix_webhook_delivery_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class WebhookAttempt(Base):
    """The delivery log: every POST tried, with only the class of what came back.

    `outcome` is a `services.webhook_targets.Outcome` (`2xx` … `5xx`, `timeout`,
    `refused-by-policy`, `network-error`); no status text or error message is kept,
    so the log cannot describe what answers at a URL.
    """

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_delivery.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    duration_ms: Mapped[float] = mapped_column(Float)
