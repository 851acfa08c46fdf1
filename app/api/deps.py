"""Request dependencies for the JSON API: the bearer token's user and paging."""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer

from app.db import queries
from app.db.models import ApiToken, User
from app.db.session import reads_before_write
from app.deps import WRITE_METHODS, ConflictError, DbSession, commit, db_session, get_db
from app.flow.errors import InsufficientScope, NotAuthenticated
from app.inputs import NonNegativeInt
from app.services import tokens, users

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
# A read token may still revoke itself: giving up access is never a write to refuse.
SELF_REVOCATION = ("DELETE", "/api/v1/auth/token")


def current_token(
    request: Request,
    session: DbSession,
    background: BackgroundTasks,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> tuple[User, ApiToken]:
    """The token's user. 401 for a missing, unknown, revoked or expired token; 403
    `insufficient-scope` for a read token on POST, PUT, PATCH or DELETE (one place for all)."""
    if not token:
        raise NotAuthenticated(
            "Sign in first: send Authorization: Bearer <token> from POST /api/v1/auth/token."
        )
    now = queries.now()
    with reads_before_write(session):  # SQLite: the write lock waits for the route
        found = users.user_for_token(session=session, token=token, now=now)
    if found is None:
        raise NotAuthenticated(
            "This token is unknown, revoked or expired: get a new one from POST /api/v1/auth/token."
        )
    api_token = found[1]
    is_write = request.method in WRITE_METHODS
    if (
        is_write
        and api_token.scope != "write"
        and (request.method, request.url.path.rstrip("/")) != SELF_REVOCATION
    ):
        raise InsufficientScope(
            "This token may only read; create a token with the write scope for changes."
        )
    if tokens.touch_due(api_token, now):
        if is_write:  # saved with the request's own transaction
            api_token.last_used_at = now
        else:  # reads never commit: a short transaction of its own, after the answer
            background.add_task(tokens.touch_apart, get_db(request), api_token.id, now)
    return found


async def current_user(found: Annotated[tuple[User, ApiToken], Depends(current_token)]) -> User:
    # async: no I/O here, so FastAPI calls it on the event loop instead of a threadpool hop.
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
