"""Sharing grants of a municipality: its admin opens a use case's data, read-only, to another
municipality or to the whole region, and sees what it gave and what it received.

Granting names other municipalities by slug, so it is an admin's business (or a region
admin's); what a grant allows is decided in `api.access.require_in_or_shared`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from api.deps import CurrentKey, SessionDep, ShareAdminDep
from api.pagination import CursorQuery, LimitQuery, Page, int_cursor, page_of
from api.problems import problem_responses
from api.schemas.sharing import GrantIn, GrantOut
from storage.sharing import create_grant, create_grant_to_slug, list_grants, revoke_grant

router = APIRouter(prefix="/municipalities/{slug}/sharing", tags=["sharing"])

GrantIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get(
    "",
    summary="Grants the municipality gave, and those it received or the region received (admin)",
    response_model=Page[GrantOut],
    responses=problem_responses(403, 404),
)
def list_all(
    municipality: ShareAdminDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[GrantOut]:
    rows = list_grants(session, municipality.id, after_id=int_cursor(cursor), limit=limit)
    return page_of(
        rows,
        limit,
        item=lambda view: GrantOut.of(view, municipality.slug),
        position=lambda view: view.grant.id,
    )


@router.post(
    "",
    summary="Let another municipality, or the whole region (`grantee` null), read a use case (admin); "
    "a grant to a slug no municipality has yet is kept and opens once it exists",
    status_code=status.HTTP_201_CREATED,
    response_model=GrantOut,
    responses=problem_responses(403, 404, 409, 422),
)
def grant(body: GrantIn, municipality: ShareAdminDep, key: CurrentKey, session: SessionDep) -> GrantOut:
    if body.grantee is None:
        view = create_grant(
            session, owner=municipality, use_case=body.use_case, grantee=None, created_by=key.prefix
        )
    else:
        # Taken whether or not that municipality exists (pending until it does): a refusal
        # would tell any admin which slugs exist.
        view = create_grant_to_slug(
            session,
            owner=municipality,
            use_case=body.use_case,
            grantee_slug=body.grantee,
            created_by=key.prefix,
        )
    session.commit()
    return GrantOut.of(view, municipality.slug)


@router.delete(
    "/{grant_id}",
    summary="Withdraw a grant the municipality gave; its data stops showing elsewhere at once (admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
def revoke(grant_id: GrantIdPath, municipality: ShareAdminDep, session: SessionDep) -> None:
    revoke_grant(session, owner_id=municipality.id, grant_id=grant_id)
    session.commit()
