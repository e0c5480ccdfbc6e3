"""Gateways: those a municipality runs and those that hear its devices.

Seeing is wider than editing: a gateway run by a neighbour that carries our devices
is listed (its link matters to us) but only its owner, or the region admin, may
change it. An unassigned gateway may be taken over by any municipality whose
devices it hears; handing a gateway to another municipality is the region admin's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.access import is_region_admin
from api.deps import CurrentKey, GatewayEditorDep, MunicipalityDep, SessionDep
from api.pagination import CursorQuery, LimitQuery, Page, page_of, text_cursor
from api.problems import problem_responses
from api.schemas.gateways import GatewayOut, GatewayPatch
from domain.errors import PermissionDenied
from domain.ids import parse_gateway_id
from storage.gateways import edit_gateway, get_gateway, list_gateways
from storage.municipalities import get_municipality
from storage.tenancy import act_as_platform

router = APIRouter(prefix="/municipalities/{slug}/gateways", tags=["gateways"])

GatewayIdPath = Annotated[
    str, Path(max_length=132, pattern=r"^[^\x00-\x1f\x7f]+$", examples=["eui-b827ebfffe6c1234"])
]


@router.get(
    "",
    summary="Gateways the municipality runs or that heard its devices in the last 30 days",
    response_model=Page[GatewayOut],
    responses=problem_responses(403, 404),
)
def list_all(
    municipality: MunicipalityDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[GatewayOut]:
    rows = list_gateways(session, municipality_id=municipality.id, after_id=text_cursor(cursor), limit=limit)
    return page_of(rows, limit, item=GatewayOut.of, position=lambda gateway: gateway.gateway_id)


@router.get(
    "/{gateway_id}",
    summary="One gateway",
    response_model=GatewayOut,
    responses=problem_responses(403, 404),
)
def get_one(gateway_id: GatewayIdPath, municipality: MunicipalityDep, session: SessionDep) -> GatewayOut:
    gateway = get_gateway(session, municipality_id=municipality.id, gateway_id=parse_gateway_id(gateway_id))
    return GatewayOut.of(gateway)


@router.patch(
    "/{gateway_id}",
    summary="Name, place or assign a gateway (technician)",
    response_model=GatewayOut,
    responses=problem_responses(403, 404),
)
def edit(
    body: GatewayPatch,
    gateway_id: GatewayIdPath,
    municipality: GatewayEditorDep,
    session: SessionDep,
    key: CurrentKey,
) -> GatewayOut:
    gateway = get_gateway(session, municipality_id=municipality.id, gateway_id=parse_gateway_id(gateway_id))
    region = is_region_admin(key)
    if region:  # assigns gateways across municipalities: the platform's operator, not one town
        act_as_platform(session)
    if not region and gateway.municipality_id not in (None, municipality.id):
        raise PermissionDenied("this gateway is run by another municipality")
    changes: dict[str, object] = body.model_dump(exclude_unset=True, exclude={"owner"})
    owner_slug = gateway.owner_slug
    if "owner" in body.model_fields_set:
        owner_slug = body.owner
        if owner_slug is None:
            changes["municipality_id"] = None
        elif owner_slug == municipality.slug:
            changes["municipality_id"] = municipality.id
        elif region:
            changes["municipality_id"] = get_municipality(session, owner_slug).id
        else:
            raise PermissionDenied("only the region admin hands a gateway to another municipality")
    edited = edit_gateway(session, gateway.gateway_id, changes, owner_slug=owner_slug)
    session.commit()
    return GatewayOut.of(edited)
