"""The admins' audit trail: record security-relevant happenings (sign-ins, refusals, role and
token changes, overrides) in the request's transaction or, for refusals whose transaction is
rolled back, in one of their own."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.auth.tokens import secret_hash
from app.db import audit_queries, queries
from app.db.audit_queries import AuditFilter
from app.db.models import AuditEvent, User
from app.db.session import Database
from app.flow.errors import InsufficientRole, InvalidInput
from app.services.analytics import neutralise

log = logging.getLogger(__name__)

AUDIT_TYPES = (
    "signed_in",
    "sign_in_failed",
    "signed_out",
    "throttled",
    "permission_refused",
    "role_changed",
    "member_added",
    "member_removed",
    "user_created",
    "user_deactivated",
    "user_reactivated",
    "password_changed",
    "password_reset_issued",
    "password_reset_used",
    "token_created",
    "token_revoked",
    "wip_override",
    "criteria_override",
)


def record(
    session: Session,
    *,
    type: str,
    actor_id: int | None = None,
    ip: str | None = None,
    board_id: int | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Adds an audit row to `session`'s transaction (it commits or rolls back with the action)."""
    assert type in AUDIT_TYPES, type
    row = AuditEvent(
        at=now or queries.now(),
        type=type,
        actor_id=actor_id,
        ip=(ip or None) and ip[:64],
        board_id=board_id,
        data=data or {},
    )
    session.add(row)
    return row


def record_apart(database: Database, **fields: Any) -> None:
    """Records in a transaction of its own, for refusals whose own transaction is rolled back.

    Never raises: an audit row that cannot be written must not turn a clean refusal into a 500.
    """
    try:
        with database.unit_of_work() as session:
            record(session, **fields)
    except Exception:  # logged; the refusal still reaches the client
        log.warning("could not record audit event %s", fields.get("type"), exc_info=True)


def record_refusal(
    database: Database,
    *,
    actor_id: int | None,
    bearer_token: str | None = None,
    ip: str | None,
    method: str,
    path: str,
    board_id: int | None,
    item_id: int | None,
    detail: str,
) -> None:
    """`permission_refused` for a 403 insufficient-role, apart from the refused request's
    (rolled back) transaction. The actor is `actor_id`, or whoever `bearer_token` belongs to;
    the board is `board_id`, or `item_id`'s. Never raises."""
    try:
        with database.unit_of_work() as session:
            if actor_id is None and bearer_token:
                found = queries.user_for_token(session, secret_hash(bearer_token))
                actor_id = found[0].id if found else None
            if board_id is None and item_id is not None:
                board_id = audit_queries.board_of_item(session, item_id)
            elif board_id is not None and not audit_queries.board_exists(session, board_id):
                board_id = None
            record(
                session,
                type="permission_refused",
                actor_id=actor_id,
                ip=ip,
                board_id=board_id,
                data={"method": method, "path": path[:300], "detail": detail[:500]},
            )
    except Exception:  # logged; the refusal still reaches the client
        log.warning("could not record a permission refusal", exc_info=True)


# ------------------------------------------------------------------ reading the trail (admins)

CSV_COLUMNS = ("id", "at", "type", "actor_id", "actor_email", "ip", "board_id", "data")
CSV_MAX_ROWS = 100_000


def require_admin(actor: User, *, doing: str = "read the audit trail") -> None:
    if not actor.is_admin:
        raise InsufficientRole(
            f"Only site admins can {doing}; ask one of them.", required_role="admin"
        )


def trail_filter(
    session: Session,
    *,
    type: str | None = None,
    actor_email: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> AuditFilter | None:
    """The filter for these choices (dates are whole UTC days, both included); None when
    nothing can match (an email without an account). Raises InvalidInput."""
    if type and type not in AUDIT_TYPES:
        raise InvalidInput(f"type must be one of {', '.join(AUDIT_TYPES)}.")
    if since and until and until < since:
        raise InvalidInput("The date range ends before it starts.")
    actor_id = None
    if actor_email and actor_email.strip():
        user = queries.user_by_email(session, actor_email)
        if user is None:
            return None
        actor_id = user.id
    return AuditFilter(
        type=type or None,
        actor_id=actor_id,
        since=datetime.combine(since, time(), UTC) if since else None,
        until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
    )


def events_after(
    *, session: Session, actor: User, type: str | None, after_id: int | None, limit: int
) -> Sequence[AuditEvent]:
    """The API's view: oldest first after `after_id`. Raises InsufficientRole, InvalidInput."""
    require_admin(actor)
    filters = trail_filter(session, type=type)
    assert filters is not None  # only an actor email can match nothing
    return audit_queries.audit_after(session, filters, after_id=after_id, limit=limit)


def trail_csv(*, session: Session, actor: User, filters: AuditFilter | None) -> str:
    """RFC 4180 text (CRLF), oldest first, at most CSV_MAX_ROWS rows; text cells neutralised
    against formula injection. Raises InsufficientRole."""
    require_admin(actor, doing="export the audit trail")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    after_id: int | None = None
    written = 0
    while filters is not None and written < CSV_MAX_ROWS:
        batch = audit_queries.audit_after(
            session, filters, after_id=after_id, limit=min(1000, CSV_MAX_ROWS - written)
        )
        if not batch:
            break
        emails = audit_queries.emails_of(session, {e.actor_id for e in batch if e.actor_id})
        for event in batch:
            writer.writerow(
                [
                    event.id,
                    event.at.isoformat().replace("+00:00", "Z"),
                    neutralise(event.type),
                    event.actor_id or "",
                    neutralise(emails.get(event.actor_id or 0, "")),
                    neutralise(event.ip or ""),
                    event.board_id or "",
                    neutralise(json.dumps(event.data, ensure_ascii=False, sort_keys=True)),
                ]
            )
        written += len(batch)
        after_id = batch[-1].id
    return buffer.getvalue()
