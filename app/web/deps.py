"""Web request dependencies: the session cookie, the signed-in user, CSRF and safe redirects."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import queries
from app.db.models import User, WebSession
from app.db.session import reads_before_write
from app.deps import WRITE_METHODS, DbSession, get_db
from app.services import users

SESSION_COOKIE = "flowboard_session"
PRE_AUTH_COOKIE = "flowboard_preauth"
PRE_AUTH_MAX_AGE = 30 * 60


class LoginRequired(Exception):
    """Raised by page dependencies; rendered as a redirect to /login (or /setup) by errors.py."""

    def __init__(self, next_path: str, *, setup: bool = False) -> None:
        self.next_path = next_path
        self.setup = setup


class CsrfRefused(Exception):
    """A state-changing request without the right token or from another origin: 403."""


def safe_next(value: str | None) -> str:
    """Only local paths: a single leading slash, no scheme, no host; anything else is '/'."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ch in value for ch in "\\\r\n\t") or "://" in value.split("?", 1)[0]:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(safe_next(next_path), safe="/")


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def origin_ok(request: Request) -> bool:
    """When the browser says where the request comes from, it must be this app."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == own_origin(request)
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}" == own_origin(request)
    return True


def cookie_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _session_from_cookie(request: Request, session: Session) -> tuple[User, WebSession] | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    return users.user_for_web_session(session=session, secret=secret)


async def form_data(request: Request) -> dict[str, str]:
    """The submitted form fields (text only; last value wins), parsed once per request."""
    content_type = request.headers.get("content-type", "")
    if request.method not in WRITE_METHODS or not content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        return {}
    form = await request.form()
    return {key: value for key, value in form.multi_items() if isinstance(value, str)}


FormData = Annotated[dict[str, str], Depends(form_data)]


def _note_activity(request: Request, background: BackgroundTasks, web_session: WebSession) -> None:
    """Keeps the session from idling out: last_seen_at, written at most once a minute."""
    now = queries.now()
    if not users.seen_due(web_session, now):
        return
    if request.method in WRITE_METHODS:  # saved with the request's own transaction
        web_session.last_seen_at = now
    else:  # pages that only read never commit: a short transaction of its own, after the answer
        background.add_task(users.mark_seen_apart, get_db(request), web_session.id, now)


def web_user(
    request: Request, session: DbSession, form: FormData, background: BackgroundTasks
) -> User:
    """The signed-in user; pages without one redirect to /login (or /setup on first run).

    On state-changing methods the synchronizer token and the origin are checked first
    (CsrfRefused: 403, nothing changed).
    """
    with reads_before_write(session):  # SQLite: the write lock waits for the route
        found = _session_from_cookie(request, session)
    if found is None:
        if request.method in WRITE_METHODS:
            raise CsrfRefused
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path, setup=queries.user_count(session) == 0)
    user, web_session = found
    if request.method in WRITE_METHODS:
        token = request.headers.get("x-csrf-token") or form.get("csrf_token") or ""
        if not origin_ok(request) or not hmac.compare_digest(
            token.encode(), web_session.csrf_token.encode()
        ):
            raise CsrfRefused
    _note_activity(request, background, web_session)
    request.state.user = user
    request.state.web_session = web_session
    request.state.csrf_token = web_session.csrf_token
    return user


WebUser = Annotated[User, Depends(web_user)]


# ---- Signed double-submit token for the forms used before a session exists (login, setup) ----


def _sign(value: str) -> str:
    key = get_settings().resolved_secret_key().encode()
    return hmac.new(key, b"preauth:" + value.encode(), hashlib.sha256).hexdigest()


def new_pre_auth_token() -> tuple[str, str]:
    """(cookie value, form value): the cookie carries value.signature, the form the value."""
    value = secrets.token_urlsafe(24)
    return f"{value}.{_sign(value)}", value


def pre_auth_ok(request: Request, form_value: str | None) -> bool:
    cookie = request.cookies.get(PRE_AUTH_COOKIE, "")
    value, _, signature = cookie.partition(".")
    if not value or not form_value or not origin_ok(request):
        return False
    return hmac.compare_digest(signature, _sign(value)) and hmac.compare_digest(value, form_value)
