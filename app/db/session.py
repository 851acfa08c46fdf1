"""Engines and sessions: one unit of work per request; SQLite writers queue instead of failing;
PostgreSQL waits are bounded (connect, statement, lock, pool, and a client-side deadline)."""

from __future__ import annotations

import itertools
import math
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings

# Execution option marking a connection whose transaction will write: on SQLite it begins
# with BEGIN IMMEDIATE, taking the write lock up front so racing writers wait (busy timeout)
# instead of failing with "database is locked" when they upgrade a read lock later.
WRITE_OPTION = "flowboard_write"
# Execution option for the reads a write request makes before its unit of work (see
# reads_before_write): on SQLite they run without BEGIN, outside the write lock.
READS_FIRST_OPTION = "flowboard_reads_first"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# PostgreSQL connections: an app process keeps POOL_SIZE open and opens up to
# CONNECTIONS_PER_PROCESS under load (its threadpool runs at most 40 requests at once). The
# processes of `flowboard serve --workers N` (told through WORKERS_ENV) share
# CONNECTION_BUDGET, so N workers stay inside PostgreSQL's default max_connections (100) with
# room for each one's LISTEN connection and health probe, migrations and psql.
POOL_SIZE = 10
CONNECTIONS_PER_PROCESS = 30
CONNECTION_BUDGET = 80
MIN_CONNECTIONS = 4
WORKERS_ENV = "FLOWBOARD_WORKERS"
# libpq (and psycopg) never wait less than 2 s for a connection.
MIN_CONNECT_TIMEOUT_S = 2
# How much longer than statement_timeout the client waits for an answer before it gives up on
# the connection: the server cancels first when it is alive; a frozen server cannot.
DEADLINE_GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounded waits on PostgreSQL (SQLite keeps its busy timeout)."""

    connect_seconds: float = 5
    statement_ms: int = 15_000
    lock_ms: int = 5_000
    pool_seconds: float = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> Timeouts:
        return cls(
            connect_seconds=settings.db_connect_timeout_seconds,
            statement_ms=settings.db_statement_timeout_ms,
            lock_ms=settings.db_lock_timeout_ms,
            pool_seconds=settings.db_pool_timeout_seconds,
        )

    @property
    def answer_deadline_seconds(self) -> float | None:
        """The client-side bound on one round trip, or None when statements are unbounded."""
        if self.statement_ms <= 0:
            return None
        return self.statement_ms / 1000 + DEADLINE_GRACE_S


class DatabaseTimeout(psycopg.OperationalError):
    """The server did not answer within the deadline; the connection was closed."""


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that stops waiting for an answer after `answer_deadline` seconds.

    statement_timeout is enforced by the server, so a stopped or frozen server (SIGSTOP, a
    hung host) would keep a request waiting forever. This bound closes the connection instead;
    SQLAlchemy then sees a disconnect and discards it (and every older pooled connection).
    """

    answer_deadline: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        bounded = timeout is None and self.answer_deadline is not None
        if bounded:
            timeout = self.answer_deadline
        try:
            return super().wait(gen, interval=interval, timeout=timeout)
        except pg_errors._WaitTimeout as error:
            if not bounded:
                raise
            self.close()
            raise DatabaseTimeout(
                f"The database did not answer within {self.answer_deadline:g} s."
            ) from error


@dataclass(eq=False, slots=True)
class WriterTicket:
    """One writer's place in a WriterQueue: `number` in order of arrival, `ahead` the holder
    and waiters it found there."""

    number: int
    owner: object
    ahead: int
    gate: threading.Lock = field(default_factory=threading.Lock, repr=False)


class WriterQueueTimeout(Exception):
    """A writer waited longer than the busy timeout for its turn."""


class WriterQueue:
    """First come, first served turns to write one SQLite file, for this process's writers.

    SQLite lets one transaction write at a time, and its busy handler polls with growing
    sleeps (1 ms up to 100 ms): under load newcomers keep winning while an unlucky writer
    sleeps on, so a few requests wait seconds. Writers of this process queue here instead,
    before BEGIN IMMEDIATE, and each release hands the turn to the longest waiter; the busy
    timeout stays for writers in other processes (the CLI, a second server). A turn belongs to
    a DBAPI connection, not a thread: a request's dependencies, route and cleanup run in
    different threadpool threads.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._holder: WriterTicket | None = None
        self._waiting: deque[WriterTicket] = deque()
        self._numbers = itertools.count(1)

    @property
    def holder(self) -> WriterTicket | None:
        return self._holder

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def acquire(self, owner: object, timeout: float) -> WriterTicket:
        """Waits for `owner`'s turn (at most `timeout` seconds, else WriterQueueTimeout)."""
        with self._mutex:
            holder = self._holder
            if holder is not None and holder.owner is owner:
                return holder  # already its turn: never wait for oneself
            ticket = WriterTicket(next(self._numbers), owner, len(self._waiting) + bool(holder))
            if holder is None:  # nobody waits either: a release hands over to the next waiter
                self._holder = ticket
                return ticket
            ticket.gate.acquire()
            self._waiting.append(ticket)
        if ticket.gate.acquire(timeout=timeout):
            return ticket
        with self._mutex:
            if self._holder is ticket:  # handed over just as the wait ran out
                return ticket
            self._waiting.remove(ticket)
        raise WriterQueueTimeout(f"no turn to write within {timeout:g} s")

    def release(self, owner: object) -> bool:
        """Ends `owner`'s turn, if it has it, and hands the turn to the longest waiter."""
        with self._mutex:
            if self._holder is None or self._holder.owner is not owner:
                return False
            self._holder = self._waiting.popleft() if self._waiting else None
            if self._holder is not None:
                self._holder.gate.release()
            return True


_WRITER_QUEUES: dict[str, WriterQueue] = {}
_WRITER_QUEUES_LOCK = threading.Lock()


def writer_queue_for(url: str) -> WriterQueue:
    """The queue of the SQLite file behind `url`, shared by every engine on it in this process
    (a private one for an in-memory database)."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return WriterQueue()
    with _WRITER_QUEUES_LOCK:
        return _WRITER_QUEUES.setdefault(os.path.realpath(path), WriterQueue())


def _busy(message: str) -> sa_exc.OperationalError:
    """What SQLite's own busy timeout raises, so the 503 `unavailable` path treats it alike."""
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = 5  # SQLITE_BUSY
    error.sqlite_errorname = "SQLITE_BUSY"
    return sa_exc.OperationalError("BEGIN IMMEDIATE", None, error)


def _dbapi(connection: Any) -> Any:
    """The driver's connection behind a pool proxy (the pool hands out either)."""
    return getattr(connection, "dbapi_connection", connection)


def _configure_writer_queue(engine: Engine, queue: WriterQueue) -> None:
    """Releases a connection's turn however its transaction ends: commit, rollback (including
    the pool's rollback when a connection comes back or a session closes), invalidation and
    close. SQLAlchemy has no "after commit" event, and releasing before COMMIT has run would
    send the next writer into the busy handler's polling, so the dialect's own do_commit and
    do_rollback are wrapped."""
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            queue.release(_dbapi(dbapi_connection))

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            queue.release(_dbapi(dbapi_connection))

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    def release(dbapi_connection: Any, *_args: Any) -> None:
        if dbapi_connection is not None:
            queue.release(dbapi_connection)

    for name in ("checkin", "invalidate", "close", "close_detached"):
        event.listen(engine, name, release)


def _configure_sqlite(engine: Engine, queue: WriterQueue) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    _configure_writer_queue(engine, queue)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get(READS_FIRST_OPTION):
            return  # no BEGIN: each read is its own snapshot (autocommit), and costs no turn
        if not options.get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN")
            return
        owner = connection.connection.dbapi_connection
        try:
            queue.acquire(owner, SQLITE_BUSY_TIMEOUT_MS / 1000)
        except WriterQueueTimeout as error:
            raise _busy(f"database is locked (in-process writer queue: {error})") from error
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            queue.release(owner)
            raise


def postgres_connect_args(
    url: str,
    timeouts: Timeouts,
    *,
    transaction_pooling: bool = False,
    prepared_statements: bool | None = None,
) -> dict[str, Any]:
    """connect_timeout and the per-session statement/lock timeouts; values in the URL win.

    Through a transaction-pooling PgBouncer (`transaction_pooling`) the timeouts are not sent
    (it refuses startup options; `_configure_postgres` sets them per transaction), and
    prepared statements stay off unless `prepared_statements` is True (PgBouncer before 1.21
    hands a prepared name to another client's server connection).
    """
    query = make_url(url).query
    args: dict[str, Any] = {}
    if "connect_timeout" not in query:
        args["connect_timeout"] = max(MIN_CONNECT_TIMEOUT_S, math.ceil(timeouts.connect_seconds))
    if prepared_statements is None:
        prepared_statements = not transaction_pooling
    if not prepared_statements:
        args["prepare_threshold"] = None  # psycopg then never prepares
    if transaction_pooling:
        return args
    options = [
        f"-c statement_timeout={max(0, timeouts.statement_ms)}",
        f"-c lock_timeout={max(0, timeouts.lock_ms)}",
    ]
    existing = query.get("options")
    if isinstance(existing, str) and existing:
        options.insert(0, existing)  # later -c settings win, so the URL's own come first
    args["options"] = " ".join(options)
    return args


def _configure_postgres(engine: Engine, timeouts: Timeouts, *, transaction_pooling: bool) -> None:
    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.answer_deadline = timeouts.answer_deadline_seconds
        return connection

    if transaction_pooling:
        # A pooled server connection serves other clients between our transactions, so the
        # timeouts are transaction-local (one round trip per transaction).
        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(
                "SELECT set_config('statement_timeout', %(statement)s, true), "
                "set_config('lock_timeout', %(lock)s, true)",
                {
                    "statement": str(max(0, timeouts.statement_ms)),
                    "lock": str(max(0, timeouts.lock_ms)),
                },
            )


def serving_workers() -> int:
    """How many app processes `flowboard serve --workers N` started (1 when not set)."""
    try:
        return max(1, int(os.environ.get(WORKERS_ENV, "1")))
    except ValueError:
        return 1


def pool_limits(workers: int) -> tuple[int, int]:
    """(pool_size, max_overflow) of one process when `workers` processes share PostgreSQL:
    CONNECTION_BUDGET divided between them, at most CONNECTIONS_PER_PROCESS each."""
    per_process = max(MIN_CONNECTIONS, min(CONNECTIONS_PER_PROCESS, CONNECTION_BUDGET // workers))
    size = min(POOL_SIZE, per_process)
    return size, per_process - size


SQLITE_POOL_SIZE = 20
SQLITE_POOL_OVERFLOW = 20  # anyio runs at most 40 request threads
# Page cache per connection (SQLite's default is 2 MiB): with a connection kept per request
# thread the caches would hold the same hot pages many times over (the OS caches the file).
SQLITE_CACHE_KIB = 512


def make_engine(
    url: str,
    timeouts: Timeouts | None = None,
    *,
    transaction_pooling: bool | None = None,
    prepared_statements: bool | None = None,
    **kwargs: Any,
) -> Engine:
    """`transaction_pooling` / `prepared_statements` None: FLOWBOARD_DB_TRANSACTION_POOLING /
    FLOWBOARD_DB_PREPARED_STATEMENTS decide (see postgres_connect_args)."""
    if url.startswith("sqlite"):
        if kwargs.get("poolclass") is None:
            # Keep a connection per busy request thread: the default 5 (+10 overflow, closed on
            # return) made a loaded server open a connection and run its PRAGMAs on most
            # requests (a fifth of a pull's CPU at 16 clients).
            kwargs.setdefault("pool_size", SQLITE_POOL_SIZE)
            kwargs.setdefault("max_overflow", SQLITE_POOL_OVERFLOW)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine, writer_queue_for(url))
        return engine
    timeouts = timeouts or Timeouts.from_settings(get_settings())
    if transaction_pooling is None:
        transaction_pooling = get_settings().db_transaction_pooling
    if prepared_statements is None:
        prepared_statements = get_settings().db_prepared_statements
    if kwargs.get("poolclass") is None:
        kwargs.setdefault("pool_pre_ping", True)
        size, overflow = pool_limits(serving_workers())
        kwargs.setdefault("pool_size", size)
        kwargs.setdefault("max_overflow", overflow)
        kwargs.setdefault("pool_timeout", timeouts.pool_seconds)
    connect_args = {
        **postgres_connect_args(
            url,
            timeouts,
            transaction_pooling=transaction_pooling,
            prepared_statements=prepared_statements,
        ),
        **kwargs.pop("connect_args", {}),
    }
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    if url.startswith("postgresql+psycopg"):
        _configure_postgres(engine, timeouts, transaction_pooling=transaction_pooling)
    return engine


class Database:
    """An engine and the two session factories: reading, and writing (one per request)."""

    def __init__(self, url: str, *, timeouts: Timeouts | None = None, **engine_kwargs: Any) -> None:
        self.url = url
        self.timeouts = timeouts or Timeouts.from_settings(get_settings())
        self.engine = make_engine(url, self.timeouts, **engine_kwargs)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        # Where this process's SQLite writers wait their turn (None on PostgreSQL).
        self.writer_queue = writer_queue_for(url) if self.is_sqlite else None
        self._read = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._write = sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}),
            expire_on_commit=False,
            autoflush=False,
        )

    def session(self, *, write: bool) -> Session:
        return (self._write if write else self._read)()

    @contextmanager
    def unit_of_work(self, *, write: bool = True) -> Iterator[Session]:
        """A session committed when the block ends normally and rolled back otherwise."""
        session = self.session(write=write)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def reads_before_write(session: Session) -> Iterator[None]:
    """Wraps the reads a write request makes before its route runs (who is asking: the token,
    the cookie, the CSRF check). On SQLite they run outside the write lock and end with the
    block, so the write transaction begins at the route's first statement, in the route's own
    thread: a writer's turn never spans the hop from a dependency's threadpool thread through
    the event loop to the route's, which under load made every turn longer, and with all
    threadpool threads waiting for the turn would leave the holder no thread for its route.
    Objects read stay in the session; changes made to them after the block are written by the
    route's transaction. On PostgreSQL (row locks, no database lock) nothing changes."""
    bind = session.get_bind()
    if (
        bind.dialect.name != "sqlite"
        or session.in_transaction()
        or not bind.get_execution_options().get(WRITE_OPTION)
    ):
        yield
        return
    session.connection(execution_options={READS_FIRST_OPTION: True})
    yield
    session.commit()  # nothing to write; ends the reads and gives the connection back


@lru_cache
def get_database() -> Database:
    return Database(get_settings().resolved_database_url())
