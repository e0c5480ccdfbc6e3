"""Probes and metrics for the orchestrator and Prometheus; no key needed, no tenant data shown."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from api.deps import EngineDep
from api.problems import problem_responses
from domain.errors import StorageUnavailable

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/healthz", summary="The process is alive", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="The database answers; otherwise 503",
    response_model=Health,
    responses={503: problem_responses(503)[503]},
)
def readyz(engine: EngineDep) -> Health:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise StorageUnavailable("the database cannot be reached right now") from exc
    return Health(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics in the text exposition format",
    response_class=Response,
    responses={HTTPStatus.OK.value: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
