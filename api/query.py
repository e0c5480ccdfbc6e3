"""Query strings are read as the schema documents them, not as leniently as Pydantic would.

FastAPI takes the last of repeated values for a parameter declared as one value, so
`?tag=a&tag=b` was answered as `?tag=b`; Pydantic's lax parsing reads `1`, `yes` and `on`
as true and ` 5`, `+5` and `5_0` as numbers. Each is a request the schema calls invalid,
answered as if it had said something else. Checked once for every route, from the
parameters the route and its dependencies declare, so a new route is covered without a
line of its own: a single-valued parameter comes once, a boolean is `true` or `false`,
and a number is spelt as JSON spells one.
"""

from __future__ import annotations

import collections.abc
import re
import types
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)
_SPELLINGS = {
    "boolean": re.compile(r"true|false"),
    "integer": re.compile(r"-?(0|[1-9][0-9]*)"),
    "number": re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"),
}


@dataclass(frozen=True)
class _QueryShape:
    """What a route's query parameters may look like: which come once, which are typed."""

    single_valued: frozenset[str]
    typed: dict[str, str]


_shapes_by_route: dict[int, _QueryShape] = {}


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_takes_many(argument) for argument in get_args(annotation))
    return origin in _SEQUENCES or annotation in _SEQUENCES


def _json_type(annotation: Any) -> str | None:
    """`boolean`, `integer` or `number` for a parameter of that type (or that type or None)."""
    if get_origin(annotation) in (Union, types.UnionType):
        found = {_json_type(argument) for argument in get_args(annotation) if argument is not type(None)}
        return found.pop() if len(found) == 1 else None
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    return None


def _query_fields(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_fields(sub)


def query_shape(dependant: Dependant) -> _QueryShape:
    """The query parameters that `dependant` and its dependencies declare, by alias."""
    fields = list(_query_fields(dependant))
    typed = {field.alias: _json_type(field.field_info.annotation) for field in fields}
    return _QueryShape(
        single_valued=frozenset(f.alias for f in fields if not _takes_many(f.field_info.annotation)),
        typed={name: kind for name, kind in typed.items() if kind is not None},
    )


async def refuse_misspelt_query(request: Request) -> None:
    """An app-wide dependency: 422 for a query the schema calls invalid but Pydantic would read."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    shape = _shapes_by_route.get(id(route))
    if shape is None:
        shape = _shapes_by_route[id(route)] = query_shape(route.dependant)
    items = request.query_params.multi_items()
    counts = Counter(name for name, _ in items)
    errors: list[dict[str, Any]] = [
        {"loc": ("query", name), "msg": "give this parameter once", "type": "repeated"}
        for name in sorted(counts)
        if counts[name] > 1 and name in shape.single_valued
    ]
    for name, value in items:
        kind = shape.typed.get(name)
        if kind is not None and not _SPELLINGS[kind].fullmatch(value):
            message = f"must be a JSON {kind}"
            errors.append({"loc": ("query", name), "msg": message, "type": "spelling", "input": value})
    if errors:
        raise RequestValidationError(errors)
