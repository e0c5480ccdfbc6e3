"""RFC 9457 problem details: every error the API returns has this one shape.

The platform's error tree (`domain.errors`) is mapped to HTTP in one place,
`STATUS_BY_ERROR`, walked along the raised error's class hierarchy, so a new
subclass is answered by its nearest mapped ancestor instead of slipping through.
Request validation and Starlette's own errors (unknown route, wrong method) are
answered in the same shape, and so is every error nobody foresaw: a 500 names only
its correlation id (`request_id`, also the `X-Request-ID` header), which the log line
carrying the traceback names too, so that an operator finds the cause and the caller
learns nothing of the internals.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.errors import (
    ConfigurationError,
    Conflict,
    DecodeError,
    InvalidIdentifier,
    MessageRejected,
    NotConfigured,
    NotFound,
    PermissionDenied,
    PlatformError,
    RateLimited,
    StorageUnavailable,
    Unauthenticated,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
"""A caller's own id is echoed only if it is short and plain: it goes into logs and headers."""

log = logging.getLogger(__name__)

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
    NotConfigured: HTTPStatus.SERVICE_UNAVAILABLE,
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
                    "request_id": "5f0c2b9e1d7a4c39b1e2f3a4b5c6d7e8",
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
    request_id: str | None = Field(
        default=None, description="The correlation id of the request (its `X-Request-ID`), as logged"
    )


class RequestId:
    """ASGI middleware giving each request a correlation id and echoing it on every response.

    The caller's `X-Request-ID` is kept when it is plain (a proxy's or a client's own id
    lets a support request be traced end to end), otherwise one is made. It lives in the
    request's state, where the problem responses and the error log read it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = offered if offered and REQUEST_ID_PATTERN.fullmatch(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id_of(request: Request) -> str | None:
    found = getattr(request.state, "request_id", None)
    return found if isinstance(found, str) else None


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
        request_id=request_id_of(request),
    )
    response = JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=status.value,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )
    if problem.request_id is not None:
        # A 500 is sent by Starlette's outermost middleware, past `RequestId`'s own echo.
        response.headers[REQUEST_ID_HEADER] = problem.request_id
    return response


def status_of(error: PlatformError) -> HTTPStatus:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return HTTPStatus.INTERNAL_SERVER_ERROR


async def handle_platform_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PlatformError)
    status = status_of(exc)
    if status is HTTPStatus.INTERNAL_SERVER_ERROR:
        return await handle_unexpected_error(request, exc)
    headers = problem_headers(status)
    if isinstance(exc, RateLimited):
        headers = {**(headers or {}), "Retry-After": str(exc.retry_after_s)}
    return problem_response(request, status, str(exc), headers=headers)


def problem_headers(status: HTTPStatus) -> dict[str, str] | None:
    """What a client needs beside the problem: how to authenticate, when to come back."""
    if status is HTTPStatus.UNAUTHORIZED:
        return {"WWW-Authenticate": 'Bearer realm="lorakom"'}
    if status is HTTPStatus.SERVICE_UNAVAILABLE:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return None


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
    if status is HTTPStatus.BAD_REQUEST:
        return unreadable_body(request, detail)
    return problem_response(request, status, detail, headers=exc.headers)


def unreadable_body(request: Request, detail: str | None) -> JSONResponse:
    """A body the framework could not read at all (JSON that is not UTF-8, broken multipart),
    answered as 422 like a body that reads but does not validate.

    FastAPI already answers broken JSON syntax with 422 and raises a 400 only for the
    bodies it cannot decode; the API's own errors never raise a bare 400 (a network
    server's rejected message is a `MessageRejected`, answered by its own handler). One
    rule, 422 for every request body that is not acceptable, keeps the documented
    answers of every route with a body true without listing 400 on each of them.
    """
    errors = [FieldProblem(loc=["body"], msg=detail or "the body could not be read", type="body_unreadable")]
    return problem_response(
        request, HTTPStatus.UNPROCESSABLE_ENTITY, "the request is not valid", errors=errors
    )


async def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Any error nobody mapped: logged with its traceback and correlation id, answered without
    either internals or a stack trace, in the same problem shape as every other error."""
    log.error(
        "unhandled error in %s %s (request %s)",
        request.method,
        request.url.path,
        request_id_of(request),
        exc_info=exc,
    )
    return problem_response(
        request,
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "an unexpected error occurred; quote the request_id when reporting it",
    )


def install_problem_handlers(app: FastAPI) -> None:
    # `Exception` goes to Starlette's outermost middleware, which answers with this handler
    # and re-raises, so that the server's own log sees the error too.
    app.add_exception_handler(Exception, handle_unexpected_error)
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
