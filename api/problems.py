"""RFC 9457 problem details: every error the API returns has this one shape.

The platform's error tree (`domain.errors`) is mapped to HTTP in one place,
`STATUS_BY_ERROR`, walked along the raised error's class hierarchy, so a new
subclass is answered by its nearest mapped ancestor instead of slipping through.
Request validation and Starlette's own errors (unknown route, wrong method) are
answered in the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from domain.errors import (
    ConfigurationError,
    Conflict,
    DecodeError,
    InvalidIdentifier,
    MessageRejected,
    NotFound,
    PermissionDenied,
    PlatformError,
    RateLimited,
    StorageUnavailable,
    Unauthenticated,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5

STATUS_BY_ERROR: dict[type[PlatformError], HTTPStatus] = {
    Unauthenticated: HTTPStatus.UNAUTHORIZED,
    PermissionDenied: HTTPStatus.FORBIDDEN,
    NotFound: HTTPStatus.NOT_FOUND,
    Conflict: HTTPStatus.CONFLICT,
    InvalidIdentifier: HTTPStatus.UNPROCESSABLE_ENTITY,
    DecodeError: HTTPStatus.UNPROCESSABLE_ENTITY,
    MessageRejected: HTTPStatus.BAD_REQUEST,
    StorageUnavailable: HTTPStatus.SERVICE_UNAVAILABLE,
    RateLimited: HTTPStatus.TOO_MANY_REQUESTS,
    ConfigurationError: HTTPStatus.INTERNAL_SERVER_ERROR,
    PlatformError: HTTPStatus.INTERNAL_SERVER_ERROR,
}


class FieldProblem(BaseModel):
    """One invalid part of a request: where it is and what is wrong with it."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:lorakom:problem:not-found",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "no device 70b3d57ed0001234",
                    "instance": "/v1/municipalities/wendlingen/devices/70b3d57ed0001234",
                }
            ]
        }
    )

    type: str = Field(description="A URI naming the kind of problem")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path that caused it")
    errors: list[FieldProblem] | None = Field(default=None, description="Invalid request parts, if any")


def problem_type(status: HTTPStatus) -> str:
    return "urn:lorakom:problem:" + status.phrase.lower().replace(" ", "-")


def problem_response(
    request: Request,
    status: HTTPStatus,
    detail: str | None,
    *,
    errors: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    problem = Problem(
        type=problem_type(status),
        title=status.phrase,
        status=status.value,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=status.value,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def status_of(error: PlatformError) -> HTTPStatus:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return HTTPStatus.INTERNAL_SERVER_ERROR


async def handle_platform_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PlatformError)
    status = status_of(exc)
    headers = None
    if status is HTTPStatus.UNAUTHORIZED:
        headers = {"WWW-Authenticate": 'Bearer realm="lorakom"'}
    elif status is HTTPStatus.SERVICE_UNAVAILABLE:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    elif isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after_s)}
    detail = str(exc) if status < HTTPStatus.INTERNAL_SERVER_ERROR or status.value == 503 else None
    return problem_response(request, status, detail, headers=headers)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldProblem(
            loc=list(error.get("loc", ())), msg=str(error.get("msg", "")), type=str(error.get("type", ""))
        )
        for error in jsonable_encoder(exc.errors())
    ]
    return problem_response(
        request, HTTPStatus.UNPROCESSABLE_ENTITY, "the request is not valid", errors=errors
    )


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = HTTPStatus(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(request, status, detail, headers=exc.headers)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PlatformError, handle_platform_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(HTTPException, handle_http_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the problems a route can answer with.

    Every authenticated route can also answer 401 and 422, every route 503, so
    those are always listed.
    """
    documented = sorted({*statuses, 401, 422, 503})
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "example": {
                        "type": problem_type(HTTPStatus(status)),
                        "title": HTTPStatus(status).phrase,
                        "status": status,
                    },
                }
            },
        }
        for status in documented
    }
