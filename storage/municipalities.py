"""Municipalities: the tenants every other row belongs to.

A slug is what people type and what appears in URLs (`/v1/municipalities/wendlingen/...`),
so it is validated once here for the API and the CLI alike.
"""

from __future__ import annotations

import re

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.errors import Conflict, InvalidIdentifier, NotFound
from storage.models import Municipality

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
_SLUG = re.compile(SLUG_PATTERN)


def parse_slug(text: str) -> str:
    """A municipality slug: lower-case letters, digits and inner hyphens, at most 63 characters."""
    if not _SLUG.fullmatch(text):
        raise InvalidIdentifier(
            f"a municipality slug is lower-case letters, digits and hyphens, got {text!r}"
        )
    return text


_BY_SLUG = select(Municipality).where(Municipality.slug == bindparam("slug"))


def get_municipality(session: Session, slug: str) -> Municipality:
    return known_municipality(session.scalar(_BY_SLUG, {"slug": slug}), slug)


def known_municipality(found: Municipality | None, slug: str) -> Municipality:
    """`found`, or the not-found error every lookup of a slug gives."""
    if found is None:
        raise NotFound(f"no municipality {slug!r}")
    return found


def list_municipalities(
    session: Session, *, after_slug: str | None, limit: int, only_id: int | None = None
) -> list[Municipality]:
    """Municipalities ordered by slug, at most `limit + 1` so the caller can tell a next page exists.

    `only_id` narrows the list to the caller's own municipality for keys bound to one.
    """
    query = select(Municipality).order_by(Municipality.slug).limit(limit + 1)
    if after_slug is not None:
        query = query.where(Municipality.slug > after_slug)
    if only_id is not None:
        query = query.where(Municipality.id == only_id)
    return list(session.scalars(query))


def create_municipality(session: Session, *, slug: str, name: str, district: str | None) -> Municipality:
    municipality = Municipality(slug=parse_slug(slug), name=name, district=district)
    try:
        with session.begin_nested():
            session.add(municipality)
    except IntegrityError as exc:
        raise Conflict(f"municipality {slug!r} exists already") from exc
    return municipality
