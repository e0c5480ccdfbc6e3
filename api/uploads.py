"""One uploaded file of a `multipart/form-data` body, read into memory whole or refused.

FastAPI's `UploadFile` lets Starlette spool each part into a `SpooledTemporaryFile`, closed
when parsing fails or the response is sent. But a body that stops before its closing
boundary is no failure to the multipart parser (its `finalize` checks nothing): the part
it stopped in is then neither in the form nor closed, and stays open until the garbage
collector finds it. A route that reads its file whole anyway (the device import decodes
and parses it as one text) therefore reads the part itself, into memory: there is no file
to leave open on any path, and a body that ends early is refused instead of answered as
a form without the file.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette import status
from starlette.exceptions import HTTPException
from starlette.requests import Request

FORM_DATA = b"multipart/form-data"


def upload_request_body(field: str) -> dict[str, Any]:
    """The OpenAPI `requestBody` of a route reading `field` with `read_upload`, as FastAPI
    would describe an `UploadFile` parameter of that name."""
    schema = {
        "type": "object",
        "required": [field],
        "properties": {field: {"type": "string", "contentMediaType": "application/octet-stream"}},
    }
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


class _Part:
    """What the parser's callbacks learn about the part they are in, and the wanted file."""

    def __init__(self, field: str, limit: int) -> None:
        self.field = field.encode()
        self.limit = limit
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""
        self.wanted = False
        self.found: bytearray | None = None
        self.ended = False

    def on_part_begin(self) -> None:
        self.disposition = b""
        self.wanted = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.strip().lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        if options.get(b"name") != self.field:
            return
        if self.found is not None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"send one file in the field {self.field.decode()!r}"
            )
        self.wanted = True
        self.found = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self.wanted or self.found is None:
            return
        if len(self.found) + (end - start) > self.limit:
            too_large = f"the file is larger than {self.limit} bytes"
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_large)
        self.found += data[start:end]

    def on_part_end(self) -> None:
        self.wanted = False

    def on_end(self) -> None:
        self.ended = True


async def read_upload(request: Request, field: str, limit: int) -> bytes:
    """The content of the file sent in `field`, at most `limit` bytes (413 beyond).

    422 for a body that is not multipart as it says (no boundary, broken, or ending before
    its closing boundary), for another content type, or a form without the file: one rule
    for every body the app cannot read.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != FORM_DATA:
        wrong_type = f"send the file as multipart/form-data, in the field {field!r}"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, wrong_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise _unreadable("the multipart body names no boundary")
    part = _Part(field, limit)
    callbacks: Any = {
        name: getattr(part, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
            "on_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise _unreadable("the multipart body is broken") from exc
    if not part.ended:
        raise _unreadable("the multipart body ends before its closing boundary")
    if part.found is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no file in the field {field!r}")
    return bytes(part.found)


def _unreadable(why: str) -> RequestValidationError:
    """A body that cannot be read, answered as every unreadable body is (422, `loc` body)."""
    return RequestValidationError([{"loc": ("body",), "msg": why, "type": "body_unreadable"}])
