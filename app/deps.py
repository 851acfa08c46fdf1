"""Request dependencies both the JSON API and the pages use: the database and its unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.db.session import Database
from app.flow.errors import FlowError, VersionConflict

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_db(request: Request) -> Database:
    return request.app.state.database


def db_session(request: Request) -> Iterator[Session]:
    """One session per request; writes begin their transaction with the write lock (SQLite)."""
    session = get_db(request).session(write=request.method in WRITE_METHODS)
    try:
        yield session
    finally:
        session.close()  # rolls back whatever was not committed


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
