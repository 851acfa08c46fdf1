"""Blocks and comments: recording why work waits, and conversation on an item."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.db import queries
from app.db.models import Block, Comment, User
from app.flow import rules
from app.flow.errors import InvalidInput, NotFound
from app.flow.text import checked_text
from app.services import events
from app.services.access import effective_role, visible_item
from app.services.items import item_facts

NOTE_MAX = 5000


def block_item(
    *,
    session: Session,
    item_id: int,
    actor: User,
    reason_id: int,
    note: str = "",
    waiting_on: str = "",
    now: datetime | None = None,
) -> Block:
    """Rule 4. Raises NotFound and rules.check_block's (AlreadyBlocked, InvalidInput...)."""
    now = now or queries.now()
    checked_text(note or "", "note", multiline=True)
    checked_text(waiting_on or "", "waiting on")
    row = visible_item(session, item_id=item_id, actor=actor, lock=True)
    open_id = row.open_block.id if row.open_block is not None else None
    reason = queries.block_reason(session, row.board.id, reason_id)
    rules.check_block(
        item=item_facts(row.item, open_id), actor_role=row.role, reason_on_board=reason is not None
    )
    assert reason is not None
    block = Block(
        board_id=row.board.id,
        item_id=row.item.id,
        reason_id=reason.id,
        note=(note or "").strip()[:NOTE_MAX],
        waiting_on=(waiting_on or "").strip()[:200],
        state_id=row.item.state_id,
        opened_at=now,
        opened_by_id=actor.id,
    )
    block.__dict__["reason"] = reason
    session.add(block)
    session.flush()
    events.record(
        session,
        type="blocked",
        board_id=row.board.id,
        actor_id=actor.id,
        at=now,
        item=row.item,
        from_state_id=row.item.state_id,
        to_state_id=row.item.state_id,
        stage=row.item.stage,
        block_id=block.id,
        reason=reason.name,
        waiting_on=block.waiting_on or None,
    )
    session.flush()
    return block


def resolve_block(
    *, session: Session, block_id: int, actor: User, note: str = "", now: datetime | None = None
) -> Block:
    """Rule 4. Raises NotFound, InsufficientRole, InvalidMove (already resolved)."""
    now = now or queries.now()
    found = queries.block_with_item(session, block_id, actor.id)
    if found is None or effective_role(actor, found[1].role) is None:
        raise NotFound("No such block, or you are not a member of its board.")
    block, row = found
    rules.check_unblock(
        actor_role=effective_role(actor, row.role), already_resolved=block.resolved_at is not None
    )
    block.resolved_at = now
    block.resolved_by_id = actor.id
    block.resolution = checked_text(note or "", "note", multiline=True).strip()[:NOTE_MAX]
    reason_name = queries.reason_names(session, {block.reason_id}).get(block.reason_id, "")
    events.record(
        session,
        type="unblocked",
        board_id=row.board.id,
        actor_id=actor.id,
        at=now,
        item=row.item,
        from_state_id=row.item.state_id,
        to_state_id=row.item.state_id,
        stage=row.item.stage,
        block_id=block.id,
        reason=reason_name,
        resolution=block.resolution or None,
        blocked_seconds=int((now - block.opened_at).total_seconds()),
    )
    session.flush()
    return block


def add_comment(
    *, session: Session, item_id: int, actor: User, body: str, now: datetime | None = None
) -> Comment:
    """Raises NotFound, InsufficientRole, InvalidInput (empty body)."""
    now = now or queries.now()
    row = visible_item(session, item_id=item_id, actor=actor)
    rules.require_role(row.role, "member", doing="comment")
    text = checked_text(body or "", "comment", multiline=True).strip()
    if not text or len(text) > 20_000:
        raise InvalidInput("A comment needs 1 to 20,000 characters.")
    comment = Comment(item_id=row.item.id, author_id=actor.id, body=text, created_at=now)
    session.add(comment)
    session.flush()
    events.record(
        session,
        type="commented",
        board_id=row.board.id,
        actor_id=actor.id,
        at=now,
        item=row.item,
        comment_id=comment.id,
    )
    session.flush()
    return comment


def get_block(*, session: Session, block_id: int, actor: User) -> Block:
    found = queries.block_with_item(session, block_id, actor.id)
    if found is None or effective_role(actor, found[1].role) is None:
        raise NotFound("No such block, or you are not a member of its board.")
    return found[0]
