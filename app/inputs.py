"""Input types shared by the JSON API and the pages: ids and integers within the database's
range, so an out-of-range number is a clean 422 at the edge instead of a database error, and
text that follows app.flow.text's rule (no control characters; names and titles visible)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from app.flow.text import (
    MULTI_LINE_PATTERN,
    SINGLE_LINE_PATTERN,
    is_visibly_empty,
    text_problem,
)

# Integer columns are 32-bit on PostgreSQL; SQLite would take 64 bits, but the contract is one.
DB_INT_MAX = 2**31 - 1

# Every id in a path, query or body.
Id = Annotated[int, Field(ge=1, le=DB_INT_MAX)]
# Counts and offsets.
NonNegativeInt = Annotated[int, Field(ge=0, le=DB_INT_MAX)]


def parse_id(value: str | None) -> int | None:
    """An id written in ASCII digits within the database's range, else None.

    str.isdigit() also accepts '²' or '٣', which int() refuses or reads differently; ids are
    plain ASCII.
    """
    if not value or len(value) > 10 or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if 1 <= number <= DB_INT_MAX else None


@dataclass(frozen=True, slots=True)
class Text:
    """Annotation for text fields: `Annotated[str, StringConstraints(...), Text(visible=True)]`.

    Checks app.flow.text's rule after the length and trimming constraints, and states it in the
    JSON Schema as a pattern so the OpenAPI document tells clients.
    """

    multiline: bool = False
    visible: bool = False

    def _check(self, value: str) -> str:
        problem = text_problem(value, multiline=self.multiline)
        if problem is not None:
            raise ValueError(problem)
        if self.visible and is_visibly_empty(value):
            raise ValueError("needs visible characters, not only blanks")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(schema)
        target = handler.resolve_ref_schema(found)
        if target.get("type") == "string":
            target["pattern"] = MULTI_LINE_PATTERN if self.multiline else SINGLE_LINE_PATTERN
        return found


# One line of text: emails, reasons, waiting_on, criteria, search text.
SingleLine = Annotated[str, Text()]
# Text that may hold line breaks: descriptions, notes, comments.
MultiLine = Annotated[str, Text(multiline=True)]
