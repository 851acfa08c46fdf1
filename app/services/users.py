"""User use cases: accounts, signing in with a password, bearer tokens and browser sessions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from app.auth.tokens import new_secret, secret_hash
from app.db import queries
from app.db.models import ApiToken, User, WebSession
from app.flow.errors import EmailTaken, InvalidInput, NotAuthenticated
from app.flow.rules import require_role
from app.flow.text import checked_text


def _clean_email(email: str) -> str:
    cleaned = checked_text(email or "", "email").strip().lower()
    local, _, domain = cleaned.partition("@")
    if not local or "." not in domain or " " in cleaned or len(cleaned) > 254:
        raise InvalidInput("Give a valid email address, like ann@example.org.")
    return cleaned


def create_user(
    *,
    session: Session,
    email: str,
    name: str,
    password: str,
    is_admin: bool = False,
    actor: User | None = None,
    now: datetime | None = None,
) -> User:
    """Admins create users; `actor=None` is the command line or first-run setup.

    Raises InsufficientRole, EmailTaken, InvalidInput (short password, bad email).
    """
    if actor is not None:
        require_role("manager" if actor.is_admin else None, "manager", doing="create users")
    email = _clean_email(email)
    name = " ".join(checked_text(name or "", "name", visible=True).split())
    if not 1 <= len(name) <= 120:
        raise InvalidInput("A name needs 1 to 120 characters.")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if queries.user_by_email(session, email) is not None:
        raise EmailTaken(f"{email} already has an account; sign in or use another address.")
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password),
        is_admin=is_admin,
        created_at=now or queries.now(),
    )
    session.add(user)
    session.flush()
    return user


FIRST_ADMIN_LOCK = 0x466C6F77  # "Flow": one advisory lock id for first-run setup


def create_first_admin(*, session: Session, email: str, name: str, password: str) -> User | None:
    """The first account, an admin; None when anyone has an account already.

    Racing first-run setups must not both win: PostgreSQL takes a transaction-scoped advisory
    lock before counting; SQLite's write transaction (BEGIN IMMEDIATE) already serialises them.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FIRST_ADMIN_LOCK})
    if queries.user_count(session) > 0:
        return None
    return create_user(session=session, email=email, name=name, password=password, is_admin=True)


def authenticate(*, session: Session, email: str, password: str) -> User:
    """Raises NotAuthenticated for an unknown email or a wrong password (the same way)."""
    user = queries.user_by_email(session, email or "")
    ok = verify_password(user.password_hash if user else None, password or "")
    if user is None or not ok or not user.is_active:
        raise NotAuthenticated("That email and password do not match an account.")
    return user


def issue_token(*, session: Session, user: User) -> str:
    """A new bearer token; the caller sees it once, the database keeps only its hash."""
    token = new_secret()
    session.add(ApiToken(user_id=user.id, token_hash=secret_hash(token)))
    session.flush()
    return token


def user_for_token(*, session: Session, token: str) -> tuple[User, ApiToken] | None:
    return queries.user_for_token(session, secret_hash(token))


def revoke_token(*, session: Session, token: ApiToken, now: datetime | None = None) -> None:
    token.revoked_at = now or queries.now()
    session.flush()


def start_web_session(
    *, session: Session, user: User, days: int, now: datetime | None = None
) -> tuple[str, WebSession]:
    """A new browser session (a fresh id at every sign-in). Returns the cookie value."""
    now = now or queries.now()
    secret = new_secret()
    web_session = WebSession(
        token_hash=secret_hash(secret),
        user_id=user.id,
        csrf_token=new_secret(),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(web_session)
    session.flush()
    return secret, web_session


def user_for_web_session(
    *, session: Session, secret: str, now: datetime | None = None
) -> tuple[User, WebSession] | None:
    return queries.user_for_web_session(session, secret_hash(secret), now or queries.now())


def end_web_session(
    *, session: Session, web_session: WebSession, now: datetime | None = None
) -> None:
    web_session.ended_at = now or queries.now()
    session.flush()
