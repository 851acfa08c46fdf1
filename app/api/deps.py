"""Request dependencies for the JSON API: the bearer token's user and paging."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from fastapi.security import OAuth2PasswordBearer

from app.db.models import ApiToken, User
from app.deps import WRITE_METHODS, ConflictError, DbSession, commit, db_session, get_db
from app.flow.errors import NotAuthenticated
from app.inputs import NonNegativeInt
from app.services import users

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


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
        offset: Annotated[NonNegativeInt, Query()] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


Paging = Annotated[Page, Depends()]


__all__ = ["WRITE_METHODS", "ConflictError", "DbSession", "commit", "db_session", "get_db"]
