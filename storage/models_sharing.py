"""The tables of grants between municipalities: sharing grants (a municipality opening one
use case's data, read-only, to another municipality or to the whole region) and ingest
grants (a municipality letting another one's network-server sources deliver for its devices).

A module of its own, sharing `Base` with `storage.models` like `storage.models_usecases`:
grants are written by municipal admins through the API and read on every request
that crosses municipalities, never by the ingest hot path.

A grant names a use case, not devices: what belongs to a use case is decided by the
use-case queries themselves (fill levels for waste, parking metadata for parking, ...),
so a device added later is shared without anyone touching the grant.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class SharingGrant(Base):
    """`owner` lets `grantee` (NULL: every municipality, and the region views) read `use_case`."""

    __tablename__ = "sharing_grant"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipality.id", ondelete="CASCADE"), index=True
    )
    use_case: Mapped[str] = mapped_column(String(40))
    grantee_municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipality.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The prefix of the key that granted, so that a municipality can tell who opened its data;
    # the key row itself may be revoked or gone by the time someone asks.
    created_by: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        UniqueConstraint("owner_municipality_id", "use_case", "grantee_municipality_id"),
        # The unique constraint treats NULLs as distinct, so one region-wide grant per use
        # case needs an index of its own (NULLS NOT DISTINCT would need PostgreSQL 15).
        Index(
            "uq_sharing_grant_region",
            "owner_municipality_id",
            "use_case",
            unique=True,
            postgresql_where=text("grantee_municipality_id IS NULL"),
        ),
    )


class PendingSharingGrant(Base):
    """A grant to a slug that no municipality has (yet); it opens nothing until one is created.

    Refusing such a grant would answer "does town X exist?" to any admin, so the grant is
    taken like any other and listed to its owner alone. Its id comes from
    `sharing_grant`'s sequence, so one id space covers both tables and the id a caller
    saw stays valid; a trigger on `municipality` (migration 0010) turns it into a real
    grant when a municipality of that slug is created, by whatever path.
    """

    __tablename__ = "pending_sharing_grant"

    id: Mapped[int] = mapped_column(
        Integer, primary_key=True, server_default=text("nextval('sharing_grant_id_seq')")
    )
    owner_municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipality.id", ondelete="CASCADE"), index=True
    )
    use_case: Mapped[str] = mapped_column(String(40))
    grantee_slug: Mapped[str] = mapped_column(String(63), index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(16))

    __table_args__ = (UniqueConstraint("owner_municipality_id", "use_case", "grantee_slug"),)


class IngestGrant(Base):
    """`owner` lets the network-server sources of `source` municipality deliver uplinks for its devices.

    The owner grants, because it is the owner's readings, device state, alerts and
    gateway views that such uplinks then move; without a grant a source writes only for
    devices of its own municipality, and keeps anything else as its own unclaimed frames.
    Read by the ingest bridge with its device list (`storage.device_registry`).
    """

    __tablename__ = "ingest_grant"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id", ondelete="CASCADE"))
    source_municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipality.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(16))

    __table_args__ = (UniqueConstraint("owner_municipality_id", "source_municipality_id"),)


class PendingIngestGrant(Base):
    """An ingest grant to a slug that no municipality has (yet): it lets nobody deliver.

    Kept for the same reason as `PendingSharingGrant`, with ids from `ingest_grant`'s
    sequence; the trigger of migration 0012 makes it a real grant once a municipality
    of that slug is created.
    """

    __tablename__ = "pending_ingest_grant"

    id: Mapped[int] = mapped_column(
        Integer, primary_key=True, server_default=text("nextval('ingest_grant_id_seq')")
    )
    owner_municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id", ondelete="CASCADE"))
    source_slug: Mapped[str] = mapped_column(String(63), index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(16))

    __table_args__ = (UniqueConstraint("owner_municipality_id", "source_slug"),)
