"""Idempotency-Key on the API's create routes: a retried create answers its first result.

The key's answer is stored in the create's own transaction (app/services/idempotency.py), so a
client that timed out may send the same request again without making a second item, block,
comment, board, state, criterion or block reason. Creating users (the email is unique) and
tokens (the answer holds a secret that must not be stored) do not take a key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.db.models import User
from app.deps import commit
from app.services import idempotency

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        pattern=idempotency.KEY_PATTERN,
        description="Any unique string (a UUID): a repeat with the same key and body within "
        "24 h answers the first result (with `Idempotent-Replayed: true`) and creates nothing; "
        "the same key with another body is 422.",
    ),
]


def create_once(
    session: Session,
    request: Request,
    *,
    actor: User,
    key: str | None,
    body: BaseModel,
    create: Callable[[], tuple[BaseModel, str]],
) -> JSONResponse:
    """201 with `create()`'s answer and Location, committed; or, for a key already used with
    this body, the first answer again (nothing created). `create` must not commit.

    Raises InvalidInput (422) for a key already used with another body, and whatever `create`
    raises (a refusal stores no key, so the same key may try again).
    """
    key_row = None
    if key is not None:
        claimed = idempotency.claim(
            session,
            user_id=actor.id,
            scope=f"{request.method} {request.url.path}",
            key=key,
            request_hash=idempotency.fingerprint(body.model_dump(mode="json")),
        )
        if isinstance(claimed, idempotency.Answer):
            headers = {"Idempotent-Replayed": "true"}
            if claimed.location:
                headers["Location"] = claimed.location
            return JSONResponse(claimed.body, status_code=claimed.status_code, headers=headers)
        key_row = claimed
    out, location = create()
    payload = out.model_dump(mode="json", by_alias=True)
    if key_row is not None:
        idempotency.remember(session, key_row, status_code=201, body=payload, location=location)
    commit(session)
    return JSONResponse(payload, status_code=201, headers={"Location": location})
