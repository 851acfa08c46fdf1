"""My account: change my password, my API tokens; and the one-time password reset link.

The reset page is used before any session exists, so its form carries the signed
double-submit token of /login and /setup instead of a session's CSRF token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.client import client_ip
from app.db import queries
from app.db.models import ApiToken, User
from app.deps import DbSession, commit
from app.flow.errors import FlowError, InvalidInput, WrongCurrentPassword
from app.inputs import Id
from app.services import throttle, tokens, users
from app.web.common import header_summary, see_other
from app.web.deps import (
    PRE_AUTH_COOKIE,
    PRE_AUTH_MAX_AGE,
    CsrfRefused,
    FormData,
    WebUser,
    cookie_secure,
    new_pre_auth_token,
    pre_auth_ok,
)
from app.web.templating import render

router = APIRouter()

# The Tokens page offers these lifetimes (days; None: never expires).
EXPIRY_CHOICES: list[tuple[str, int | None]] = [
    ("Never", None),
    ("7 days", 7),
    ("30 days", 30),
    ("90 days", 90),
    ("1 year", 365),
]
NO_STORE = {"Cache-Control": "no-store"}


def _account_page(
    request: Request,
    session: Session,
    user: User,
    *,
    alert: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "alert": alert,
        "notice": notice,
        "summary": header_summary(session, user),
        "nav_current": "account",
    }
    return render(request, "account/account.html", context, status_code=status_code)


@router.get("/account")
def account(request: Request, session: DbSession, user: WebUser) -> Response:
    notice = None
    if request.query_params.get("changed") == "1":
        notice = "Your password was changed. Your other sessions and API tokens were ended."
    return _account_page(request, session, user, notice=notice)


@router.post("/account/password")
def change_password(
    request: Request, session: DbSession, user: WebUser, form: FormData
) -> Response:
    """Ends my other browser sessions and my API tokens; this session stays signed in."""
    try:
        if form.get("new_password", "") != form.get("new_password2", ""):
            raise InvalidInput("The two new passwords differ; type the same one twice.")
        throttle.change_password(
            session=session,
            user=user,
            current_password=form.get("current_password", ""),
            new_password=form.get("new_password", ""),
            keep_session_id=request.state.web_session.id,
            ip=client_ip(request),
        )
        commit(session)
    except WrongCurrentPassword as error:
        commit(session)  # the counted failure outlives the refusal
        return _account_page(request, session, user, alert=error.detail, status_code=error.status)
    except FlowError as error:
        session.rollback()
        return _account_page(request, session, user, alert=error.detail, status_code=error.status)
    return see_other("/account?changed=1")


def _tokens_page(
    request: Request,
    session: Session,
    user: User,
    *,
    alert: str | None = None,
    created: tuple[ApiToken, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    now = queries.now()
    rows = [
        {
            "token": token,
            "name": tokens.display_name(token),
            "expired": token.expires_at is not None and token.expires_at <= now,
        }
        for token in tokens.tokens_of(session=session, user=user)
    ]
    context: dict[str, Any] = {
        "rows": rows,
        "alert": alert,
        "created": created,
        "values": values or {},
        "expiry_choices": EXPIRY_CHOICES,
        "summary": header_summary(session, user),
        "nav_current": "account",
    }
    # A new token's secret is in this page: never cache it.
    return render(
        request, "account/tokens.html", context, status_code=status_code, headers=NO_STORE
    )


@router.get("/account/tokens")
def list_tokens(request: Request, session: DbSession, user: WebUser) -> Response:
    return _tokens_page(request, session, user)


def _expiry_days(value: str | None) -> int | None:
    allowed = {str(days): days for _, days in EXPIRY_CHOICES if days is not None}
    if not value or value == "never":
        return None
    if value not in allowed:
        raise InvalidInput("Choose one of the offered lifetimes.", field="expires_in_days")
    return allowed[value]


@router.post("/account/tokens")
def create_token(request: Request, session: DbSession, user: WebUser, form: FormData) -> Response:
    """Creates a token and shows its secret on this answer only (never again)."""
    values = {k: form.get(k, "") for k in ("name", "scope", "expires_in_days")}
    try:
        days = _expiry_days(form.get("expires_in_days"))
        now = queries.now()
        created = tokens.create_token(
            session=session,
            user=user,
            name=form.get("name", ""),
            scope=form.get("scope", ""),
            expires_at=now + timedelta(days=days) if days else None,
            ip=client_ip(request),
            now=now,
        )
        commit(session)
    except FlowError as error:
        session.rollback()
        return _tokens_page(
            request, session, user, alert=error.detail, values=values, status_code=error.status
        )
    return _tokens_page(request, session, user, created=created, status_code=201)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, session: DbSession, user: WebUser, token_id: Id) -> Response:
    try:
        tokens.revoke_token(session=session, user=user, token_id=token_id, ip=client_ip(request))
        commit(session)
    except FlowError as error:
        session.rollback()
        return _tokens_page(request, session, user, alert=error.detail, status_code=error.status)
    return see_other("/account/tokens")


# ---- The one-time reset link (`flowboard reset-password EMAIL`) ----


def _reset_form(request: Request, context: dict[str, object], status_code: int = 200) -> Response:
    """The reset form with a fresh signed double-submit token (cookie + field), as /login."""
    cookie, value = new_pre_auth_token()
    response = render(
        request, "account/reset.html", {"form_token": value, **context}, status_code=status_code
    )
    response.set_cookie(
        PRE_AUTH_COOKIE,
        cookie,
        max_age=PRE_AUTH_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path="/",
    )
    response.headers.update(NO_STORE)
    # The secret is in this page's address: never hand it on to other sites.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _dead_link(request: Request) -> Response:
    response = render(
        request, "account/reset.html", {"dead": True}, status_code=404, headers=NO_STORE
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/reset-password/{secret}")
def reset_page(request: Request, session: DbSession, secret: str) -> Response:
    person = users.password_reset_user(session=session, secret=secret[:200])
    if person is None:
        return _dead_link(request)
    return _reset_form(request, {"person": person, "secret": secret, "error": ""})


@router.post("/reset-password/{secret}")
def reset_password(request: Request, session: DbSession, form: FormData, secret: str) -> Response:
    """Sets the new password once; the link is dead afterwards and every session and token of
    that person ends. Then they sign in with the new password."""
    if not pre_auth_ok(request, form.get("csrf_token")):
        raise CsrfRefused
    secret = secret[:200]
    person = users.password_reset_user(session=session, secret=secret)
    if person is None:
        return _dead_link(request)
    new_password = form.get("new_password", "")
    context: dict[str, object] = {"person": person, "secret": secret}
    if new_password != form.get("new_password2", ""):
        error = "The two passwords differ; type the same password twice."
        return _reset_form(request, {**context, "error": error}, status_code=422)
    try:
        users.use_password_reset(
            session=session, secret=secret, new_password=new_password, ip=client_ip(request)
        )
        commit(session)
    except FlowError as error:
        session.rollback()
        if error.status == 404:
            return _dead_link(request)
        return _reset_form(request, {**context, "error": error.detail}, status_code=error.status)
    response = render(request, "account/reset.html", {"done": True}, headers=NO_STORE)
    response.delete_cookie(PRE_AUTH_COOKIE, path="/")
    return response
