"""Probes and metrics for the orchestrator and Prometheus; no key needed, no tenant data shown."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import Pool, QueuePool

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
    summary="Prometheus metrics in the text exposition format",
    response_class=Response,
    responses={HTTPStatus.OK.value: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
