"""Text a person types as a name or label: printable, not blank, stripped.

The one definition that the API's bodies, the CSV import and the CLI validate
against, so that a name accepted by one path is accepted by every other.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

PrintableText = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$")]
"""Text without control characters: PostgreSQL refuses NUL, and nobody means a tab in a name."""

VISIBLE_TEXT_PATTERN = (
    r"^[^\x00-\x1f\x7f]*"
    r"[^\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    r"[^\x00-\x1f\x7f]*$"
)
"""Printable text with at least one character that is not white space. The pattern is
checked on the text as sent, then the text is stripped: so the schema states exactly
what is accepted, and a name of blanks is refused for what it is."""

Name = Annotated[
    str, StringConstraints(pattern=VISIBLE_TEXT_PATTERN, max_length=200), AfterValidator(str.strip)
]
Label = Annotated[
    str, StringConstraints(pattern=VISIBLE_TEXT_PATTERN, max_length=100), AfterValidator(str.strip)
]
