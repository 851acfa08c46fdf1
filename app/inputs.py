"""Input types shared by the JSON API and the pages: ids and integers within the database's
range, so an out-of-range number is a clean 422 at the edge instead of a database error."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Integer columns are 32-bit on PostgreSQL; SQLite would take 64 bits, but the contract is one.
DB_INT_MAX = 2**31 - 1

# Every id in a path, query or body.
Id = Annotated[int, Field(ge=1, le=DB_INT_MAX)]
# Counts and offsets.
NonNegativeInt = Annotated[int, Field(ge=0, le=DB_INT_MAX)]
