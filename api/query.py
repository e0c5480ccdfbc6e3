"""A single-valued query parameter is given once: `?tag=a&tag=b` is refused, not read as `b`.

FastAPI takes the last of repeated values for a parameter declared as one value, so a
request the schema does not allow (an array where one string goes) was answered as if
it had said something else. Checked once for every route, from the parameters the route
and its dependencies declare, so a new route is covered without a line of its own.
"""

from __future__ import annotations

import collections.abc
import types
from collections import Counter
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)
_single_valued_by_route: dict[int, frozenset[str]] = {}


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_takes_many(argument) for argument in get_args(annotation))
    return origin in _SEQUENCES or annotation in _SEQUENCES


def single_valued_query(dependant: Dependant) -> frozenset[str]:
    """The names (aliases) of the query parameters that `dependant` and its dependencies take once."""
    names = {field.alias for field in dependant.query_params if not _takes_many(field.field_info.annotation)}
    for sub in dependant.dependencies:
        names |= single_valued_query(sub)
    return frozenset(names)


async def refuse_repeated_query(request: Request) -> None:
    """An app-wide dependency: 422 for a single-valued query parameter given more than once."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    single = _single_valued_by_route.get(id(route))
    if single is None:
        single = _single_valued_by_route[id(route)] = single_valued_query(route.dependant)
    counts = Counter(name for name, _ in request.query_params.multi_items())
    repeated = sorted(name for name, count in counts.items() if count > 1 and name in single)
    if repeated:
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": "give this parameter once", "type": "repeated"}
                for name in repeated
            ]
        )
