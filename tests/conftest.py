"""Shared fixtures: every database test runs on SQLite and, when FLOWBOARD_TEST_POSTGRES_URL
is set, on PostgreSQL too. Each backend is migrated once per run (the real schema, through
Alembic); each test starts from empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.auth import passwords
from app.db.base import Base
from app.db.migrate import upgrade
from app.db.session import Database
from app.main import create_app
from tests.factories import Seed, seed_board

# Argon2 at its production cost takes ~0.2 s a hash and most tests seed several users. Only
# tests/unit/test_passwords.py checks the real parameters; verification reads the cost from
# each hash, so hashes made either way still verify.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
POSTGRES_URL = os.environ.get("FLOWBOARD_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


def require_postgres_url() -> str:
    """The PostgreSQL server for tests that need one; under CI its absence fails, never skips."""
    if not POSTGRES_URL:
        message = "needs PostgreSQL: set FLOWBOARD_TEST_POSTGRES_URL"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must run these tests)", pytrace=False)
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", CHEAP_HASHER)


def create_postgres_database(name: str) -> str:
    """Creates a fresh database next to FLOWBOARD_TEST_POSTGRES_URL and returns its URL."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(name: str) -> None:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_database_url(backend: str, tmp_dir: Path) -> tuple[str, str | None]:
    """(url, postgres database name or None) of a new, empty database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir / f'flowboard-{uuid.uuid4().hex[:8]}.sqlite3'}", None
    name = f"flowboard_test_{uuid.uuid4().hex[:10]}"
    return create_postgres_database(name), name


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database per backend for the whole run."""
    url, pg_name = fresh_database_url(request.param, tmp_path_factory.mktemp("db"))
    upgrade(url)
    yield url
    if pg_name:
        drop_postgres_database(pg_name)


def empty_all_tables(database: Database) -> None:
    # DELETE, children first: on tables this small it is far quicker than TRUNCATE on PostgreSQL.
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as conn:
        for table in tables:
            conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    try:
        yield db
    finally:
        empty_all_tables(db)
        db.dispose()


@pytest.fixture
def backend(database: Database) -> str:
    return "sqlite" if database.is_sqlite else "postgresql"


@pytest.fixture
def app(database: Database):  # type: ignore[no-untyped-def]
    return create_app(database, listen=False)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def seed(database: Database) -> Seed:
    """An admin, a manager, two members, a reviewer and a viewer on a document-review board."""
    return seed_board(database)
