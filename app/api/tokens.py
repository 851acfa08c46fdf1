"""My API tokens: list, create (the secret is shown once) and revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import CurrentUser, DbSession, Paging, commit
from app.api.schemas import NewTokenOut, TokenIn, TokenOut
from app.client import client_ip
from app.db.models import ApiToken
from app.inputs import Id
from app.services import tokens

router = APIRouter(prefix="/tokens", tags=["tokens"])


def _out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        scope=token.scope,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
    )


@router.get("", response_model=list[TokenOut])
def list_tokens(session: DbSession, user: CurrentUser, page: Paging) -> list[TokenOut]:
    """Your tokens that were not revoked, newest first (expired ones too). Tokens from
    POST /auth/token have `name: null`."""
    found = tokens.tokens_of(session=session, user=user, limit=page.limit, offset=page.offset)
    return [_out(token) for token in found]


@router.post("", response_model=NewTokenOut, status_code=201)
def create_token(
    body: TokenIn, request: Request, session: DbSession, user: CurrentUser, response: Response
) -> NewTokenOut:
    """A named token with the `read` or `write` scope, optionally expiring. `token` is in this
    answer only: the server keeps just its hash. A read token gets 403 `insufficient-scope`
    on every POST, PUT, PATCH and DELETE."""
    token, secret = tokens.create_token(
        session=session,
        user=user,
        name=body.name,
        scope=body.scope,
        expires_at=body.expires_at,
        ip=client_ip(request),
    )
    commit(session)
    response.headers["Location"] = f"/api/v1/tokens/{token.id}"
    response.headers["Cache-Control"] = "no-store"
    return NewTokenOut(**_out(token).model_dump(), token=secret)


@router.delete("/{token_id}", status_code=204)
def revoke_token(token_id: Id, request: Request, session: DbSession, user: CurrentUser) -> Response:
    """Revoke one of your tokens (404 for others'); it stops working at once, live streams too."""
    tokens.revoke_token(session=session, user=user, token_id=token_id, ip=client_ip(request))
    commit(session)
    return Response(status_code=204)
