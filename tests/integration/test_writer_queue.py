"""SQLite's in-process writer queue (app/db/session.py): writers of one process take turns in
order of arrival instead of polling for the lock, and a turn is given back however a unit of
work ends. Order properties only, never times.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from anyio import to_thread
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import event, insert, text
from sqlalchemy.exc import IntegrityError, OperationalError

from app.db import session as db_session
from app.db.migrate import upgrade
from app.db.models import User
from app.db.session import Database, WriterQueue, WriterQueueTimeout
from app.deps import db_session as request_session
from app.main import create_app
from app.resilience import is_database_unavailable
from app.services import items
from tests.factories import seed_board, token_headers
from tests.integration.helpers import create_backlog_items

THREADS = 16
WRITES = 8


@pytest.fixture
def sqlite_db(tmp_path: Any) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    upgrade(url)
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()


def queue_of(database: Database) -> WriterQueue:
    assert database.writer_queue is not None
    return database.writer_queue


def wait_until(condition: Any) -> None:
    """Polls a state change another thread makes (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        time.sleep(0.001)


def assert_free(queue: WriterQueue) -> None:
    assert queue.holder is None and queue.waiting == 0


# ---- the queue on its own ----


def test_turns_go_in_order_of_arrival() -> None:
    queue = WriterQueue()
    first = queue.acquire("first", timeout=1)
    assert first.ahead == 0
    order: list[int] = []

    def writer(n: int) -> None:
        ticket = queue.acquire(n, timeout=30)
        order.append(n)
        assert ticket.ahead == n + 1  # the holder and everyone who came before
        queue.release(n)

    threads = []
    for n in range(THREADS):
        thread = threading.Thread(target=writer, args=(n,))
        thread.start()
        threads.append(thread)
        wait_until(lambda n=n: queue.waiting == n + 1)  # arrivals strictly one after another
    queue.release("first")
    for thread in threads:
        thread.join()
    assert order == list(range(THREADS))
    assert_free(queue)


def test_release_by_anyone_else_or_twice_changes_nothing() -> None:
    queue = WriterQueue()
    ticket = queue.acquire("a", timeout=1)
    assert queue.acquire("a", timeout=1) is ticket  # its turn already: never waits for itself
    assert not queue.release("b")
    assert queue.holder is ticket
    assert queue.release("a")
    assert not queue.release("a")
    assert_free(queue)


def test_a_writer_that_gives_up_leaves_the_line() -> None:
    queue = WriterQueue()
    queue.acquire("holder", timeout=1)
    with pytest.raises(WriterQueueTimeout):
        queue.acquire("impatient", timeout=0.01)
    assert queue.waiting == 0
    queue.release("holder")
    assert_free(queue)


# ---- through real sessions ----


def test_engines_on_one_file_share_one_queue(sqlite_db: Database) -> None:
    other = Database(sqlite_db.url)
    try:
        assert other.writer_queue is sqlite_db.writer_queue
    finally:
        other.dispose()


def test_postgres_has_no_writer_queue(database: Database) -> None:
    assert (database.writer_queue is None) == (not database.is_sqlite)


def test_sixteen_writers_take_turns_first_come_first_served(sqlite_db: Database) -> None:
    queue = queue_of(sqlite_db)
    seed = seed_board(sqlite_db)
    member_id = seed.user("member").id
    turns: list[tuple[int, int, int]] = []  # (thread, ticket number, ahead) in turn order
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for k in range(WRITES):
                with sqlite_db.unit_of_work() as session:
                    actor = session.get(User, member_id)
                    assert actor is not None
                    items.create_item(
                        session=session, board_id=seed.board_id, actor=actor, title=f"{n}/{k}"
                    )
                    ticket = queue.holder
                    assert ticket is not None
                    turns.append((n, ticket.number, ticket.ahead))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(turns) == THREADS * WRITES
    numbers = [number for _, number, _ in turns]
    # FIFO handoff: turns are taken in ticket order, none skipped (nobody gave up waiting).
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    # Bounded waits: a writer never finds more than the other 15 ahead of it, so it waits
    # for at most 15 turns, however many writes the others make meanwhile.
    assert max(ahead for _, _, ahead in turns) <= THREADS - 1
    assert all(sum(1 for t, _, _ in turns if t == n) == WRITES for n in range(THREADS))
    assert_free(queue)


def test_turn_handoff_through_sessions_is_in_arrival_order(sqlite_db: Database) -> None:
    queue = queue_of(sqlite_db)
    sqlite_db.engine.dispose()
    order: list[int] = []

    def writer(n: int) -> None:
        with sqlite_db.unit_of_work() as session:
            session.execute(text("SELECT 1"))  # begins: waits for the turn
            order.append(n)

    holder = sqlite_db.session(write=True)
    holder.execute(text("SELECT 1"))
    threads = []
    for n in range(6):
        thread = threading.Thread(target=writer, args=(n,))
        thread.start()
        threads.append(thread)
        wait_until(lambda n=n: queue.waiting == n + 1)
    holder.commit()
    holder.close()
    for thread in threads:
        thread.join()
    assert order == list(range(6))
    assert_free(queue)


# ---- every way a unit of work ends gives the turn back ----


def next_write_goes_first(database: Database) -> None:
    """Another thread's write gets the turn with nobody ahead of it, and succeeds."""
    seen: list[int] = []

    def write() -> None:
        with database.unit_of_work() as session:
            session.execute(text("SELECT 1"))
            ticket = queue_of(database).holder
            assert ticket is not None
            seen.append(ticket.ahead)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    assert seen == [0]
    assert_free(queue_of(database))


def test_an_exception_inside_a_unit_of_work_gives_the_turn_back(sqlite_db: Database) -> None:
    with pytest.raises(RuntimeError), sqlite_db.unit_of_work() as session:
        session.execute(text("SELECT 1"))
        assert queue_of(sqlite_db).holder is not None
        raise RuntimeError("the request failed")
    next_write_goes_first(sqlite_db)


def test_a_failed_commit_gives_the_turn_back(sqlite_db: Database) -> None:
    seed_board(sqlite_db)
    with pytest.raises(IntegrityError), sqlite_db.unit_of_work() as session:
        # The same email twice: the unique index refuses it at flush.
        session.execute(insert(User), [{"email": "twice@example.org", "name": "A"}] * 2)
    next_write_goes_first(sqlite_db)


def test_close_without_commit_gives_the_turn_back(sqlite_db: Database) -> None:
    session = sqlite_db.session(write=True)
    session.execute(text("SELECT 1"))
    assert queue_of(sqlite_db).holder is not None
    session.close()
    next_write_goes_first(sqlite_db)


def test_an_invalidated_connection_gives_the_turn_back(sqlite_db: Database) -> None:
    session = sqlite_db.session(write=True)
    session.execute(text("SELECT 1"))
    assert queue_of(sqlite_db).holder is not None
    session.connection().invalidate()
    assert_free(queue_of(sqlite_db))
    session.close()
    next_write_goes_first(sqlite_db)


def test_reads_never_take_a_turn(sqlite_db: Database) -> None:
    with sqlite_db.unit_of_work(write=False) as session:
        session.execute(text("SELECT 1"))
        assert queue_of(sqlite_db).holder is None


# ---- the 503 paths of app/resilience.py ----


def test_another_process_holding_the_lock_is_503_and_the_turn_comes_back(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process (here: a raw connection, outside the queue) holds SQLite's write lock
    # longer than the busy timeout: BEGIN IMMEDIATE fails as "database is locked".
    @event.listens_for(sqlite_db.engine, "connect")
    def short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    sqlite_db.engine.dispose()
    path = sqlite_db.engine.url.database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError) as failed, sqlite_db.unit_of_work() as session:
            session.execute(text("SELECT 1"))
        assert is_database_unavailable(failed.value)
        assert_free(queue_of(sqlite_db))
    finally:
        other.execute("ROLLBACK")
        other.close()
    next_write_goes_first(sqlite_db)


def test_a_turn_not_given_in_time_is_503_and_leaves_the_line(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_session, "SQLITE_BUSY_TIMEOUT_MS", 50)
    holder = sqlite_db.session(write=True)
    holder.execute(text("SELECT 1"))
    failures: list[BaseException] = []

    def impatient() -> None:
        try:
            with sqlite_db.unit_of_work() as session:
                session.execute(text("SELECT 1"))
        except OperationalError as error:
            failures.append(error)

    thread = threading.Thread(target=impatient)
    thread.start()
    thread.join()
    assert len(failures) == 1 and is_database_unavailable(failures[0])
    assert queue_of(sqlite_db).waiting == 0
    holder.close()
    next_write_goes_first(sqlite_db)


# ---- through HTTP ----


def test_a_failed_request_never_keeps_the_turn(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = seed_board(sqlite_db)
    [first, second] = create_backlog_items(seed, 2)
    queue = queue_of(sqlite_db)

    def broken_pull(*, session: Any, **_kwargs: Any) -> Any:
        session.execute(text("UPDATE item SET title = 'half done'"))  # holds the turn now
        raise RuntimeError("a bug in the middle of a unit of work")

    with TestClient(create_app(sqlite_db, listen=False)) as client:
        headers = token_headers(client, seed.user("member"))
        with monkeypatch.context() as patched:
            patched.setattr(items, "pull_item", broken_pull)
            response = client.post(f"/api/v1/items/{first}/pull", headers=headers)
        assert response.status_code == 500
        assert_free(queue)
        # A refusal (409) gives the turn back too.
        refused = client.post(
            f"/api/v1/items/{first}/ready", headers=headers
        )  # not pulled yet: not startable
        assert refused.status_code == 409
        assert_free(queue)
        assert client.post(f"/api/v1/items/{second}/pull", headers=headers).status_code == 200
    assert_free(queue)


def test_the_token_lookup_of_a_write_takes_no_turn(sqlite_db: Database) -> None:
    # The write transaction begins in the route's own thread, not in the auth dependency's:
    # a turn never waits on the hop from one threadpool thread to the next.
    seed = seed_board(sqlite_db)
    [item_id] = create_backlog_items(seed, 1)
    queue = queue_of(sqlite_db)
    held: dict[str, bool] = {}

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        holder = queue.holder
        mine = holder is not None and holder.owner is conn.connection.dbapi_connection
        if "JOIN api_token" in statement:
            held["token lookup"] = mine
        elif statement.startswith("UPDATE item"):
            held["pull"] = mine

    with TestClient(create_app(sqlite_db, listen=False)) as client:
        headers = token_headers(client, seed.user("member"))
        event.listen(sqlite_db.engine, "before_cursor_execute", record)
        try:
            response = client.post(f"/api/v1/items/{item_id}/pull", headers=headers)
        finally:
            event.remove(sqlite_db.engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.text
    assert held == {"token lookup": False, "pull": True}
    assert_free(queue)


def test_a_request_that_ends_in_its_turn_gives_it_back_with_every_thread_busy(
    sqlite_db: Database,
) -> None:
    # A refused or failed write is rolled back after its route, in a thread. The threads of
    # the default pool may all be taken by requests waiting for this very turn, so closing the
    # session must not wait for one of them (it would wait until their busy timeout).
    queue = queue_of(sqlite_db)
    request = Request(
        {
            "type": "http",
            "method": "POST",
            "app": SimpleNamespace(state=SimpleNamespace(database=sqlite_db)),
        }
    )

    async def scenario() -> None:
        limiter = to_thread.current_default_thread_limiter()
        limiter.total_tokens = 1
        await limiter.acquire()  # the pool's one thread is busy from here on
        try:
            dependency = request_session(request)
            session = await dependency.__anext__()
            session.execute(text("UPDATE user_account SET name = name"))
            assert queue.holder is not None  # the request holds the turn
            with pytest.raises(StopAsyncIteration):  # the hang guard is generous, not a timing
                await asyncio.wait_for(dependency.__anext__(), timeout=60)
        finally:
            limiter.release()

    asyncio.run(scenario())
    assert_free(queue)
