"""The SELECTs behind `flowboard export` and `flowboard restore` (app/services/backup.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table, inspect, select, text

# Rows fetched per round trip while exporting: a server-side cursor on PostgreSQL, chunked
# fetches on SQLite, so a million events never sit in memory at once.
EXPORT_BATCH_ROWS = 2_000


def schema_revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at, or None when it was never migrated."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    revision = conn.scalar(text("SELECT version_num FROM alembic_version"))
    return str(revision) if revision is not None else None


def table_rows(conn: Connection, table: Table, columns: Sequence[Column[Any]]) -> Iterator[Any]:
    """The table's rows (only `columns`) in primary-key order, streamed in batches."""
    query = select(*columns).order_by(*table.primary_key.columns)
    result = conn.execution_options(yield_per=EXPORT_BATCH_ROWS).execute(query)
    try:
        yield from result
    finally:
        result.close()


def tables_with_rows(conn: Connection, tables: Sequence[Table]) -> list[str]:
    """Names of the tables that hold at least one row."""
    return [
        table.name
        for table in tables
        if conn.execute(select(text("1")).select_from(table).limit(1)).first() is not None
    ]
