"""Request dependencies for the JSON API: the unit of work and the signed-in user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.db.models import ApiToken, User
from app.db.session import Database
from app.flow.errors import FlowError, NotAuthenticated, VersionConflict
from app.services import users

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


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


class ConflictError(FlowError):
    slug = "conflict"
    title = "Conflicting change"


def current_token(
    session: DbSession, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> tuple[User, ApiToken]:
    if not token:
        raise NotAuthenticated(
            "Sign in first: send Authorization: Bearer <token> from POST /api/v1/auth/token."
        )
    found = users.user_for_token(session=session, token=token)
    if found is None:
        raise NotAuthenticated(
            "This token is unknown or revoked: get a new one from POST /api/v1/auth/token."
        )
    return found


def current_user(found: Annotated[tuple[User, ApiToken], Depends(current_token)]) -> User:
    return found[0]


CurrentUser = Annotated[User, Depends(current_user)]
CurrentToken = Annotated[tuple[User, ApiToken], Depends(current_token)]


class Page:
    """`limit` (default 100, at most 1000) and `offset` for every list."""

    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


Paging = Annotated[Page, Depends()]
