"""Which errors mean "the database is away" (503 unavailable) and which are bugs (500)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc

from app.resilience import is_database_unavailable


def test_a_locked_sqlite_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as locked:
            waiter.execute("BEGIN IMMEDIATE")
    finally:
        holder.close()
        waiter.close()
    assert is_database_unavailable(locked.value)


def test_a_wrong_query_is_not_unavailable() -> None:
    engine = create_engine("sqlite://")
    with pytest.raises(sa_exc.OperationalError) as wrong, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_database_unavailable(wrong.value)
    assert not is_database_unavailable(ValueError("a bug"))


def test_an_unreachable_postgresql_is_unavailable() -> None:
    # Port 1 on loopback refuses at once.
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(sa_exc.OperationalError) as refused:
        engine.connect()
    assert is_database_unavailable(refused.value)
    assert is_database_unavailable(psycopg.errors.QueryCanceled("statement timeout"))
    assert is_database_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))
