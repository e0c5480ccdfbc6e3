"""Ingest grants of a municipality: its admin lets another municipality's network-server sources
deliver uplinks for its devices, and sees the grants it gave and received.

Without a grant a source writes only for its own municipality's devices; what it hears of
other DevEUIs stays its own town's unclaimed frames (see `ingest.pipeline`). The owner of
the devices grants, since it is the owner's data such uplinks then write; the bridge
picks a change up at its next device refresh.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from api.deps import CurrentKey, SessionDep, ShareAdminDep
from api.pagination import CursorQuery, LimitQuery, Page, int_cursor, page_of
from api.problems import problem_responses
from api.schemas.ingest_grants import IngestGrantIn, IngestGrantOut
from domain.errors import InvalidIdentifier
from storage.ingest_grants import create_ingest_grant_to_slug, list_ingest_grants, revoke_ingest_grant

router = APIRouter(prefix="/municipalities/{slug}/ingest-grants", tags=["sharing"])

GrantIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get(
    "",
    summary="Ingest grants the municipality gave, and those it received (admin)",
    response_model=Page[IngestGrantOut],
    responses=problem_responses(403, 404),
)
def list_all(
    municipality: ShareAdminDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[IngestGrantOut]:
    rows = list_ingest_grants(session, municipality.id, after_id=int_cursor(cursor), limit=limit)
    return page_of(
        rows,
        limit,
        item=lambda view: IngestGrantOut.of(view, municipality.slug),
        position=lambda view: view.grant.id,
    )


@router.post(
    "",
    summary="Let another municipality's sources deliver uplinks for this municipality's devices (admin); "
    "a grant to a slug no municipality has yet is kept and takes effect once it exists",
    status_code=status.HTTP_201_CREATED,
    response_model=IngestGrantOut,
    responses=problem_responses(403, 404, 409, 422),
)
def grant(
    body: IngestGrantIn, municipality: ShareAdminDep, key: CurrentKey, session: SessionDep
) -> IngestGrantOut:
    if body.source == municipality.slug:
        raise InvalidIdentifier("a municipality's own sources deliver for it without a grant")
    # Taken whether or not that municipality exists (pending until it does): a refusal
    # would tell any admin which slugs exist.
    view = create_ingest_grant_to_slug(
        session, owner=municipality, source_slug=body.source, created_by=key.prefix
    )
    session.commit()
    return IngestGrantOut.of(view, municipality.slug)


@router.delete(
    "/{ingest_grant_id}",
    summary="Withdraw an ingest grant the municipality gave (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
def revoke(ingest_grant_id: GrantIdPath, municipality: ShareAdminDep, session: SessionDep) -> None:
    revoke_ingest_grant(session, owner_id=municipality.id, grant_id=ingest_grant_id)
    session.commit()
