"""Signing in for API clients: OAuth2 password flow with revocable bearer tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from app.api.deps import CurrentToken, DbSession, commit
from app.client import client_ip
from app.flow.errors import NotAuthenticated
from app.services import throttle, users

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"


@router.post("/token", response_model=TokenOut)
def issue_token(
    request: Request, session: DbSession, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenOut:
    """Exchange an email (`username`) and password for a bearer token. Bad credentials: 401.
    After repeated failures from an address or for an account: 429 `too-many-attempts` with
    `Retry-After` (the password is then not checked at all)."""
    try:
        user = throttle.sign_in(
            session=session, email=form.username, password=form.password, ip=client_ip(request)
        )
    except NotAuthenticated:
        commit(session)  # the counted failure outlives the refusal
        raise
    token = users.issue_token(session=session, user=user)
    commit(session)
    return TokenOut(access_token=token)


@router.delete("/token", status_code=204)
def revoke_token(session: DbSession, found: CurrentToken) -> Response:
    """Revoke the token used for this request; it stops working at once."""
    users.revoke_token(session=session, token=found[1])
    commit(session)
    return Response(status_code=204)
