"""Request dependencies both the JSON API and the pages use: the database and its unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from anyio import CancelScope, CapacityLimiter, to_thread
from fastapi import Depends, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.db.session import Database
from app.flow.errors import FlowError, VersionConflict

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_db(request: Request) -> Database:
    return request.app.state.database


async def db_session(request: Request) -> AsyncIterator[Session]:
    """One session per request; writes begin their transaction with the write lock (SQLite).

    async, so making the session and closing a committed one (no connection held, nothing to
    send) cost no threadpool hop. A session still in a transaction is closed in a thread, as
    its rollback talks to the database: shielded, so a client that went away cannot skip it,
    and under a limiter of its own (as FastAPI closes sync dependencies), so it never waits
    for a thread behind requests that wait for the SQLite write turn this close gives back.
    """
    session = get_db(request).session(write=request.method in WRITE_METHODS)
    try:
        yield session
    finally:
        if session.in_transaction():
            with CancelScope(shield=True):
                # rolls back whatever was not committed
                await to_thread.run_sync(session.close, limiter=CapacityLimiter(1))
        else:
            session.close()


DbSession = Annotated[Session, Depends(db_session)]


class ConflictError(FlowError):
    slug = "conflict"
    title = "Conflicting change"


def commit(session: Session) -> None:
    """Commits before the response is built, so a failed commit reaches the client as an error."""
    try:
        session.commit()
    except StaleDataError:
        session.rollback()
        raise VersionConflict(
            "Someone changed this item at the same moment; reload it and try again.",
            current_version=None,
        ) from None
    except IntegrityError as error:
        session.rollback()
        raise ConflictError(
            "That change conflicts with data saved at the same moment; retry."
        ) from error
