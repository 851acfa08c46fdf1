"""SELECTs (and the row locks) for the audit trail and sign-in throttling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.db.models import AuditEvent, Board, Item, SignInThrottle, User

# ------------------------------------------------------------------ sign-in throttling


def lock_throttle_rows(
    session: Session, keys: Sequence[str], now: datetime
) -> dict[str, SignInThrottle]:
    """The throttle rows of `keys`, created empty when missing and locked FOR UPDATE until the
    transaction ends, so racing attempts on one address or account count one after another.

    Keys are inserted and locked in sorted order, so two attempts never wait on each other in
    a cycle. On SQLite the write transaction (BEGIN IMMEDIATE) already serialises them.
    """
    ordered = sorted(set(keys))
    rows = [{"key": key, "failures": 0, "last_failure_at": now} for key in ordered]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(SignInThrottle).values(rows).on_conflict_do_nothing())
    found = session.scalars(
        select(SignInThrottle)
        .where(SignInThrottle.key.in_(ordered))
        .order_by(SignInThrottle.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    return {row.key: row for row in found}


def forget_throttle_rows(session: Session, keys: Sequence[str]) -> None:
    session.execute(delete(SignInThrottle).where(SignInThrottle.key.in_(list(keys))))


def signed_in_from(session: Session, user_id: int, ip: str) -> bool:
    """Whether this account has signed in from this address before (its `signed_in` audit)."""
    found = session.scalar(
        select(AuditEvent.id)
        .where(
            AuditEvent.type == "signed_in",
            AuditEvent.actor_id == user_id,
            AuditEvent.ip == ip[:64],
        )
        .limit(1)
    )
    return found is not None


# ------------------------------------------------------------------ the audit trail


@dataclass(frozen=True)
class AuditFilter:
    """What an admin narrows the trail to; None means any."""

    type: str | None = None
    actor_id: int | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def _filtered(filters: AuditFilter) -> Select[AuditEvent]:
    query = select(AuditEvent)
    if filters.type is not None:
        query = query.where(AuditEvent.type == filters.type)
    if filters.actor_id is not None:
        query = query.where(AuditEvent.actor_id == filters.actor_id)
    if filters.since is not None:
        query = query.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.at < filters.until)
    return query


def audit_after(
    session: Session, filters: AuditFilter, *, after_id: int | None, limit: int
) -> Sequence[AuditEvent]:
    """Oldest first, after `after_id` (the API's cursor)."""
    query = _filtered(filters)
    if after_id is not None:
        query = query.where(AuditEvent.id > after_id)
    return session.scalars(query.order_by(AuditEvent.id).limit(limit)).all()


def audit_before(
    session: Session, filters: AuditFilter, *, before_id: int | None, limit: int
) -> Sequence[AuditEvent]:
    """Newest first, before `before_id` (the admin page reads the latest first)."""
    query = _filtered(filters)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)).all()


def emails_of(session: Session, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all()
    return {user_id: email for user_id, email in rows}


def board_of_item(session: Session, item_id: int) -> int | None:
    return session.scalar(select(Item.board_id).where(Item.id == item_id))


def board_exists(session: Session, board_id: int) -> bool:
    return session.get(Board, board_id) is not None
