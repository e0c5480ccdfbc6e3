"""Probes and metrics for the orchestrator and Prometheus: no API key needed, no tenant data shown;
metrics only with their own token."""

from __future__ import annotations

import hmac
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import Pool, QueuePool

from api.deps import EngineDep, SettingsDep
from api.problems import problem_responses
from domain.errors import NotFound, StorageUnavailable, Unauthenticated

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
    """Ready means a request could get a connection now: with every pooled connection in use
    the answer is 503 at once, where waiting for one took the pool's timeout and ended in 500."""
    if pool_exhausted(engine.pool):
        raise StorageUnavailable("the database is busy: every pooled connection is in use")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except PoolTimeout as exc:  # the last connection was taken between the check and here
        raise StorageUnavailable("the database is busy: every pooled connection is in use") from exc
    except OperationalError as exc:
        raise StorageUnavailable("the database cannot be reached right now") from exc
    return Health(status="ok")


def pool_exhausted(pool: Pool) -> bool:
    """No idle connection and no overflow left, so that a checkout would wait for one."""
    if not isinstance(pool, QueuePool):
        return False
    # SQLAlchemy counts the overflow in public but keeps its bound private.
    max_overflow = getattr(pool, "_max_overflow", -1)
    return (
        isinstance(max_overflow, int)
        and max_overflow > -1
        and pool.checkedin() == 0
        and (pool.overflow() >= max_overflow)
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics in the text exposition format (with the metrics token; off without one)",
    response_class=Response,
    responses={
        HTTPStatus.OK.value: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        **problem_responses(404),
    },
)
def metrics(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Behind its own token, not an API key: the series name every municipality's network
    sources, and Prometheus scrapes with one static bearer token."""
    token = settings.metrics_token
    if token is None:
        raise NotFound("metrics are off; set LORAKOM_API_METRICS_TOKEN to serve them")
    scheme, _, presented = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
        raise Unauthenticated("send the metrics token as `Authorization: Bearer …`")
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
