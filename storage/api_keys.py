"""API keys: shown once, kept as a hash, found by their prefix.

A key reads `lk_<prefix>_<secret>`. The prefix (12 hex digits) is stored in clear so
that a key can be named in lists, logs and revocations without the secret; the
secret is 32 random bytes and only its SHA-256 is stored.

Why SHA-256 and not a slow password hash: slow hashes protect guessable secrets
(passwords) against offline guessing. A 256-bit random secret cannot be guessed,
slow or fast, so a fast hash costs an attacker with the table nothing useful and
spares every API request a deliberate 50 ms of CPU.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from domain.errors import InvalidIdentifier, NotFound, Unauthenticated
from storage.models import ApiKey, Municipality
from storage.municipalities import get_municipality, known_municipality

KEY_MARK = "lk"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class Role(StrEnum):
    """What a key may do; every role except `region-admin` is bound to one municipality."""

    REGION_ADMIN = "region-admin"
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    TECHNICIAN = "technician"


class InvalidApiKey(Unauthenticated):
    """No key, a malformed key, an unknown or revoked one: the caller is not known at all."""


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError as exc:
        names = ", ".join(role.value for role in Role)
        raise InvalidIdentifier(f"unknown role {text!r}; one of {names}") from exc


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    session: Session, *, municipality_slug: str | None, role: str, name: str
) -> tuple[str, ApiKey]:
    """Make a key and return its full text (the only time it exists) with the stored row.

    A `region-admin` key belongs to no municipality; every other role needs one.
    The caller commits.
    """
    parsed_role = parse_role(role)
    if (parsed_role is Role.REGION_ADMIN) != (municipality_slug is None):
        raise InvalidIdentifier("a region-admin key has no municipality; every other role needs one")
    municipality_id = None
    if municipality_slug is not None:
        municipality_id = get_municipality(session, municipality_slug).id
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        prefix=prefix,
        secret_hash=hash_secret(secret),
        name=name,
        role=parsed_role.value,
        municipality_id=municipality_id,
    )
    session.add(key)
    session.flush()
    return f"{KEY_MARK}_{prefix}_{secret}", key


def split_key(text: str) -> tuple[str, str]:
    """The prefix and secret of a presented key; the prefix is hex, so the first `_` after it ends it."""
    mark, _, rest = text.strip().partition("_")
    prefix, _, secret = rest.partition("_")
    if mark != KEY_MARK or not prefix or not secret:
        raise InvalidApiKey("an API key reads lk_<prefix>_<secret>")
    return prefix, secret


_BY_PREFIX = select(ApiKey).where(ApiKey.prefix == bindparam("prefix"))
_WITH_MUNICIPALITY = (
    select(ApiKey, Municipality)
    .outerjoin(Municipality, Municipality.slug == bindparam("slug"))
    .where(ApiKey.prefix == bindparam("prefix"))
)


def authenticate(session: Session, presented: str, *, now: datetime | None = None) -> ApiKey:
    """The live key matching `presented`, with `last_used_at` refreshed at most once a minute."""
    prefix, secret = split_key(presented)
    return _live(session, session.scalar(_BY_PREFIX, {"prefix": prefix}), secret, now)


def authenticate_in(
    session: Session, presented: str, slug: str, *, now: datetime | None = None
) -> tuple[ApiKey, Municipality]:
    """`authenticate`, and the municipality of `slug` read in the same statement.

    Nearly every request names a municipality; reading both at once spares each a
    round trip. The key is judged first: an unknown key learns nothing of which
    municipalities exist.
    """
    prefix, secret = split_key(presented)
    key, municipality = session.execute(_WITH_MUNICIPALITY, {"prefix": prefix, "slug": slug}).first() or (
        None,
        None,
    )
    return _live(session, key, secret, now), known_municipality(municipality, slug)


def _live(session: Session, key: ApiKey | None, secret: str, now: datetime | None) -> ApiKey:
    """The key if `secret` is its own and it is not revoked; `last_used_at` refreshed.

    Refreshing on every request would turn every read into a write; a minute is as
    precise as anyone auditing unused keys needs. The refresh commits on its own so
    that read-only requests keep it too.
    """
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
        raise InvalidApiKey("unknown API key")
    if key.revoked_at is not None:
        raise InvalidApiKey("this API key has been revoked")
    moment = now or datetime.now(UTC)
    if key.last_used_at is None or moment - key.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=moment))
        session.commit()
    return key


def list_api_keys(
    session: Session, *, municipality_id: int, after_id: int | None, limit: int
) -> list[ApiKey]:
    """A municipality's keys (revoked ones too, for the record), at most `limit + 1`."""
    query = (
        select(ApiKey).where(ApiKey.municipality_id == municipality_id).order_by(ApiKey.id).limit(limit + 1)
    )
    if after_id is not None:
        query = query.where(ApiKey.id > after_id)
    return list(session.scalars(query))


def revoke_api_key(session: Session, *, municipality_id: int, key_id: int) -> ApiKey:
    """Mark a key revoked (idempotent); a key of another municipality is not found."""
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.municipality_id == municipality_id))
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
    session.flush()
    return key
