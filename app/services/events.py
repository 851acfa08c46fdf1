"""Appending to the event log: every change is an Event row in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Event, Item


def record(
    session: Session,
    *,
    type: str,
    board_id: int,
    actor_id: int | None,
    at: datetime,
    item: Item | None = None,
    from_state_id: int | None = None,
    to_state_id: int | None = None,
    stage: str | None = None,
    **data: Any,
) -> Event:
    event = Event(
        board_id=board_id,
        item_id=item.id if item is not None else None,
        type=type,
        actor_id=actor_id,
        at=at,
        from_state_id=from_state_id,
        to_state_id=to_state_id,
        stage=stage,
        data={k: v for k, v in data.items() if v is not None},
    )
    session.add(event)
    return event
