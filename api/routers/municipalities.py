"""Municipalities: the region admin creates them; every key sees its own."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.access import is_region_admin
from api.deps import CurrentKey, MunicipalityDep, RegionAdminKey, SessionDep
from api.pagination import CursorQuery, LimitQuery, Page, page_of, text_cursor
from api.problems import problem_responses
from api.schemas.municipalities import MunicipalityIn, MunicipalityOut
from storage.municipalities import create_municipality, list_municipalities

router = APIRouter(prefix="/municipalities", tags=["municipalities"])


@router.get(
    "",
    summary="Municipalities the key can see: all for a region admin, else its own",
    response_model=Page[MunicipalityOut],
    responses=problem_responses(),
)
def list_all(
    session: SessionDep, key: CurrentKey, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[MunicipalityOut]:
    rows = list_municipalities(
        session,
        after_slug=text_cursor(cursor),
        limit=limit,
        only_id=None if is_region_admin(key) else key.municipality_id,
    )
    return page_of(rows, limit, item=MunicipalityOut.of, position=lambda row: row.slug)


@router.get(
    "/{slug}",
    summary="One municipality",
    response_model=MunicipalityOut,
    responses=problem_responses(404),
)
def get_one(municipality: MunicipalityDep) -> MunicipalityOut:
    return MunicipalityOut.of(municipality)


@router.post(
    "",
    summary="Create a municipality (region admin)",
    status_code=status.HTTP_201_CREATED,
    response_model=MunicipalityOut,
    responses=problem_responses(403, 409),
)
def create(body: MunicipalityIn, session: SessionDep, key: RegionAdminKey) -> MunicipalityOut:
    municipality = create_municipality(session, slug=body.slug, name=body.name, district=body.district)
    session.commit()
    return MunicipalityOut.of(municipality)
