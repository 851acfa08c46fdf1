"""SELECTs for the browser board and My work: a fixed, small number of statements per page.

The board never loads every item: counts come from GROUP BY, and the visible cards of every
column come from one windowed query (ROW_NUMBER per state, stage and lane), so a board of
100,000 items renders the same handful of statements as one of ten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select
from sqlalchemy.orm import Session

from app.db.models import Block, BlockReason, Board, Event, Item, Membership, State, User

PAGE = 20  # cards per column half before "Show N more"


@dataclass(frozen=True)
class BoardFilters:
    owner_id: int | None = None
    class_of_service: str | None = None
    blocked_only: bool = False
    text: str | None = None


@dataclass
class CardRow:
    item: Item
    owner_name: str | None
    block: Block | None
    reason_name: str | None


@dataclass(frozen=True)
class ColumnKey:
    """One run of cards: a state, its stage (None outside work states) and the lane."""

    state_id: int
    stage: str | None
    expedite: bool


def in_expedite_lane(item: Item) -> bool:
    """Only open expedite work rides the lane; delivered expedite items sit in Done as usual."""
    return item.class_of_service == "expedite" and item.done_at is None


def _lane() -> ColumnElement[int]:
    # The SQL twin of in_expedite_lane(): counts, pages and cards must agree on the lane.
    return case((and_(Item.class_of_service == "expedite", Item.done_at.is_(None)), 1), else_=0)


def _shown(board_id: int, done_state_id: int | None) -> list[ColumnElement[bool]]:
    """Open items, plus delivered ones in the done state (the board shows recent deliveries)."""
    delivered = (
        and_(Item.done_at.is_not(None), Item.state_id == done_state_id)
        if done_state_id is not None
        else false()
    )
    return [
        Item.board_id == board_id,
        Item.discarded_at.is_(None),
        or_(Item.done_at.is_(None), delivered),
    ]


def _filtered(stmt: Select, filters: BoardFilters) -> Select:
    if filters.owner_id is not None:
        stmt = stmt.where(Item.owner_id == filters.owner_id)
    if filters.class_of_service:
        stmt = stmt.where(Item.class_of_service == filters.class_of_service)
    if filters.blocked_only:
        stmt = stmt.where(
            select(Block.id).where(Block.item_id == Item.id, Block.resolved_at.is_(None)).exists()
        )
    if filters.text:
        pattern = f"%{filters.text.strip().lower()}%"
        stmt = stmt.where(
            or_(func.lower(Item.title).like(pattern), func.lower(Item.key).like(pattern))
        )
    return stmt


def column_counts(
    session: Session, board_id: int, done_state_id: int | None, filters: BoardFilters
) -> dict[ColumnKey, int]:
    """Filtered card counts per state, stage and lane (for paging), in one statement."""
    lane = _lane()
    stmt = select(Item.state_id, Item.stage, lane, func.count()).where(
        *_shown(board_id, done_state_id)
    )
    rows = session.execute(_filtered(stmt, filters).group_by(Item.state_id, Item.stage, lane))
    return {ColumnKey(s, stage, bool(x)): int(n) for s, stage, x, n in rows}


def visible_cards(
    session: Session,
    board_id: int,
    newest_first_state_ids: Sequence[int],
    done_state_id: int | None,
    filters: BoardFilters,
    *,
    per_column: int = PAGE,
    only: ColumnKey | None = None,
    offset: int = 0,
) -> list[CardRow]:
    """The first `per_column` cards of every column (or of `only`, from `offset`), in one query.

    The backlog and done show the newest first; work states the oldest first (first in, first
    pulled).
    """
    lane = _lane()
    # Within one partition every row has the same state, so each key is all-NULL or all-set.
    done_key = case((Item.state_id == (done_state_id or -1), Item.done_at), else_=None)
    newest = Item.state_id.in_(list(newest_first_state_ids) or [-1])
    newest_key = case((newest, Item.id), else_=None)
    rank = (
        func.row_number()
        .over(
            partition_by=(Item.state_id, func.coalesce(Item.stage, ""), lane),
            order_by=(done_key.desc(), newest_key.desc(), Item.state_entered_at, Item.id),
        )
        .label("rank")
    )
    inner = select(Item.id.label("item_id"), rank).where(*_shown(board_id, done_state_id))
    if only is not None:
        inner = inner.where(
            Item.state_id == only.state_id,
            Item.stage.is_(None) if only.stage is None else Item.stage == only.stage,
            lane == (1 if only.expedite else 0),
        )
    ranked = _filtered(inner, filters).subquery()
    owner = User.__table__.alias("owner")
    rows = session.execute(
        select(Item, owner.c.name, Block, BlockReason.name)
        .join(ranked, ranked.c.item_id == Item.id)
        .outerjoin(owner, owner.c.id == Item.owner_id)
        .outerjoin(Block, and_(Block.item_id == Item.id, Block.resolved_at.is_(None)))
        .outerjoin(BlockReason, BlockReason.id == Block.reason_id)
        .where(ranked.c.rank > offset, ranked.c.rank <= offset + per_column)
        .order_by(Item.state_id, ranked.c.rank)
    )
    return [CardRow(item, name, block, reason) for item, name, block, reason in rows]


def last_event_id(session: Session, board_id: int) -> int:
    return session.scalar(select(func.max(Event.id)).where(Event.board_id == board_id)) or 0


def ready_since(session: Session, item_ids: Sequence[int]) -> dict[int, datetime]:
    """When each (ready) item was last marked ready, for "ready 1d 4h"."""
    if not item_ids:
        return {}
    rows = session.execute(
        select(Event.item_id, func.max(Event.at))
        .where(Event.item_id.in_(list(item_ids)), Event.type == "marked_ready")
        .group_by(Event.item_id)
    )
    return {item_id: at for item_id, at in rows if item_id is not None}


# ---------------- My work ----------------


def my_boards(session: Session, user: User) -> list[tuple[Board, str]]:
    """Boards the user is on (admins: every board), with the effective role."""
    stmt = select(Board, Membership.role).outerjoin(
        Membership, and_(Membership.board_id == Board.id, Membership.user_id == user.id)
    )
    if not user.is_admin:
        stmt = stmt.where(Membership.role.is_not(None))
    rows = session.execute(stmt.order_by(Board.name, Board.id))
    return [(board, "manager" if user.is_admin else str(role)) for board, role in rows]


def states_of_boards(session: Session, board_ids: Sequence[int]) -> list[State]:
    if not board_ids:
        return []
    return list(
        session.scalars(
            select(State)
            .where(State.board_id.in_(list(board_ids)))
            .order_by(State.board_id, State.position, State.id)
        )
    )


def cards_where(
    session: Session, *conditions: ColumnElement[bool], limit: int = 200
) -> list[CardRow]:
    owner = User.__table__.alias("owner")
    rows = session.execute(
        select(Item, owner.c.name, Block, BlockReason.name)
        .outerjoin(owner, owner.c.id == Item.owner_id)
        .outerjoin(Block, and_(Block.item_id == Item.id, Block.resolved_at.is_(None)))
        .outerjoin(BlockReason, BlockReason.id == Block.reason_id)
        .where(Item.discarded_at.is_(None), Item.done_at.is_(None), *conditions)
        .order_by(Item.state_entered_at, Item.id)
        .limit(limit)
    )
    return [CardRow(item, name, block, reason) for item, name, block, reason in rows]


def doing_counts(session: Session, user_id: int, board_ids: Sequence[int]) -> dict[int, int]:
    if not board_ids:
        return {}
    rows = session.execute(
        select(Item.board_id, func.count())
        .where(
            Item.owner_id == user_id,
            Item.stage == "doing",
            Item.board_id.in_(list(board_ids)),
            Item.discarded_at.is_(None),
            Item.done_at.is_(None),
        )
        .group_by(Item.board_id)
    )
    return {board_id: int(n) for board_id, n in rows}
