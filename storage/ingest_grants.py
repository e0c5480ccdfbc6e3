"""Ingest grants: which municipality lets which other municipality's sources deliver for its devices.

Each network-server source belongs to one municipality and writes only for that
municipality's devices. Where one town's devices are heard through another town's
network server (a neighbour's gateways, a shared regional server), the owner of the
devices grants the source town: from then on the source town's sources deliver for
the owner's devices, and frames they stored before as their own unclaimed ones can be
claimed by the owner's devices (`services.redecoding`).

The owner grants and revokes, because it is the owner's readings, alerts and device
state that such uplinks move. The source town sees the grants it received, so that it
can tell where its sources' frames of those devices go.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from domain.errors import Conflict, InvalidIdentifier, NotFound
from storage.models import Municipality
from storage.models_sharing import IngestGrant, PendingIngestGrant


@dataclass(frozen=True)
class IngestGrantView:
    """A grant with the slugs it refers to."""

    grant: IngestGrant | PendingIngestGrant
    owner_slug: str
    source_slug: str


def create_ingest_grant(
    session: Session, *, owner: Municipality, source: Municipality, created_by: str
) -> IngestGrantView:
    """Let the sources of `source` deliver for the devices of `owner`; a second equal grant conflicts."""
    if source.id == owner.id:
        raise InvalidIdentifier("a municipality's own sources deliver for it without a grant")
    grant = IngestGrant(
        owner_municipality_id=owner.id, source_municipality_id=source.id, created_by=created_by
    )
    try:
        with session.begin_nested():
            session.add(grant)
    except IntegrityError as exc:
        raise Conflict(f"{source.slug}'s sources deliver for {owner.slug} already") from exc
    return IngestGrantView(grant, owner.slug, source.slug)


def create_ingest_grant_to_slug(
    session: Session, *, owner: Municipality, source_slug: str, created_by: str
) -> IngestGrantView:
    """Let the sources of the municipality of `source_slug` deliver for `owner`, existing or not.

    The answer is the same either way, so an admin cannot probe which slugs exist: a
    grant to an unknown slug is kept pending and lets nobody deliver until a
    municipality of that slug is created (`PendingIngestGrant`).
    """
    source = session.scalar(select(Municipality).where(Municipality.slug == source_slug))
    if source is not None:
        return create_ingest_grant(session, owner=owner, source=source, created_by=created_by)
    pending = PendingIngestGrant(
        owner_municipality_id=owner.id, source_slug=source_slug, created_by=created_by
    )
    try:
        with session.begin_nested():
            session.add(pending)
    except IntegrityError as exc:
        raise Conflict(f"{source_slug}'s sources deliver for {owner.slug} already") from exc
    return IngestGrantView(pending, owner.slug, source_slug)


def list_ingest_grants(
    session: Session, municipality_id: int, *, after_id: int | None, limit: int
) -> list[IngestGrantView]:
    """Grants the municipality gave and those it received, by id; at most `limit + 1`."""
    owner = aliased(Municipality)
    source = aliased(Municipality)
    query = (
        select(IngestGrant, owner.slug, source.slug)
        .join(owner, owner.id == IngestGrant.owner_municipality_id)
        .join(source, source.id == IngestGrant.source_municipality_id)
        .where(
            or_(
                IngestGrant.owner_municipality_id == municipality_id,
                IngestGrant.source_municipality_id == municipality_id,
            )
        )
        .order_by(IngestGrant.id)
        .limit(limit + 1)
    )
    if after_id is not None:
        query = query.where(IngestGrant.id > after_id)
    views = [
        IngestGrantView(grant, owner_slug, source_slug)
        for grant, owner_slug, source_slug in session.execute(query)
    ]
    pending_query = (
        select(PendingIngestGrant, owner.slug)
        .join(owner, owner.id == PendingIngestGrant.owner_municipality_id)
        .where(PendingIngestGrant.owner_municipality_id == municipality_id)
        .order_by(PendingIngestGrant.id)
        .limit(limit + 1)
    )
    if after_id is not None:
        pending_query = pending_query.where(PendingIngestGrant.id > after_id)
    views += [
        IngestGrantView(pending, owner_slug, pending.source_slug)
        for pending, owner_slug in session.execute(pending_query)
    ]
    # One id space (a shared sequence), so the two lists merge into one order for paging.
    return sorted(views, key=lambda view: view.grant.id)[: limit + 1]


def revoke_ingest_grant(session: Session, *, owner_id: int, grant_id: int) -> None:
    """Withdraw a grant the municipality gave; one it received is not its to revoke.

    Frames delivered while the grant held stay with the owner's devices; from the
    bridge's next device refresh on, the source town's frames are its own unclaimed ones again.
    """
    grant = session.scalar(
        select(IngestGrant).where(IngestGrant.id == grant_id, IngestGrant.owner_municipality_id == owner_id)
    )
    if grant is None:
        pending = session.scalar(
            select(PendingIngestGrant).where(
                PendingIngestGrant.id == grant_id, PendingIngestGrant.owner_municipality_id == owner_id
            )
        )
        if pending is None:
            raise NotFound(f"no ingest grant {grant_id}")
        session.delete(pending)
    else:
        session.delete(grant)
    session.flush()


def claimable_municipalities(session: Session, owner_id: int) -> list[int]:
    """The municipalities whose sources' frames a device of `owner_id` may claim: its own, and the granted."""
    granted = select(IngestGrant.source_municipality_id).where(IngestGrant.owner_municipality_id == owner_id)
    return [owner_id, *session.scalars(granted)]
