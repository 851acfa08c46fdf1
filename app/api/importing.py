"""Import with history: POST /api/v1/boards/{board_id}/import (managers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from app.api.deps import CurrentUser, DbSession, commit
from app.inputs import Id
from app.services.importing import import_history

router = APIRouter(prefix="/boards/{board_id}", tags=["import"])


@router.post("/import")
def import_items(
    board_id: Id,
    session: DbSession,
    user: CurrentUser,
    payload: dict[str, Any] = Body(
        ...,
        examples=[
            {
                "items": [
                    {
                        "title": "Supplier contract review",
                        "class_of_service": "standard",
                        "created_at": "2026-03-02T09:00:00Z",
                        "history": [
                            {"at": "2026-03-03T10:00:00Z", "state": "Build"},
                            {"at": "2026-03-05T16:00:00Z", "state": "Build", "stage": "ready"},
                        ],
                        "blocks": [
                            {
                                "reason": "Waiting for decision",
                                "from": "2026-03-04T09:00:00Z",
                                "to": "2026-03-04T15:00:00Z",
                                "note": "Budget owner away",
                            }
                        ],
                    }
                ]
            }
        ],
    ),
) -> dict[str, int]:
    """Validates the whole payload first: any problem is 422 listing {item, field, message}
    and nothing is stored. Returns {imported: N}."""
    count = import_history(session=session, board_id=board_id, actor=user, payload=payload)
    commit(session)
    return {"imported": count}
