"""PgBouncer in transaction pooling between the app and PostgreSQL (issue 8, scale-out):
migrations, the race tests and live updates work through it, with
FLOWBOARD_DB_TRANSACTION_POOLING=true (timeouts set per transaction: PgBouncer refuses them
as startup options; prepared statements off) and the LISTEN connection straight to
PostgreSQL (FLOWBOARD_LISTEN_DATABASE_URL).

Negative controls (run by hand with PgBouncer 1.18, not in CI):
- prepared statements left on (`prepared_statements=True`): the burst test below fails with
  `DuplicatePreparedStatement: prepared statement "_pg3_0" already exists` (observed in all
  12 threads): psycopg prepares a query on its 5th run, and the next transaction of that
  client lands on another server connection that another client already prepared it on;
- the timeouts as startup options (no `transaction_pooling`): every connection is refused
  with `unsupported startup parameter: options`;
- LISTEN through PgBouncer too (no `listen_database_url`): the live test gets no message
  (the LISTEN ran on a server connection that went back to the pool).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from app.config import get_settings
from app.db.migrate import upgrade
from app.db.session import Database, Timeouts
from app.services.boards import StateSpec
from tests.conftest import create_postgres_database, drop_postgres_database, empty_all_tables
from tests.factories import PASSWORD, seed_board
from tests.integration import test_races as races
from tests.integration.helpers import create_backlog_items
from tests.integration.org_stack import (
    PgBouncer,
    Stream,
    app_processes,
    pgbouncer,
    require_postgres,
)

pytestmark = pytest.mark.xdist_group("org-stack")

TIMEOUTS = Timeouts(statement_ms=7_000, lock_ms=3_000)
RACES: dict[str, Callable[[Database], None]] = {
    "threads, distinct users": lambda db: races.test_threads_racing_for_three_slots(
        db, "distinct users"
    ),
    "threads, one user": lambda db: races.test_threads_racing_for_three_slots(db, "one user"),
    "two processes": races.test_two_processes_racing_for_three_slots,
    "lost update": races.test_lost_update_is_a_version_conflict,
    "same ready item": lambda db: races.test_threads_pulling_the_same_ready_item(
        db, True, "invalid-move"
    ),
    "one person, two states": races.test_one_person_racing_two_pulls_into_different_states,
    "assignments": races.test_threads_assigning_doing_items_to_one_person,
}


@dataclass
class Bounced:
    direct_url: str
    bouncer: PgBouncer

    @property
    def url(self) -> str:
        return self.bouncer.url(self.direct_url)


@pytest.fixture(scope="module")
def bounced() -> Iterator[Bounced]:
    """A fresh database, migrated through PgBouncer (as `flowboard serve` would be)."""
    require_postgres()
    name = f"flowboard_pgbouncer_{uuid.uuid4().hex[:8]}"
    direct = create_postgres_database(name)
    try:
        with pgbouncer(direct) as bouncer, pytest.MonkeyPatch.context() as patch:
            patch.setenv("FLOWBOARD_DB_TRANSACTION_POOLING", "true")
            get_settings.cache_clear()
            try:
                upgrade(bouncer.url(direct))
            finally:
                get_settings.cache_clear()
            yield Bounced(direct, bouncer)
    finally:
        get_settings.cache_clear()
        drop_postgres_database(name)


@pytest.fixture
def database(bounced: Bounced, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The app's database through PgBouncer; processes spawned by a test see the setting."""
    monkeypatch.setenv("FLOWBOARD_DB_TRANSACTION_POOLING", "true")
    db = Database(bounced.url, timeouts=TIMEOUTS, transaction_pooling=True)
    try:
        yield db
    finally:
        empty_all_tables(db)
        db.dispose()


@pytest.mark.parametrize("race", list(RACES))
def test_races_through_pgbouncer(database: Database, race: str) -> None:
    RACES[race](database)


def test_timeouts_hold_per_transaction_and_do_not_leak(
    database: Database, bounced: Bounced
) -> None:
    for _ in range(5):  # a new transaction each time, on whichever server connection
        with database.unit_of_work(write=False) as session:
            assert session.execute(text("SHOW statement_timeout")).scalar_one() == "7s"
            assert session.execute(text("SHOW lock_timeout")).scalar_one() == "3s"
    # Other clients of the same server connections keep the server's defaults.
    dsn = bounced.url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as other:
        for _ in range(10):
            row = other.execute("SHOW statement_timeout").fetchone()
            assert row is not None and row[0] != "7s"


def test_a_burst_of_repeated_queries_on_pooled_connections(database: Database) -> None:
    # psycopg prepares a statement on its 5th run on a connection; through PgBouncer before
    # 1.21 that breaks under contention, unless prepared statements are off (see above).
    errors: list[str] = []

    def run() -> None:
        try:
            for n in range(60):
                with database.unit_of_work(write=False) as session:
                    assert session.execute(text("SELECT :n + 1"), {"n": n}).scalar_one() == n + 1
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=run) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []


def test_live_updates_cross_processes_with_listen_direct(
    bounced: Bounced, database: Database, tmp_path: Path
) -> None:
    seed = seed_board(
        database,
        states=[
            StateSpec("Backlog", "backlog"),
            StateSpec("Build", "work", 10),
            StateSpec("Done", "done"),
        ],
    )
    item_ids = create_backlog_items(seed, 3)
    settings = {"db_transaction_pooling": "true", "listen_database_url": bounced.direct_url}
    with (
        app_processes(bounced.url, tmp_path, 2, **settings) as (viewer_app, actor_app),
        httpx.Client(base_url=f"http://{viewer_app.address}") as viewer,
        httpx.Client(base_url=f"http://{actor_app.address}") as actor,
    ):
        answer = viewer.post(
            "/api/v1/auth/token",
            data={"username": seed.user("member").email, "password": PASSWORD},
        )
        assert answer.status_code == 200, answer.text
        headers: dict[str, Any] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        stream = Stream(viewer, f"/api/v1/boards/{seed.board_id}/stream", headers).start()
        assert stream.status == 200
        for item_id in item_ids:  # each pull answered by the other process
            pulled = actor.post(f"/api/v1/items/{item_id}/pull", headers=headers)
            assert pulled.status_code == 200, pulled.text
            assert stream.next_data(timeout=10) is not None, item_id
        viewer.close()
