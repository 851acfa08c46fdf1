"""Signing in with a password, throttled per client address and per account.

The rules (who waits how long) are app.flow.throttle's; this applies them to the
sign_in_throttle rows and records `signed_in`, `sign_in_failed` and `throttled` audit
events. A throttled attempt is refused before the password is looked at, so it costs no
hashing and its answer says nothing about the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.db import audit_queries, queries
from app.db.models import SignInThrottle, User
from app.flow import throttle as rules
from app.flow.errors import NotAuthenticated, TooManyAttempts, WrongCurrentPassword
from app.flow.text import text_problem
from app.services import audit, users


def address_key(ip: str) -> str:
    return "ip:" + (ip or "unknown")[:64]


def account_key(email: str) -> str:
    # Unknown emails are counted too: otherwise a 429 would tell which accounts exist. One
    # with control characters belongs to no account and cannot be stored (NUL): one bucket.
    if text_problem(email or "") is not None:
        return "account:(not an email)"
    return "account:" + (email or "").strip().lower()[:280]


def current_time() -> datetime:
    """The throttle's clock (tests move it instead of waiting)."""
    return queries.now()


def _counter(row: SignInThrottle | None) -> rules.Counter | None:
    if row is None:
        return None
    return rules.Counter(
        failures=row.failures, last_failure_at=row.last_failure_at, blocked_until=row.blocked_until
    )


@dataclass
class _Admitted:
    """An attempt the throttle lets through, with its locked counter rows."""

    address_row: SignInThrottle | None
    account_row: SignInThrottle | None
    account: User | None
    keys: tuple[str, str]


def _admit(session: Session, *, email: str, ip: str, now: datetime) -> _Admitted:
    """Locks this address's and account's counters; raises TooManyAttempts while blocked."""
    keys = address_key(ip), account_key(email)
    rows = audit_queries.lock_throttle_rows(session, keys, now)
    address_row, account_row = rows.get(keys[0]), rows.get(keys[1])
    address_wait = rules.wait_seconds(_counter(address_row), now)
    account_wait = rules.wait_seconds(_counter(account_row), now)
    account = queries.user_by_email(session, email or "") if email else None
    known = False
    if account_wait and account is not None:
        known = audit_queries.signed_in_from(session, account.id, ip)
    refused = rules.refusal(
        address_wait=address_wait, account_wait=account_wait, known_address=known
    )
    if refused is not None:
        raise TooManyAttempts(
            "Too many failed sign-ins "
            + ("from this address" if refused.scope == "address" else "for this account")
            + f": wait {rules.wait_in_words(refused.retry_after)}, then try again.",
            retry_after=refused.retry_after,
        )
    return _Admitted(address_row, account_row, account, keys)


def sign_in(
    *, session: Session, email: str, password: str, ip: str, now: datetime | None = None
) -> User:
    """The account whose email and password these are.

    Raises TooManyAttempts (`retry_after` seconds; nothing was verified, nothing changed)
    or NotAuthenticated, after adding the counted failure and its audit rows to `session`:
    the caller commits before answering, so the failure outlives the refusal.
    """
    now = now or current_time()
    ip = ip[:64]
    admitted = _admit(session, email=email, ip=ip, now=now)
    address_row, account_row, account, keys = (
        admitted.address_row,
        admitted.account_row,
        admitted.account,
        admitted.keys,
    )
    try:
        user = users.authenticate(session=session, email=email, password=password)
    except NotAuthenticated:
        _count_failure(session, address_row, account_row, account=account, ip=ip, now=now)
        raise
    # A success clears both counters: this address is now known to the account, and the
    # account's failures (the person's own typos, or a guesser's) no longer hold it back.
    audit_queries.forget_throttle_rows(session, keys)
    audit.record(
        session,
        type="signed_in",
        actor_id=user.id,
        ip=ip,
        data={"email": user.email},
        now=now,
    )
    session.flush()
    return user


def change_password(
    *,
    session: Session,
    user: User,
    current_password: str,
    new_password: str,
    ip: str,
    keep_session_id: int | None = None,
    keep_token_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """users.change_password, throttled like signing in: a wrong current password counts as a
    failed sign-in of this account from this address, so a stolen session cannot be used to
    guess the password.

    Raises TooManyAttempts, or WrongCurrentPassword after adding the counted failure to
    `session` (the caller commits it before answering), or InvalidInput for the new password.
    """
    now = now or current_time()
    ip = ip[:64]
    admitted = _admit(session, email=user.email, ip=ip, now=now)
    try:
        users.change_password(
            session=session,
            user=user,
            current_password=current_password,
            new_password=new_password,
            keep_session_id=keep_session_id,
            keep_token_id=keep_token_id,
            ip=ip,
            now=now,
        )
    except WrongCurrentPassword:
        _count_failure(
            session,
            admitted.address_row,
            admitted.account_row,
            account=user,
            ip=ip,
            now=now,
        )
        raise


def _count_failure(
    session: Session,
    address_row: SignInThrottle | None,
    account_row: SignInThrottle | None,
    *,
    account: User | None,
    ip: str,
    now: datetime,
) -> None:
    # Typed-in text that matches no account is not kept: it is often a password.
    who = {"email": account.email} if account is not None else {"account": "unknown"}
    actor_id = account.id if account is not None else None
    audit.record(session, type="sign_in_failed", actor_id=actor_id, ip=ip, data=who, now=now)
    for row, scope, cap in (
        (address_row, "address", rules.ADDRESS_MAX_DELAY),
        (account_row, "account", rules.ACCOUNT_MAX_DELAY),
    ):
        if row is None:  # the rows were created just before; only a concurrent reset removes one
            continue
        counted = rules.after_failure(_counter(row), now, cap=cap)
        row.failures = counted.failures
        row.last_failure_at = now
        row.blocked_until = counted.blocked_until
        if counted.blocked_until is not None:
            # Once per failure that starts or lengthens a block, never per refused attempt,
            # so a flood of refused attempts writes nothing.
            audit.record(
                session,
                type="throttled",
                actor_id=actor_id,
                ip=ip,
                data={
                    **who,
                    "scope": scope,
                    "failures": counted.failures,
                    "wait_seconds": int((counted.blocked_until - now) / timedelta(seconds=1)),
                },
                now=now,
            )
    session.flush()
