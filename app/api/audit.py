"""The audit trail for site admins: sign-ins, refusals, role and token changes, overrides."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import CurrentUser, DbSession
from app.api.openapi import problems
from app.db.models import AuditEvent
from app.inputs import NonNegativeInt, SingleLine
from app.services import audit

router = APIRouter(tags=["audit"])


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    type: str
    actor_id: int | None
    ip: str | None
    board_id: int | None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            at=event.at,
            type=event.type,
            actor_id=event.actor_id,
            ip=event.ip,
            board_id=event.board_id,
            data=event.data or {},
        )


@router.get("/audit", response_model=list[AuditEventOut], responses=problems(403))
def list_audit(
    session: DbSession,
    actor: CurrentUser,
    after_id: Annotated[NonNegativeInt | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[SingleLine | None, Query(max_length=40)] = None,
) -> list[AuditEventOut]:
    """Site admins only (others: 403 `insufficient-role`), oldest first. Page on with
    `after_id` = the last id received; `type` narrows to one kind (`signed_in`,
    `sign_in_failed`, `throttled`, `permission_refused`, `role_changed`, `member_added`,
    `member_removed`, `user_deactivated`, `token_created`, `token_revoked`, `wip_override`,
    `criteria_override`, ...); an unknown type is 422."""
    events = audit.events_after(
        session=session, actor=actor, type=type, after_id=after_id, limit=limit
    )
    return [AuditEventOut.of(event) for event in events]
