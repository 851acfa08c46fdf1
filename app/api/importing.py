"""Import with history: POST /api/v1/boards/{board_id}/import (managers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from app.api.deps import CurrentUser, DbSession, commit
from app.api.openapi import component_schemas, problems
from app.api.schemas import ImportIn, ImportOut
from app.inputs import Id
from app.services.importing import import_history

router = APIRouter(prefix="/boards/{board_id}", tags=["import"])

EXAMPLE = {
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
# The body is documented as ImportIn (app.api.openapi adds it to the components) but read as
# plain JSON, so the service can list every problem of every item in one answer.
SCHEMAS = component_schemas(ImportIn)
BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/ImportIn"},
            "example": EXAMPLE,
        }
    },
}


@router.post(
    "/import",
    response_model=ImportOut,
    responses=problems(403),
    openapi_extra={"requestBody": BODY},
)
def import_items(
    board_id: Id,
    session: DbSession,
    user: CurrentUser,
    payload: Annotated[Any, Body()],
) -> ImportOut:
    """Validates the whole payload first: any problem is 422 listing {item, field, message}
    and nothing is stored. Returns {imported: N}."""
    count = import_history(session=session, board_id=board_id, actor=user, payload=payload)
    commit(session)
    return ImportOut(imported=count)
