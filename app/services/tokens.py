"""API tokens: named, scoped (read or write), optionally expiring; shown once, stored hashed.

Tokens from the password flow (POST /auth/token) have no name and the write scope; named
tokens come from the Tokens page or POST /tokens. Every token of a user is listed and
revocable; revoking one (or many, on a password change or deactivation) also tells that user's
live streams to re-check at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from app.auth.tokens import new_secret, secret_hash
from app.db import queries
from app.db.models import TOKEN_SCOPES, ApiToken, User
from app.db.session import Database
from app.flow.errors import InvalidInput, NotFound
from app.flow.text import checked_text
from app.live import notify
from app.services import audit

log = logging.getLogger(__name__)

# last_used_at is a hint for people, not a log: one write a minute per token is plenty.
TOUCH_EVERY = timedelta(minutes=1)
SIGNED_IN_VIA_API = "Signed in via the API"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def create_token(
    *,
    session: Session,
    user: User,
    name: str,
    scope: str,
    expires_at: datetime | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A named token and its secret (shown to the caller once; only the hash is stored).

    Raises InvalidInput for an empty or long name, an unknown scope or an expiry in the past.
    """
    now = now or queries.now()
    name = " ".join(checked_text(name or "", "name", visible=True).split())
    if not 1 <= len(name) <= 120:
        raise InvalidInput("A token needs a name of 1 to 120 characters.", field="name")
    if scope not in TOKEN_SCOPES:
        raise InvalidInput("The scope is read or write.", field="scope")
    if expires_at is not None:
        expires_at = _aware(expires_at)
        if expires_at <= now:
            raise InvalidInput("The expiry must be in the future.", field="expires_at")
    secret = new_secret()
    token = ApiToken(
        user_id=user.id,
        token_hash=secret_hash(secret),
        name=name,
        scope=scope,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        type="token_created",
        actor_id=user.id,
        ip=ip,
        data={"token_id": token.id, "name": name, "scope": scope},
        now=now,
    )
    return token, secret


def tokens_of(
    *, session: Session, user: User, limit: int = 1000, offset: int = 0
) -> Sequence[ApiToken]:
    """The user's tokens that were not revoked (expired ones too, so they can be tidied)."""
    return queries.tokens_of_user(session, user.id, limit=limit, offset=offset)


def revoke_token(
    *,
    session: Session,
    user: User,
    token_id: int,
    ip: str | None = None,
    now: datetime | None = None,
) -> ApiToken:
    """Revokes one of the user's own tokens. Raises NotFound for others' or revoked ones."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        raise NotFound("No such token among yours.")
    token.revoked_at = now or queries.now()
    session.flush()
    audit.record(
        session,
        type="token_revoked",
        actor_id=user.id,
        ip=ip,
        data={"token_id": token.id, "name": token.name},
        now=now,
    )
    return token


def revoke_all(
    *, session: Session, user_id: int, keep_id: int | None = None, now: datetime | None = None
) -> int:
    """Revokes every live token of the user except `keep_id`; returns how many."""
    stmt = update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    if keep_id is not None:
        stmt = stmt.where(ApiToken.id != keep_id)
    result = session.execute(
        stmt.values(revoked_at=now or queries.now()).execution_options(synchronize_session=False)
    )
    notify.access_changed(session, [user_id])
    return int(getattr(result, "rowcount", 0) or 0)


def touch_due(token: ApiToken, now: datetime) -> bool:
    return token.last_used_at is None or now - _aware(token.last_used_at) >= TOUCH_EVERY


def touch_apart(database: Database, token_id: int, now: datetime) -> None:
    """Sets last_used_at in a transaction of its own (for reads, whose session never commits).

    Never raises: a missed "last used" must not fail the request it follows.
    """
    try:
        with database.unit_of_work() as session:
            session.execute(
                update(ApiToken)
                .where(
                    ApiToken.id == token_id,
                    or_(
                        ApiToken.last_used_at.is_(None),
                        ApiToken.last_used_at <= now - TOUCH_EVERY,
                    ),
                )
                .values(last_used_at=now)
                .execution_options(synchronize_session=False)
            )
    except Exception:  # logged; the answer was already sent
        log.warning("could not note the use of token %s", token_id, exc_info=True)


def display_name(token: ApiToken) -> str:
    return token.name or SIGNED_IN_VIA_API
