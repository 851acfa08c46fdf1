"""The admins' audit trail: record security-relevant happenings (sign-ins, refusals, role and
token changes, overrides) in the request's transaction or, for refusals whose transaction is
rolled back, in one of their own."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.auth.tokens import secret_hash
from app.db import audit_queries, queries
from app.db.models import AuditEvent
from app.db.session import Database

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
