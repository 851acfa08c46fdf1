"""Errors that must not cost the client its connection, and which of them mean "database away".

Starlette's ServerErrorMiddleware answers an unexpected error and then re-raises it, and
uvicorn closes a connection whose request raised, without `Connection: close`: a keep-alive
client's next request then fails with a reset. ErrorResponses sits just outside the routes'
exception handlers, answers the error itself (503 `unavailable` when the database is away,
500 otherwise) and does not re-raise, so the connection stays usable.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable

import psycopg
from sqlalchemy import exc as sa_exc
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("flowboard.errors")

# Seconds a client should wait before retrying while the database is away.
RETRY_AFTER_SECONDS = 5

# SQLite primary result codes that mean "busy or unreachable", not "this query is wrong".
_SQLITE_UNAVAILABLE = {
    5,  # SQLITE_BUSY: the busy timeout ran out
    6,  # SQLITE_LOCKED
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
}

Render = Callable[[Request, Exception], Awaitable[Response]]


def is_database_unavailable(error: BaseException) -> bool:
    """True for a database that cannot be reached, is shutting down, or did not answer in time
    (connect, statement, lock or pool timeout); False for errors in the query itself."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return is_database_unavailable(error.orig) if error.orig is not None else False
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_UNAVAILABLE
    # psycopg files connection failures, timeouts (QueryCanceled, LockNotAvailable), shutdowns,
    # resource exhaustion and serialization failures under OperationalError: all transient.
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


class ErrorResponses:
    """Answers any exception a route lets through with `render`'s response, keeping the
    connection open. Exceptions raised by `receive` (outer middleware such as the body-size
    limit, a client that went away) are left to whoever raised them."""

    def __init__(self, app: ASGIApp, render: Render) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        finished = False
        receive_failed: BaseException | None = None

        async def tracking_receive() -> Message:
            nonlocal receive_failed
            try:
                return await receive()
            except BaseException as error:
                receive_failed = error
                raise

        async def tracking_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, tracking_receive, tracking_send)
        except Exception as error:
            if error is receive_failed or isinstance(error, ClientDisconnect):
                raise
            unavailable = is_database_unavailable(error)
            if unavailable:
                logger.warning("database unavailable: %s %s: %s", *_where(scope), error)
            else:
                logger.exception("unexpected error: %s %s", *_where(scope), exc_info=error)
            if finished:
                return  # the answer is out; nothing to add and no reason to drop the connection
            if started:
                raise  # half an answer: closing the connection is how HTTP says so
            response = await self.render(Request(scope), error)
            await response(scope, receive, send)


def _where(scope: Scope) -> tuple[str, str]:
    return scope.get("method", ""), scope.get("path", "")
