"""API keys of a municipality, managed by its admins; and `/me` for any key to see itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from api.deps import CurrentKey, KeyAdminDep, SessionDep
from api.pagination import CursorQuery, LimitQuery, Page, int_cursor, page_of
from api.problems import problem_responses
from api.schemas.api_keys import ApiKeyIn, ApiKeyOut, CreatedApiKey
from storage.api_keys import create_api_key, list_api_keys, revoke_api_key
from storage.models import Municipality

router = APIRouter(tags=["api keys"])

KeyIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get(
    "/me",
    summary="The key making this request",
    response_model=ApiKeyOut,
    responses=problem_responses(),
)
def me(key: CurrentKey, session: SessionDep) -> ApiKeyOut:
    slug = None
    if key.municipality_id is not None:
        municipality = session.get(Municipality, key.municipality_id)
        slug = municipality.slug if municipality is not None else None
    return ApiKeyOut.of(key, slug)


@router.get(
    "/municipalities/{slug}/api-keys",
    summary="The municipality's keys, revoked ones included (admin)",
    response_model=Page[ApiKeyOut],
    responses=problem_responses(403, 404),
)
def list_keys(
    municipality: KeyAdminDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[ApiKeyOut]:
    rows = list_api_keys(session, municipality_id=municipality.id, after_id=int_cursor(cursor), limit=limit)
    return page_of(
        rows, limit, item=lambda key: ApiKeyOut.of(key, municipality.slug), position=lambda key: key.id
    )


@router.post(
    "/municipalities/{slug}/api-keys",
    summary="Create a key; the response holds the whole key, shown this once (admin)",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedApiKey,
    responses=problem_responses(403, 404),
)
def create_key(body: ApiKeyIn, municipality: KeyAdminDep, session: SessionDep) -> CreatedApiKey:
    text, key = create_api_key(session, municipality_slug=municipality.slug, role=body.role, name=body.name)
    session.commit()
    return CreatedApiKey(**ApiKeyOut.of(key, municipality.slug).model_dump(), key=text)


@router.delete(
    "/municipalities/{slug}/api-keys/{key_id}",
    summary="Revoke a key; it stops working at once (admin)",
    response_model=ApiKeyOut,
    responses=problem_responses(403, 404),
)
def revoke_key(key_id: KeyIdPath, municipality: KeyAdminDep, session: SessionDep) -> ApiKeyOut:
    key = revoke_api_key(session, municipality_id=municipality.id, key_id=key_id)
    session.commit()
    return ApiKeyOut.of(key, municipality.slug)
