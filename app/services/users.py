"""User use cases: accounts, signing in with a password, bearer tokens and browser sessions,
and the account lifecycle: password change, deactivation, one-time reset links, idle timeout."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, text, update
from sqlalchemy.orm import Session

from app.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from app.auth.tokens import new_secret, secret_hash
from app.config import get_settings
from app.db import queries
from app.db.models import ApiToken, PasswordReset, User, WebSession
from app.db.session import Database
from app.flow.errors import (
    EmailTaken,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    WrongCurrentPassword,
)
from app.flow.rules import require_role
from app.flow.text import checked_text
from app.live import notify
from app.services import audit, tokens

log = logging.getLogger(__name__)
# A browser session's last_seen_at is written at most this often (not once per request).
SEEN_EVERY = timedelta(minutes=1)
RESET_LINK_HOURS = 24
MAX_PASSWORD_LENGTH = 1000  # bounds the hashing work a request can ask for


def _check_new_password(password: str | None, *, field: str | None = None) -> None:
    extra = {"field": field} if field else {}
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.", **extra)
    if len(password or "") > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"A password has at most {MAX_PASSWORD_LENGTH} characters.", **extra)


def _clean_name(name: str) -> str:
    name = " ".join(checked_text(name or "", "name", visible=True).split())
    if not 1 <= len(name) <= 120:
        raise InvalidInput("A name needs 1 to 120 characters.")
    return name


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
    name = _clean_name(name)
    _check_new_password(password)
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


def user_for_token(
    *, session: Session, token: str, now: datetime | None = None
) -> tuple[User, ApiToken] | None:
    """The token's active user; None for unknown, revoked and expired tokens."""
    return queries.user_for_token(session, secret_hash(token), now or queries.now())


def revoke_token(
    *, session: Session, token: ApiToken, ip: str | None = None, now: datetime | None = None
) -> None:
    token.revoked_at = now or queries.now()
    session.flush()
    audit.record(
        session,
        type="token_revoked",
        actor_id=token.user_id,
        ip=ip,
        data={"token_id": token.id, "name": token.name},
        now=now,
    )


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
        last_seen_at=now,
    )
    session.add(web_session)
    session.flush()
    return secret, web_session


def user_for_web_session(
    *, session: Session, secret: str, now: datetime | None = None
) -> tuple[User, WebSession] | None:
    """The session's active user; None once it ended, expired or sat idle too long."""
    now = now or queries.now()
    idle = timedelta(hours=get_settings().session_idle_hours)
    return queries.user_for_web_session(session, secret_hash(secret), now, idle_since=now - idle)


def seen_due(web_session: WebSession, now: datetime) -> bool:
    seen = web_session.last_seen_at or web_session.created_at
    return now - _aware(seen) >= SEEN_EVERY


def mark_seen_apart(database: Database, web_session_id: int, now: datetime) -> None:
    """Sets last_seen_at in a transaction of its own (for reads, whose session never commits).

    Never raises: a missed bump must not fail the page it follows.
    """
    try:
        with database.unit_of_work() as session:
            session.execute(
                update(WebSession)
                .where(
                    WebSession.id == web_session_id,
                    or_(
                        WebSession.last_seen_at.is_(None),
                        WebSession.last_seen_at <= now - SEEN_EVERY,
                    ),
                )
                .values(last_seen_at=now)
                .execution_options(synchronize_session=False)
            )
    except Exception:  # logged; the page was already sent
        log.warning("could not note activity of session %s", web_session_id, exc_info=True)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def end_web_session(
    *, session: Session, web_session: WebSession, now: datetime | None = None
) -> None:
    web_session.ended_at = now or queries.now()
    session.flush()


def end_web_sessions(
    *, session: Session, user_id: int, keep_id: int | None = None, now: datetime | None = None
) -> int:
    """Ends every open browser session of the user except `keep_id`; returns how many."""
    stmt = update(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
    if keep_id is not None:
        stmt = stmt.where(WebSession.id != keep_id)
    result = session.execute(
        stmt.values(ended_at=now or queries.now()).execution_options(synchronize_session=False)
    )
    notify.access_changed(session, [user_id])
    return int(getattr(result, "rowcount", 0) or 0)


def _set_password(
    session: Session,
    user: User,
    password: str,
    *,
    keep_session_id: int | None,
    keep_token_id: int | None,
    now: datetime,
) -> None:
    """The new password; every other session and token of the user ends with the old one."""
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    session.flush()
    end_web_sessions(session=session, user_id=user.id, keep_id=keep_session_id, now=now)
    tokens.revoke_all(session=session, user_id=user.id, keep_id=keep_token_id, now=now)


def change_password(
    *,
    session: Session,
    user: User,
    current_password: str,
    new_password: str,
    keep_session_id: int | None = None,
    keep_token_id: int | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> None:
    """Changes the user's own password and ends their other sessions and tokens; the session
    or token used for the change (`keep_*`) stays valid.

    Raises InvalidInput (422) for a wrong current password or a new one under 8 characters.
    """
    now = now or queries.now()
    if not verify_password(user.password_hash, current_password or ""):
        raise WrongCurrentPassword("The current password is not right.", field="current_password")
    _check_new_password(new_password, field="new_password")
    _set_password(
        session,
        user,
        new_password,
        keep_session_id=keep_session_id,
        keep_token_id=keep_token_id,
        now=now,
    )
    audit.record(session, type="password_changed", actor_id=user.id, ip=ip, now=now)


def _require_admin(actor: User, doing: str) -> None:
    require_role("manager" if actor.is_admin else None, "manager", doing=doing)


def update_user(
    *,
    session: Session,
    actor: User,
    user_id: int,
    name: str | None = None,
    is_admin: bool | None = None,
    is_active: bool | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> User:
    """Site admins rename, promote or demote, deactivate or reactivate an account.

    Deactivating ends the person's sessions, tokens and live streams at once; their items,
    events and memberships stay. Raises InsufficientRole, NotFound, and InvalidInput when an
    admin would deactivate themselves or drop their own admin role (nobody could undo it).
    """
    _require_admin(actor, "change user accounts")
    now = now or queries.now()
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    if user.id == actor.id and (is_active is False or is_admin is False):
        raise InvalidInput(
            "You cannot deactivate your own account or drop your own admin role; ask another admin."
        )
    if name is not None:
        user.name = _clean_name(name)
    if is_admin is not None and is_admin != user.is_admin:
        user.is_admin = is_admin
        audit.record(
            session,
            type="role_changed",
            actor_id=actor.id,
            ip=ip,
            data={"user_id": user.id, "is_admin": is_admin},
            now=now,
        )
    if is_active is False and user.is_active:
        user.is_active = False
        user.deactivated_at = now
        session.flush()
        end_web_sessions(session=session, user_id=user.id, now=now)
        tokens.revoke_all(session=session, user_id=user.id, now=now)
        audit.record(
            session,
            type="user_deactivated",
            actor_id=actor.id,
            ip=ip,
            data={"user_id": user.id},
            now=now,
        )
    elif is_active is True and not user.is_active:
        user.is_active = True
        user.deactivated_at = None
        audit.record(
            session,
            type="user_reactivated",
            actor_id=actor.id,
            ip=ip,
            data={"user_id": user.id},
            now=now,
        )
    session.flush()
    return user


def issue_password_reset(
    *, session: Session, email: str, now: datetime | None = None
) -> tuple[User, str, PasswordReset]:
    """A one-time reset link's secret for the account (valid 24 h); only its hash is stored.

    Raises NotFound for an unknown email, InvalidInput for a deactivated account.
    """
    now = now or queries.now()
    user = queries.user_by_email(session, email or "")
    if user is None:
        raise NotFound(f"No account has the email {email.strip()[:254]!r}.")
    if not user.is_active:
        raise InvalidInput("That account is deactivated; an admin reactivates it first.")
    secret = new_secret()
    reset = PasswordReset(
        user_id=user.id,
        token_hash=secret_hash(secret),
        created_at=now,
        expires_at=now + timedelta(hours=RESET_LINK_HOURS),
    )
    session.add(reset)
    session.flush()
    audit.record(
        session,
        type="password_reset_issued",
        data={"user_id": user.id, "reset_id": reset.id},
        now=now,
    )
    return user, secret, reset


def password_reset_user(
    *, session: Session, secret: str, now: datetime | None = None
) -> User | None:
    """The person a reset link is for, while it is unused and unexpired; else None."""
    found = queries.password_reset(session, secret_hash(secret), now or queries.now())
    return found[1] if found else None


def use_password_reset(
    *,
    session: Session,
    secret: str,
    new_password: str,
    ip: str | None = None,
    now: datetime | None = None,
) -> User:
    """Sets the new password through a reset link, once: the link (and any other pending link
    of that person) is dead afterwards, and all their sessions and tokens end.

    Raises NotFound for an unknown, used or expired link, InvalidInput for a short password.
    """
    now = now or queries.now()
    found = queries.password_reset(session, secret_hash(secret), now)
    if found is None:
        raise NotFound("This reset link is unknown, used or expired; ask an admin for a new one.")
    reset, user = found
    _check_new_password(new_password, field="new_password")
    # One winner when the link is used twice at once: only one UPDATE finds it unused.
    claimed = session.execute(
        update(PasswordReset)
        .where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(claimed, "rowcount", 0) or 0) != 1:
        raise NotFound("This reset link was used a moment ago; ask an admin for a new one.")
    session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    _set_password(session, user, new_password, keep_session_id=None, keep_token_id=None, now=now)
    audit.record(
        session,
        type="password_reset_used",
        actor_id=user.id,
        ip=ip,
        data={"reset_id": reset.id},
        now=now,
    )
    return user
