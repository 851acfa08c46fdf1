"""Signing in and out of the browser, and first-run setup of the first administrator."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.client import client_ip
from app.config import get_settings
from app.db import queries
from app.db.models import User
from app.deps import DbSession, commit
from app.flow.errors import FlowError, NotAuthenticated, TooManyAttempts
from app.services import throttle, users
from app.web.common import see_other
from app.web.deps import (
    PRE_AUTH_COOKIE,
    PRE_AUTH_MAX_AGE,
    SESSION_COOKIE,
    CsrfRefused,
    FormData,
    cookie_secure,
    new_pre_auth_token,
    pre_auth_ok,
    safe_next,
)
from app.web.templating import render

router = APIRouter()


def _pre_auth_form(
    request: Request, template: str, context: dict[str, object], status_code: int = 200
) -> Response:
    """Renders a pre-session form with a fresh signed double-submit token (cookie + field)."""
    cookie, value = new_pre_auth_token()
    response = render(request, template, {"form_token": value, **context}, status_code=status_code)
    response.set_cookie(
        PRE_AUTH_COOKIE,
        cookie,
        max_age=PRE_AUTH_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _sign_in(request: Request, session: Session, user: User, target: str) -> Response:
    # A new session id at every sign-in; an old cookie (if any) is ended, not reused.
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        found = users.user_for_web_session(session=session, secret=old)
        if found is not None:
            users.end_web_session(session=session, web_session=found[1])
    secret, _ = users.start_web_session(
        session=session, user=user, days=get_settings().session_days
    )
    commit(session)
    response = see_other(target)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=get_settings().session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path="/",
    )
    response.delete_cookie(PRE_AUTH_COOKIE, path="/")
    return response


@router.get("/login")
def login_page(request: Request, session: DbSession, next: str = "/") -> Response:
    if queries.user_count(session) == 0:
        return see_other("/setup")
    return _pre_auth_form(
        request, "login.html", {"next": safe_next(next), "email": "", "error": ""}
    )


@router.post("/login")
def login(request: Request, session: DbSession, form: FormData) -> Response:
    if not pre_auth_ok(request, form.get("csrf_token")):
        raise CsrfRefused
    target = safe_next(form.get("next"))
    email = form.get("email", "")
    context: dict[str, object] = {"next": target, "email": email[:254]}
    try:
        user = throttle.sign_in(
            session=session, email=email, password=form.get("password", ""), ip=client_ip(request)
        )
    except NotAuthenticated as error:
        commit(session)  # the counted failure outlives the refusal
        return _pre_auth_form(
            request, "login.html", {**context, "error": error.detail}, status_code=401
        )
    except TooManyAttempts as error:
        response = _pre_auth_form(
            request, "login.html", {**context, "error": error.detail}, status_code=429
        )
        response.headers["Retry-After"] = str(error.fields["retry_after"])
        return response
    return _sign_in(request, session, user, target)


@router.post("/logout")
def logout(request: Request, session: DbSession, form: FormData) -> Response:
    """Ends the session row (ended_at) and clears the cookie. Needs the session's CSRF token."""
    secret = request.cookies.get(SESSION_COOKIE)
    found = users.user_for_web_session(session=session, secret=secret) if secret else None
    if found is not None:
        token = request.headers.get("x-csrf-token") or form.get("csrf_token") or ""
        from app.web.deps import origin_ok

        if token != found[1].csrf_token or not origin_ok(request):
            raise CsrfRefused
        users.end_web_session(session=session, web_session=found[1])
        commit(session)
    response = see_other("/login")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/setup")
def setup_page(request: Request, session: DbSession) -> Response:
    if queries.user_count(session) > 0:
        return see_other("/login")
    return _pre_auth_form(request, "setup.html", {"name": "", "email": "", "error": ""})


@router.post("/setup")
def setup(request: Request, session: DbSession, form: FormData) -> Response:
    """Creates the first administrator and signs them in; refused once anyone has an account."""
    if queries.user_count(session) > 0:
        return see_other("/login")
    if not pre_auth_ok(request, form.get("csrf_token")):
        raise CsrfRefused
    name, email = form.get("name", ""), form.get("email", "")
    context: dict[str, object] = {"name": name[:120], "email": email[:254]}
    if form.get("password", "") != form.get("password2", ""):
        return _pre_auth_form(
            request,
            "setup.html",
            {**context, "error": "The two passwords differ; type the same password twice."},
            status_code=422,
        )
    try:
        user = users.create_first_admin(
            session=session, email=email, name=name, password=form.get("password", "")
        )
    except FlowError as error:
        session.rollback()
        return _pre_auth_form(
            request, "setup.html", {**context, "error": error.detail}, status_code=error.status
        )
    if user is None:  # someone else finished setting up a moment ago
        return see_other("/login")
    return _sign_in(request, session, user, "/")
