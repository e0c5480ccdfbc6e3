"""Whole numbers in request bodies, taken as JSON Schema's `integer` defines them.

Pydantic's lax `int` also takes `true` and `"5"`, which the schema calls invalid, and its
strict `int` refuses `5.0`, which the schema calls an integer. `BodyInt` takes exactly
what the schema says: a JSON number with no fractional part, and nothing else.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator


def _a_json_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number without a fractional part")
    return value


BodyInt = Annotated[int, BeforeValidator(_a_json_number)]
