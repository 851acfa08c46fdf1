"""Idempotency-Key: a create repeated with the same key and body answers its first result.

A client that timed out cannot know whether its create was stored. Sending it again with the
same key is safe: the answer is stored in the same transaction as the create, so either both
exist or neither does, and a repeat within 24 hours gets that answer back instead of a second
item. Refusals (a full backlog, a role too low) store nothing: the create did not happen, so
the same key may try again.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import queries
from app.db.models import IdempotencyKey
from app.flow.errors import InvalidInput

HEADER = "Idempotency-Key"
FORM_FIELD = "idempotency_key"
TTL = timedelta(hours=24)
KEY_MAX = 200
# Visible ASCII only: keys travel in headers and hidden fields.
KEY_PATTERN = rf"^[\x21-\x7e]{{1,{KEY_MAX}}}$"
_KEY = re.compile(KEY_PATTERN)


@dataclass(frozen=True, slots=True)
class Answer:
    """The first result of a create, replayed as it was."""

    status_code: int
    body: dict[str, Any]
    location: str | None


def new_key() -> str:
    """A fresh key for one render of a form."""
    return secrets.token_urlsafe(18)


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise InvalidInput(
            f"{HEADER} must be 1 to {KEY_MAX} visible ASCII characters (a UUID works)."
        )
    return key


def fingerprint(payload: Any) -> str:
    """The request's identity for "same body": its parsed fields, key order ignored."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored(session: Session, *, user_id: int, scope: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
    )


def _answer(row: IdempotencyKey, request_hash: str) -> Answer:
    if row.request_hash != request_hash:
        raise InvalidInput(
            f"This {HEADER} was already used for a different request; use a new key for a new item."
        )
    return Answer(status_code=row.status_code, body=dict(row.response), location=row.location)


def claim(
    session: Session,
    *,
    user_id: int,
    scope: str,
    key: str,
    request_hash: str,
    now: datetime | None = None,
) -> Answer | IdempotencyKey:
    """Takes `key` for this create, or returns the answer already stored for it.

    Returns the stored Answer when this user sent the key to `scope` within 24 hours with the
    same request (the caller answers it and creates nothing); raises InvalidInput (422) for a
    different request. Otherwise returns the key's new row, added to the caller's transaction:
    the caller creates, then calls `remember`, then commits. A concurrent repeat waits on the
    row (unique constraint) until that transaction ends, then gets its answer.
    """
    check_key(key)
    now = now or queries.now()
    # Keys older than 24 h are forgotten: this user's are purged, so the key may be reused.
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.created_at < now - TTL
        )
    )
    found = _stored(session, user_id=user_id, scope=scope, key=key)
    if found is not None:
        return _answer(found, request_hash)
    row = IdempotencyKey(
        user_id=user_id,
        scope=scope,
        key=key,
        request_hash=request_hash,
        status_code=0,  # filled by remember() before the commit; never visible unfilled
        response={},
        location=None,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # A concurrent repeat committed first (PostgreSQL: this insert waited for it).
        found = _stored(session, user_id=user_id, scope=scope, key=key)
        if found is None:
            raise
        return _answer(found, request_hash)
    return row


def remember(
    session: Session,
    row: IdempotencyKey,
    *,
    status_code: int,
    body: dict[str, Any],
    location: str | None,
) -> None:
    """Stores the create's answer with the key, in the create's transaction."""
    row.status_code = status_code
    row.response = body
    row.location = location
    session.flush()
