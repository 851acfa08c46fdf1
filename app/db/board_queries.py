"""SELECTs for the browser board and My work: a fixed, small number of statements per page.

The board never loads every item: counts come from GROUP BY over an index, and the visible
cards of every run come from one query of per-run ORDER BY ... LIMIT parts, each read in the
order of an index, so the cards cost the same on a board of 100,000 items as on one of ten.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Protocol, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    and_,
    bindparam,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from app.db.models import Block, BlockReason, Board, Event, Item, Membership, State, User

PAGE = 20  # cards per column half before "Show N more"


@dataclass(frozen=True)
class BoardFilters:
    owner_id: int | None = None
    class_of_service: str | None = None
    blocked_only: bool = False
    text: str | None = None


class CardItem(Protocol):
    """What a card and its rules read of an item: an ORM Item, or a plain row of the item
    table (the board reads rows: no ORM identity map or change tracking per card shown)."""

    @property
    def id(self) -> int: ...
    @property
    def board_id(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def class_of_service(self) -> str: ...
    @property
    def due_date(self) -> date | None: ...
    @property
    def state_id(self) -> int: ...
    @property
    def stage(self) -> str | None: ...
    @property
    def owner_id(self) -> int | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def state_entered_at(self) -> datetime: ...
    @property
    def committed_at(self) -> datetime | None: ...
    @property
    def done_at(self) -> datetime | None: ...
    @property
    def discarded_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class OpenBlock:
    """What a card shows of its open block."""

    id: int
    opened_at: datetime
    waiting_on: str


@dataclass
class CardRow:
    item: CardItem
    owner_name: str | None
    block: Block | OpenBlock | None
    reason_name: str | None


@dataclass(frozen=True)
class ColumnKey:
    """One run of cards: a state, its stage (None outside work states) and the lane."""

    state_id: int
    stage: str | None
    expedite: bool


def in_expedite_lane(item: CardItem) -> bool:
    """Only open expedite work rides the lane; delivered expedite items sit in Done as usual."""
    return item.class_of_service == "expedite" and item.done_at is None


# What the board shows: every item that is not discarded. Outside the done state they are all
# open and inside it all delivered, because pulling into the done state delivers and done is
# final (the services and the import refuse any move after it); so no statement here needs
# done_at to tell them apart, and each can stay on the indexes of migration 0007:
#   ix_item_shown_by_state   (state_id, stage, state_entered_at, id) of items not discarded
#   ix_item_expedite_lane    the same for expedite items only
#   ix_item_state_id_stage_id, ix_item_board_id_done_at: backlog and deliveries, newest first
# Values go in as parameters (board_id, state_<n>, owner_id, class_of_service, pattern), so a
# statement is built once per shape of board and filters and then reused for any board.


def _filter_terms(filters: BoardFilters) -> list[ColumnElement[bool]]:
    """The filters as conditions; their values go in as parameters (_filter_params)."""
    terms: list[ColumnElement[bool]] = []
    if filters.owner_id is not None:
        terms.append(Item.owner_id == bindparam("owner_id"))
    if filters.class_of_service:
        terms.append(Item.class_of_service == bindparam("class_of_service"))
    if filters.blocked_only:
        terms.append(
            select(Block.id).where(Block.item_id == Item.id, Block.resolved_at.is_(None)).exists()
        )
    if filters.text:
        pattern: BindParameter[str] = bindparam("pattern")
        terms.append(or_(func.lower(Item.title).like(pattern), func.lower(Item.key).like(pattern)))
    return terms


def _filter_params(filters: BoardFilters) -> dict[str, object]:
    params: dict[str, object] = {}
    if filters.owner_id is not None:
        params["owner_id"] = filters.owner_id
    if filters.class_of_service:
        params["class_of_service"] = filters.class_of_service
    if filters.text:
        params["pattern"] = f"%{filters.text.strip().lower()}%"
    return params


def _filter_shape(filters: BoardFilters) -> BoardFilters:
    """Which filters are on, without their values: statements are built (and kept) per shape."""
    return BoardFilters(
        owner_id=0 if filters.owner_id is not None else None,
        class_of_service="x" if filters.class_of_service else None,
        blocked_only=filters.blocked_only,
        text="x" if filters.text else None,
    )


def _is_expedite() -> ColumnElement[bool]:
    # 'expedite' inline, not a parameter: PostgreSQL's generic plans can then use the partial
    # index ix_item_expedite_lane too (SQLite matches a parameter's value already).
    return Item.class_of_service == literal("expedite", literal_execute=True)


def column_counts(
    session: Session,
    board_id: int,
    done_state_id: int | None,
    filters: BoardFilters,
    *,
    only: ColumnKey | None = None,
) -> dict[ColumnKey, int]:
    """Filtered card counts per state, stage and lane (for paging), in one statement.

    With `only`, just that run's state is counted (a column's page needs no other).
    """
    params = {"board_id": board_id, **_filter_params(filters)}
    if only is not None:
        params["state_id"] = only.state_id
    totals: dict[tuple[int, str | None], int] = {}
    expedite: dict[tuple[int, str | None], int] = {}
    stmt = _counts_statement(_filter_shape(filters), only is not None)
    for state_id, stage, lane, n in session.execute(stmt, params):
        (expedite if lane else totals)[(state_id, stage)] = int(n)
    counts: dict[ColumnKey, int] = {}
    for (state_id, stage), total in totals.items():
        # Delivered work never rides the lane (in_expedite_lane): the done state has one run.
        fast = 0 if state_id == done_state_id else expedite.get((state_id, stage), 0)
        for key, n in (
            (ColumnKey(state_id, stage, False), total - fast),
            (ColumnKey(state_id, stage, True), fast),
        ):
            if n:
                counts[key] = n
    if only is not None:
        return {only: counts.get(only, 0)}
    return counts


@lru_cache(maxsize=64)
def _counts_statement(filters: BoardFilters, one_state: bool) -> CompoundSelect:
    """Items per state and stage, and the expedite ones among them, each half counted from its
    index alone (ix_item_shown_by_state, ix_item_expedite_lane) in the index's own order. Still
    one index entry per card of the board (delivered ones too): cheap, not free."""
    if one_state:
        state: ColumnElement[bool] = Item.state_id == bindparam("state_id")
    else:
        board_states = select(State.id).where(State.board_id == bindparam("board_id"))
        state = Item.state_id.in_(board_states.scalar_subquery())
    terms = [state, Item.discarded_at.is_(None), *_filter_terms(filters)]
    halves = [
        select(Item.state_id, Item.stage, literal(lane), func.count())
        .where(*terms, *([_is_expedite()] if lane else []))
        .group_by(Item.state_id, Item.stage)
        for lane in (0, 1)
    ]
    return union_all(*halves)


@dataclass(frozen=True)
class _RunShape:
    """A run without its state id: how it is ordered and which stage and lane it holds."""

    order: str  # "delivered" (done state) | "newest" (backlog) | "oldest" (work states)
    stage: str | None
    expedite: bool


def _run_shape(key: ColumnKey, done_state_id: int | None, newest: Iterable[int]) -> _RunShape:
    if key.state_id == done_state_id:
        order = "delivered"
    elif key.state_id in newest:
        order = "newest"
    else:
        order = "oldest"
    return _RunShape(order, key.stage, key.expedite)


def _run_terms(run: _RunShape, number: int) -> list[ColumnElement[bool]]:
    """The cards of run `number` (its state id is the parameter state_<number>)."""
    state: BindParameter[int] = bindparam(f"state_{number}")
    terms = [
        Item.board_id == bindparam("board_id"),
        Item.state_id == state,
        Item.stage.is_(None) if run.stage is None else Item.stage == run.stage,
        Item.discarded_at.is_(None),
    ]
    if run.order == "delivered":
        # Read through (board_id, done_at); the done state has no expedite lane.
        terms += [Item.done_at.is_not(None), false() if run.expedite else true()]
    else:
        terms.append(_is_expedite() if run.expedite else ~_is_expedite())
    return terms


def _run_order(run: _RunShape, cols: ReadOnlyColumnCollection[str, Any]) -> list[Any]:
    """Delivered work by newest delivery, the backlog newest first, work states first in, first
    pulled; on the item table's columns or on a subquery's (id, stage, done_at,
    state_entered_at)."""
    if run.order == "delivered":
        return [cols.done_at.desc(), cols.id.desc()]
    if run.order == "newest":
        # The stage is the same on every card of the run; ordering by it too leaves the run's
        # index (state_id, stage, id) as the only one in this order, so PostgreSQL does not
        # walk the primary key backwards hoping to meet the run's newest cards soon.
        return [cols.stage.desc(), cols.id.desc()]
    return [cols.state_entered_at, cols.id]


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
    runs: Iterable[ColumnKey] | None = None,
) -> list[CardRow]:
    """The first `per_column` cards of every run (or of `only`, from `offset`), in one query.

    `runs` are the runs to read: pass the keys column_counts gave (the board page has them);
    without it they are counted first, one statement more. Each run is its own ORDER BY ...
    LIMIT read in index order, so the work follows the cards shown, not the board's size.
    """
    if only is not None:
        wanted = [only]
    else:
        if runs is None:
            counts = column_counts(session, board_id, done_state_id, filters)
            runs = (k for k, n in counts.items() if n)
        wanted = sorted(set(runs), key=lambda k: (k.state_id, k.stage or "", k.expedite))
    if not wanted:
        return []
    newest = set(newest_first_state_ids)
    shapes = tuple(_run_shape(k, done_state_id, newest) for k in wanted)
    params: dict[str, object] = {
        "board_id": board_id,
        "per_column": per_column,
        "offset": offset,
        **_filter_params(filters),
        **{f"state_{n}": k.state_id for n, k in enumerate(wanted)},
    }
    rows = session.execute(_cards_statement(_filter_shape(filters), shapes), params)
    return [
        CardRow(
            cast(CardItem, row),
            row.owner_name,
            OpenBlock(row.block_id, row.block_opened_at, row.block_waiting_on)
            if row.block_id is not None
            else None,
            row.reason_name,
        )
        for row in rows
    ]


@lru_cache(maxsize=256)
def _cards_statement(filters: BoardFilters, runs: tuple[_RunShape, ...]) -> Select:
    """One ORDER BY ... LIMIT per run, each read in the order of an index (ix_item_shown_by_state
    or ix_item_expedite_lane for work states, ix_item_state_id_stage_id for the backlog,
    ix_item_board_id_done_at for deliveries), so it stops after the cards it keeps. The row
    number over those few rows places each card within its run."""
    terms = _filter_terms(filters)
    members = []
    for number, run in enumerate(runs):
        picked = (
            select(Item.id, Item.stage, Item.done_at, Item.state_entered_at)
            .where(*_run_terms(run, number), *terms)
            .order_by(*_run_order(run, Item.__table__.c))
            .limit(bindparam("per_column", type_=Integer))
            .offset(bindparam("offset", type_=Integer))
            .subquery()
        )
        members.append(
            select(
                picked.c.id.label("item_id"),
                literal(number).label("run"),
                func.row_number().over(order_by=_run_order(run, picked.c)).label("rank"),
            )
        )
    shown = union_all(*members).subquery()
    owner = User.__table__.alias("owner")
    return (
        select(
            *Item.__table__.c,
            owner.c.name.label("owner_name"),
            Block.id.label("block_id"),
            Block.opened_at.label("block_opened_at"),
            Block.waiting_on.label("block_waiting_on"),
            BlockReason.name.label("reason_name"),
        )
        .join(shown, shown.c.item_id == Item.id)
        .outerjoin(owner, owner.c.id == Item.owner_id)
        .outerjoin(Block, and_(Block.item_id == Item.id, Block.resolved_at.is_(None)))
        .outerjoin(BlockReason, BlockReason.id == Block.reason_id)
        .order_by(shown.c.run, shown.c.rank)
    )


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
            # Doing is a stage of work states, where nothing is delivered: no done_at, whose
            # (board_id, done_at) index SQLite's statistics favour while it reads every row.
            Item.discarded_at.is_(None),
        )
        .group_by(Item.board_id)
    )
    return {board_id: int(n) for board_id, n in rows}
