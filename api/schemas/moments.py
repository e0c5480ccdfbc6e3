"""Points in time in requests, taken as the schema documents them: RFC 3339 strings with an offset.

Pydantic's lax `datetime` also reads a number, or a string that holds one, as seconds
since 1970, so `?end=1.6e-74` was answered as if it named 1970-01-01 while the schema
calls it invalid. `Moment` takes only a date-time string that carries its offset, within
the years that readings are kept for.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_DATE_TIME_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")


def _a_date_time_string(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TIME_START.match(value):
        raise ValueError("a date-time with its offset, such as 2026-05-01T00:00:00Z")
    return value


def _in_range(moment: datetime) -> datetime:
    if not EARLIEST <= moment <= LATEST:
        raise ValueError("times lie between 1970 and 2200")
    return moment


Moment = Annotated[AwareDatetime, BeforeValidator(_a_date_time_string), AfterValidator(_in_range)]
