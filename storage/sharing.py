"""Sharing grants: which municipality lets whom read which use case's data.

Everything else in the platform is strictly per municipality; a grant is the only way
data crosses that line, and only for reading. A grant to the region (`grantee` NULL)
lets every municipality's keys read the use case and puts the owner into the region
views of that use case.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from domain.errors import Conflict, InvalidIdentifier, NotFound
from storage.models import Municipality
from storage.models_sharing import PendingSharingGrant, SharingGrant


class SharedUseCase(StrEnum):
    """The use cases with routes of their own, and so the ones that can be shared."""

    PARKING = "parking"
    WASTE = "waste"
    SOIL = "soil"
    ENVIRONMENT = "environment"


@dataclass(frozen=True)
class GrantView:
    """A grant with the slugs it refers to, as a municipality's list shows it."""

    grant: SharingGrant | PendingSharingGrant
    owner_slug: str
    grantee_slug: str | None


def create_grant(
    session: Session,
    *,
    owner: Municipality,
    use_case: SharedUseCase,
    grantee: Municipality | None,
    created_by: str,
) -> GrantView:
    """Share `use_case` of `owner` with `grantee` (None: the region); a second equal grant conflicts."""
    if grantee is not None and grantee.id == owner.id:
        raise InvalidIdentifier("a municipality cannot share with itself")
    grant = SharingGrant(
        owner_municipality_id=owner.id,
        use_case=use_case.value,
        grantee_municipality_id=grantee.id if grantee is not None else None,
        created_by=created_by,
    )
    try:
        with session.begin_nested():
            session.add(grant)
    except IntegrityError as exc:
        whom = grantee.slug if grantee is not None else "the region"
        raise Conflict(f"{owner.slug} shares {use_case.value} with {whom} already") from exc
    return GrantView(grant, owner.slug, grantee.slug if grantee is not None else None)


def create_grant_to_slug(
    session: Session,
    *,
    owner: Municipality,
    use_case: SharedUseCase,
    grantee_slug: str,
    created_by: str,
) -> GrantView:
    """Share `use_case` of `owner` with the municipality of `grantee_slug`, existing or not.

    The answer is the same either way, so an admin cannot probe which slugs exist: a
    grant to an unknown slug is kept pending and opens nothing until a municipality of
    that slug is created (see `PendingSharingGrant`).
    """
    grantee = session.scalar(select(Municipality).where(Municipality.slug == grantee_slug))
    if grantee is not None:
        return create_grant(session, owner=owner, use_case=use_case, grantee=grantee, created_by=created_by)
    if grantee_slug == owner.slug:
        raise InvalidIdentifier("a municipality cannot share with itself")
    pending = PendingSharingGrant(
        owner_municipality_id=owner.id,
        use_case=use_case.value,
        grantee_slug=grantee_slug,
        created_by=created_by,
    )
    try:
        with session.begin_nested():
            session.add(pending)
    except IntegrityError as exc:
        raise Conflict(f"{owner.slug} shares {use_case.value} with {grantee_slug} already") from exc
    return GrantView(pending, owner.slug, grantee_slug)


def list_grants(
    session: Session, municipality_id: int, *, after_id: int | None, limit: int
) -> list[GrantView]:
    """Grants the municipality gave and grants it received (its own or the region's), by id.

    At most `limit + 1`, so the caller can tell a next page exists.
    """
    owner = aliased(Municipality)
    grantee = aliased(Municipality)
    query = (
        select(SharingGrant, owner.slug, grantee.slug)
        .join(owner, owner.id == SharingGrant.owner_municipality_id)
        .outerjoin(grantee, grantee.id == SharingGrant.grantee_municipality_id)
        .where(
            or_(
                SharingGrant.owner_municipality_id == municipality_id,
                SharingGrant.grantee_municipality_id == municipality_id,
                SharingGrant.grantee_municipality_id.is_(None),
            )
        )
        .order_by(SharingGrant.id)
        .limit(limit + 1)
    )
    if after_id is not None:
        query = query.where(SharingGrant.id > after_id)
    views = [
        GrantView(grant, owner_slug, grantee_slug)
        for grant, owner_slug, grantee_slug in session.execute(query)
    ]
    pending_query = (
        select(PendingSharingGrant, owner.slug)
        .join(owner, owner.id == PendingSharingGrant.owner_municipality_id)
        .where(PendingSharingGrant.owner_municipality_id == municipality_id)
        .order_by(PendingSharingGrant.id)
        .limit(limit + 1)
    )
    if after_id is not None:
        pending_query = pending_query.where(PendingSharingGrant.id > after_id)
    views += [
        GrantView(pending, owner_slug, pending.grantee_slug)
        for pending, owner_slug in session.execute(pending_query)
    ]
    # One id space (a shared sequence), so the two lists merge into one order for paging.
    return sorted(views, key=lambda view: view.grant.id)[: limit + 1]


def revoke_grant(session: Session, *, owner_id: int, grant_id: int) -> None:
    """Withdraw a grant the municipality gave; a grant it merely received is not its to revoke."""
    grant = session.scalar(
        select(SharingGrant).where(
            SharingGrant.id == grant_id, SharingGrant.owner_municipality_id == owner_id
        )
    )
    if grant is not None:
        session.delete(grant)
        return
    pending = session.scalar(
        select(PendingSharingGrant).where(
            PendingSharingGrant.id == grant_id, PendingSharingGrant.owner_municipality_id == owner_id
        )
    )
    if pending is None:
        raise NotFound(f"no sharing grant {grant_id}")
    session.delete(pending)


def is_shared(session: Session, *, owner_id: int, use_case: str, reader_id: int) -> bool:
    """Whether municipality `reader_id` may read `use_case` of `owner_id`, directly or via the region."""
    query = select(SharingGrant.id).where(
        SharingGrant.owner_municipality_id == owner_id,
        SharingGrant.use_case == use_case,
        or_(
            SharingGrant.grantee_municipality_id == reader_id,
            SharingGrant.grantee_municipality_id.is_(None),
        ),
    )
    return session.scalar(query.limit(1)) is not None


def region_municipalities(session: Session, use_case: SharedUseCase, *, everyone: bool) -> list[Municipality]:
    """The municipalities a region view of `use_case` covers, by slug.

    Those that share the use case with the region; all of them when `everyone` (a region
    admin, who may read every municipality anyway).
    """
    query = select(Municipality).order_by(Municipality.slug)
    if not everyone:
        shares = (
            select(SharingGrant.id)
            .where(
                and_(
                    SharingGrant.owner_municipality_id == Municipality.id,
                    SharingGrant.use_case == use_case.value,
                    SharingGrant.grantee_municipality_id.is_(None),
                )
            )
            .exists()
        )
        query = query.where(shares)
    return list(session.scalars(query))
