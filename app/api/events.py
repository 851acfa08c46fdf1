"""The audit trail of a board, for clients that follow it by id (the SSE stream lives apart)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentUser, DbSession
from app.api.schemas import EventOut
from app.db import queries
from app.inputs import Id, NonNegativeInt
from app.services.access import visible_board

router = APIRouter(tags=["events"])


@router.get("/boards/{board_id}/events", response_model=list[EventOut])
def board_events(
    board_id: Id,
    session: DbSession,
    actor: CurrentUser,
    after_id: Annotated[NonNegativeInt, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventOut]:
    """Events with an id above `after_id`, in id order: pass the last id seen to read on."""
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    found = queries.events_of_board(session, board.id, after_id=after_id, limit=limit)
    return [EventOut.of(event) for event in found]
