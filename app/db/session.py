"""Engines and sessions: one unit of work per request; SQLite writers queue instead of failing;
PostgreSQL waits are bounded (connect, statement, lock, pool, and a client-side deadline)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings

# Execution option marking a connection whose transaction will write: on SQLite it begins
# with BEGIN IMMEDIATE, taking the write lock up front so racing writers wait (busy timeout)
# instead of failing with "database is locked" when they upgrade a read lock later.
WRITE_OPTION = "flowboard_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
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


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


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
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    timeouts = timeouts or Timeouts.from_settings(get_settings())
    if transaction_pooling is None:
        transaction_pooling = get_settings().db_transaction_pooling
    if prepared_statements is None:
        prepared_statements = get_settings().db_prepared_statements
    if kwargs.get("poolclass") is None:
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
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


@lru_cache
def get_database() -> Database:
    return Database(get_settings().resolved_database_url())
