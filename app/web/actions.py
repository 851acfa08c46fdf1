"""Item actions shared by the board and the item page: parse the form, call one service."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.models import User
from app.flow.errors import InvalidInput, InvalidMove, NotFound
from app.services import blocks, items
from app.services.access import visible_item
from app.web.common import parse_int

ACTIONS = ("pull", "ready", "unready", "block", "unblock", "send-back", "discard")


def perform(
    session: Session,
    *,
    user: User,
    item_id: int,
    action: str,
    form: dict[str, str],
    board_id: int | None = None,
) -> None:
    """Runs `action` on the item through its service. Raises NotFound and the services' errors.

    With `board_id` (board routes) the item must be on that board: an id from another board in
    the URL is refused as not found, never acted on.
    """
    if action not in ACTIONS:
        raise NotFound("No such action.")
    row = visible_item(session, item_id=item_id, actor=user)
    if board_id is not None and row.item.board_id != board_id:
        raise NotFound("No such item on this board.")
    if action == "pull":
        items.pull_item(
            session=session,
            item_id=item_id,
            actor=user,
            to_state_id=parse_int(form.get("to_state_id"), "to_state_id"),
            override_reason=form.get("override_reason") or None,
        )
    elif action == "ready":
        items.mark_ready(session=session, item_id=item_id, actor=user)
    elif action == "unready":
        items.unready(session=session, item_id=item_id, actor=user)
    elif action == "block":
        reason_id = parse_int(form.get("reason_id"), "Reason")
        if reason_id is None:
            raise InvalidInput("Choose one of this board's block reasons.")
        blocks.block_item(
            session=session,
            item_id=item_id,
            actor=user,
            reason_id=reason_id,
            note=form.get("note", ""),
            waiting_on=form.get("waiting_on", ""),
        )
    elif action == "unblock":
        if row.open_block is None:
            raise InvalidMove(f"{row.item.key} is not blocked.")
        blocks.resolve_block(
            session=session,
            block_id=row.open_block.id,
            actor=user,
            note=form.get("note", ""),
        )
    elif action == "send-back":
        to_state_id = parse_int(form.get("to_state_id"), "to_state_id")
        if to_state_id is None:
            raise InvalidInput("Choose the state the work goes back to.")
        items.send_back(
            session=session,
            item_id=item_id,
            actor=user,
            to_state_id=to_state_id,
            reason=form.get("reason", ""),
            override_reason=form.get("override_reason") or None,
        )
    elif action == "discard":
        items.discard_item(
            session=session, item_id=item_id, actor=user, reason=form.get("reason", "")
        )
