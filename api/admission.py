"""Admission: what a request with a body must show before one byte of that body is read.

FastAPI reads and parses a route's body before it resolves the route's dependencies,
so without this door a caller without any key could make the API hold a body of any
size in memory (and parse it) before hearing 401. `Admission` is a pure ASGI
middleware that hands the app a guarded `receive`. On its first call, when the
router has chosen the route and nothing of the body has been read yet, it:

1. looks up the route's body limit: a small default for JSON, more for the routes
   that take files, scripts or network-server messages (`BodyLimits`);
2. refuses a declared `Content-Length` above that limit with 413;
3. checks the API key first on routes that need one (`KeyCheck`), so a keyless or
   wrong-key request is refused without its body being consumed;

and on every call it counts the bytes that arrive, so a chunked body (no
`Content-Length`) or one longer than it said is cut off at the limit with 413 too.

The refusals are `HTTPException`s because they are raised while FastAPI reads the
body, where it turns any other error into a 400; the problem handler answers them as
problem documents like every other error. A route that never reads its body (or a
request without one) costs nothing here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_headers, problem_response, status_of
from domain.errors import PlatformError

KeyCheck = Callable[[Request], Awaitable[None]]
"""Checks the request's key (raising a `PlatformError` to refuse it) and keeps it on
`request.state` for the dependencies, which then do not check it again."""

CLOSE = {"Connection": "close"}
"""Sent with every refusal: the unread rest of the body must not be taken for the
connection's next request."""


class BodyTooLarge(HTTPException):
    """A body over its route's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is larger than {limit} bytes", CLOSE)


class Refused(HTTPException):
    """A request turned away before its body was read, as its `PlatformError` would be answered."""

    def __init__(self, error: PlatformError) -> None:
        status = status_of(error)
        super().__init__(status, str(error), (problem_headers(status) or {}) | CLOSE)


@dataclass(frozen=True)
class BodyLimits:
    """Largest body per route, in bytes, by the route's endpoint function (which stays the
    same however the route is included); every other route gets `default_bytes`."""

    default_bytes: int
    by_endpoint: Mapping[Callable[..., Any], int] = field(default_factory=dict)

    def of(self, route: object) -> int:
        if not isinstance(route, APIRoute):
            return self.default_bytes
        return self.by_endpoint.get(route.endpoint, self.default_bytes)


def needs_key(dependant: Dependant, scheme: object) -> bool:
    """Whether `scheme` (the API key's security scheme) is among a route's dependencies:
    the same fact that puts the key requirement into the OpenAPI document."""

    def calls(node: Dependant) -> Iterator[object]:
        yield node.call
        for child in node.dependencies:
            yield from calls(child)

    return any(call is scheme for call in calls(dependant))


def has_body(scope: Scope) -> bool:
    headers = Headers(scope=scope)
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() not in ("", "0"))


def declared_length(scope: Scope) -> int | None:
    text = Headers(scope=scope).get("content-length")
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


class Admission:
    """The pure ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits, check_key: KeyCheck, key_scheme: object) -> None:
        self.app = app
        self.limits = limits
        self.check_key = check_key
        self.key_scheme = key_scheme
        self._needs_key: dict[int, bool] = {}

    def route_needs_key(self, route: object) -> bool:
        if not isinstance(route, APIRoute):
            return False
        known = self._needs_key.get(id(route))
        if known is None:
            known = self._needs_key[id(route)] = needs_key(route.dependant, self.key_scheme)
        return known

    async def admit(self, scope: Scope) -> int:
        """The route's limit, once the declared length and the key have been found acceptable."""
        route = scope.get("route")
        limit = self.limits.of(route)
        length = declared_length(scope)
        if length is not None and length > limit:
            raise BodyTooLarge(limit)
        if self.route_needs_key(route):
            try:
                await self.check_key(Request(scope))
            except PlatformError as error:
                raise Refused(error) from error
        return limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.app(scope, receive, send)
            return
        limit: int | None = None
        received = 0
        started = False

        async def admitted_receive() -> Message:
            nonlocal limit, received
            if limit is None:
                limit = await self.admit(scope)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def noted_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, admitted_receive, noted_send)
        except BodyTooLarge as too_large:
            # Read where no route's error handling sees it (a middleware, a background read).
            if started:
                raise
            response = problem_response(
                Request(scope), HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(too_large.detail), headers=CLOSE
            )
            await response(scope, receive, send)
