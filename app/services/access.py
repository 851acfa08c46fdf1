"""Who may see what: board visibility (404 for non-members) and the actor's effective role."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db import queries
from app.db.models import Board, User
from app.db.queries import ItemRow
from app.flow.errors import NotFound
from app.flow.rules import require_role


def effective_role(user: User, role: str | None) -> str | None:
    """A site admin may do anything, so acts as a manager on every board."""
    return "manager" if user.is_admin else role


def visible_board(
    session: Session, *, board_id: int, actor: User, required: str = "viewer", doing: str = ""
) -> tuple[Board, str]:
    """The board and the actor's role on it. Raises NotFound (also for non-members)."""
    found = queries.board_with_role(session, board_id, actor.id)
    role = effective_role(actor, found[1]) if found else None
    if found is None or role is None:
        raise NotFound("No such board, or you are not a member of it.")
    require_role(role, required, doing=doing or "do that on this board")
    return found[0], role


def visible_item(session: Session, *, item_id: int, actor: User, lock: bool = False) -> ItemRow:
    """The item with its board and the actor's role. Raises NotFound (also for non-members)."""
    row = queries.item_row(session, item_id, actor.id, lock=lock)
    if row is None:
        raise NotFound("No such item, or you are not a member of its board.")
    row.role = effective_role(actor, row.role)
    if row.role is None:
        raise NotFound("No such item, or you are not a member of its board.")
    return row
