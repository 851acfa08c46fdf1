"""Core SELECTs: access checks, item context, WIP counts under row locks, lists.

Board views and metrics have their own query modules (board_queries, metric_queries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_, select
from sqlalchemy.orm import Session

from app.db.models import (
    ApiToken,
    Block,
    BlockReason,
    Board,
    Comment,
    Criterion,
    CriterionCheck,
    Event,
    Item,
    Membership,
    PasswordReset,
    State,
    User,
    WebSession,
)
from app.flow.text import text_problem

# The hot statements of every request are built once: building a select() and its cache key
# costs more CPU than SQLite takes to run it. Values go in as bound parameters.
_USER_FOR_TOKEN = (
    select(User, ApiToken)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        User.is_active.is_(True),
    )
)
_USER_FOR_LIVE_TOKEN = _USER_FOR_TOKEN.where(
    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now"))
)


def user_for_token(
    session: Session, token_hash: str, now: datetime | None = None
) -> tuple[User, ApiToken] | None:
    """The active user and live token (not revoked; not expired when `now` is given)."""
    if now is None:
        row = session.execute(_USER_FOR_TOKEN, {"token_hash": token_hash}).first()
    else:
        row = session.execute(_USER_FOR_LIVE_TOKEN, {"token_hash": token_hash, "now": now}).first()
    return (row[0], row[1]) if row else None


def tokens_of_user(
    session: Session, user_id: int, *, limit: int = 1000, offset: int = 0
) -> Sequence[ApiToken]:
    """The user's tokens that were not revoked (expired ones too), newest first."""
    return session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()


def password_reset(
    session: Session, token_hash: str, now: datetime
) -> tuple[PasswordReset, User] | None:
    """An unused, unexpired reset link of an active user."""
    row = session.execute(
        select(PasswordReset, User)
        .join(User, User.id == PasswordReset.user_id)
        .where(
            PasswordReset.token_hash == token_hash,
            PasswordReset.used_at.is_(None),
            PasswordReset.expires_at > now,
            User.is_active.is_(True),
        )
    ).first()
    return (row[0], row[1]) if row else None


def user_for_web_session(
    session: Session, token_hash: str, now: datetime, *, idle_since: datetime | None = None
) -> tuple[User, WebSession] | None:
    """The active user and live session; with `idle_since`, a session unseen since then is out."""
    conditions = [
        WebSession.token_hash == token_hash,
        WebSession.ended_at.is_(None),
        WebSession.expires_at > now,
        User.is_active.is_(True),
    ]
    if idle_since is not None:
        seen = func.coalesce(WebSession.last_seen_at, WebSession.created_at)
        conditions.append(seen > idle_since)
    row = session.execute(
        select(User, WebSession).join(WebSession, WebSession.user_id == User.id).where(*conditions)
    ).first()
    return (row[0], row[1]) if row else None


def user_by_email(session: Session, email: str) -> User | None:
    if text_problem(email) is not None:
        return None  # no account has such an email, and PostgreSQL cannot even compare NUL
    return session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def user_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def users(session: Session, *, limit: int, offset: int) -> Sequence[User]:
    return session.scalars(select(User).order_by(User.id).limit(limit).offset(offset)).all()


def board_with_role(
    session: Session, board_id: int, user_id: int
) -> tuple[Board, str | None] | None:
    row = session.execute(
        select(Board, Membership.role)
        .outerjoin(Membership, and_(Membership.board_id == Board.id, Membership.user_id == user_id))
        .where(Board.id == board_id)
    ).first()
    return (row[0], row[1]) if row else None


def boards_visible(
    session: Session, user: User, *, limit: int = 1000, offset: int = 0
) -> Sequence[tuple[Board, str | None]]:
    stmt = select(Board, Membership.role).outerjoin(
        Membership, and_(Membership.board_id == Board.id, Membership.user_id == user.id)
    )
    if not user.is_admin:
        stmt = stmt.where(Membership.role.is_not(None))
    rows = session.execute(stmt.order_by(Board.name, Board.id).limit(limit).offset(offset))
    return [(board, role) for board, role in rows]


_STATES_OF = (
    select(State).where(State.board_id == bindparam("board_id")).order_by(State.position, State.id)
)


def states_of(session: Session, board_id: int) -> list[State]:
    return list(session.scalars(_STATES_OF, {"board_id": board_id}))


def criteria_of_board(session: Session, board_id: int) -> list[Criterion]:
    return list(
        session.scalars(
            select(Criterion)
            .join(State, State.id == Criterion.state_id)
            .where(State.board_id == board_id)
            .order_by(Criterion.state_id, Criterion.position, Criterion.id)
        )
    )


_CRITERIA_WITH_CHECKS = (
    select(Criterion, CriterionCheck)
    .join(State, State.id == Criterion.state_id)
    .outerjoin(
        CriterionCheck,
        and_(
            CriterionCheck.criterion_id == Criterion.id,
            CriterionCheck.item_id == bindparam("item_id"),
        ),
    )
    .where(State.board_id == bindparam("board_id"))
    .order_by(Criterion.state_id, Criterion.position, Criterion.id)
)


def criteria_with_checks(
    session: Session, board_id: int, item_id: int
) -> list[tuple[Criterion, CriterionCheck | None]]:
    """Every criterion of the board with this item's check on it, in one statement."""
    rows = session.execute(_CRITERIA_WITH_CHECKS, {"board_id": board_id, "item_id": item_id})
    return [(criterion, check) for criterion, check in rows]


_OWNER = User.__table__.alias("owner")


@dataclass
class ItemRow:
    item: Item
    board: Board
    role: str | None
    open_block: Block | None
    owner_name: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


_ITEM_ROW = (
    select(Item, Board, Membership.role, Block, BlockReason, _OWNER.c.name)
    .join(Board, Board.id == Item.board_id)
    .outerjoin(
        Membership,
        and_(Membership.board_id == Board.id, Membership.user_id == bindparam("user_id")),
    )
    .outerjoin(Block, and_(Block.item_id == Item.id, Block.resolved_at.is_(None)))
    .outerjoin(BlockReason, BlockReason.id == Block.reason_id)
    .outerjoin(_OWNER, _OWNER.c.id == Item.owner_id)
    .where(Item.id == bindparam("item_id"))
)
_ITEM_ROW_LOCKED = _ITEM_ROW.with_for_update(of=Item.__table__)


def item_row(session: Session, item_id: int, user_id: int, *, lock: bool = False) -> ItemRow | None:
    """The item with its board, the user's role there and its open block (and reason).

    With `lock`, the item row is locked (FOR UPDATE on PostgreSQL; SQLite already holds the
    write lock from BEGIN IMMEDIATE), so racing actions on one item run one after another.
    """
    stmt = _ITEM_ROW_LOCKED if lock else _ITEM_ROW
    row = session.execute(stmt, {"item_id": item_id, "user_id": user_id}).first()
    if row is None:
        return None
    item, board, role, block, reason, owner_name = row
    if block is not None:
        # Attach the reason we already loaded so serialisers need no extra query.
        block.__dict__["reason"] = reason
    return ItemRow(item=item, board=board, role=role, open_block=block, owner_name=owner_name)


def _has_row_locks(session: Session) -> bool:
    """False on SQLite: it drops FOR UPDATE, and its writers already hold the database's one
    write lock (BEGIN IMMEDIATE), so a locking read would only cost a statement."""
    return session.get_bind().dialect.name != "sqlite"


def lock_state(session: Session, state_id: int) -> None:
    """Locks the receiving state's row so WIP is counted and changed by one pull at a time."""
    if _has_row_locks(session):
        session.execute(select(State.id).where(State.id == state_id).with_for_update())


def lock_user(session: Session, user_id: int) -> None:
    """Locks the person's row so their board-wide doing count is checked by one pull at a time.

    FOR NO KEY UPDATE: it serialises these pulls without blocking the key-share locks that
    rows referencing the user (events, owner_id) take while being written.
    """
    if _has_row_locks(session):
        session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


def open_item_filter() -> list[ColumnElement[bool]]:
    return [Item.discarded_at.is_(None), Item.done_at.is_(None)]


_IN_STATE = (
    select(func.count())
    .select_from(Item)
    .where(Item.state_id == bindparam("state_id"), Item.discarded_at.is_(None))
    .scalar_subquery()
)
# The board is a CASE, not a WHERE term: given board_id, SQLite would pick the
# (board_id, owner_id) index and read every item the person ever owned on the board.
_OWNER_DOING = (
    select(func.coalesce(func.sum(case((Item.board_id == bindparam("board_id"), 1), else_=0)), 0))
    .where(
        Item.owner_id == bindparam("owner_id"),
        Item.stage == "doing",
        Item.discarded_at.is_(None),
    )
    .scalar_subquery()
)
_WIP_COUNTS = select(_IN_STATE, _OWNER_DOING)
_STATE_COUNT = select(_IN_STATE)


def wip_counts(
    session: Session, *, board_id: int, state_id: int, owner_id: int | None
) -> tuple[int, int]:
    """(items in the state, the owner's doing items on the board), in one statement.

    Two scalar subqueries, so each is found through its own index (state_id; owner_id and
    stage) whatever the board holds: one WHERE with an OR made SQLite walk the whole board
    (95,000 done items: 160 ms a pull).
    """
    if owner_id is None:
        return int(session.scalar(_STATE_COUNT, {"state_id": state_id}) or 0), 0
    params = {"state_id": state_id, "owner_id": owner_id, "board_id": board_id}
    row = session.execute(_WIP_COUNTS, params).one()
    return int(row[0]), int(row[1])


def state_wip(session: Session, state_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Item)
            .where(Item.state_id == state_id, Item.discarded_at.is_(None), Item.done_at.is_(None))
        )
        or 0
    )


def wip_by_state(session: Session, board_id: int) -> dict[int, int]:
    """Open items per state (none in the done state).

    Outside the done state every item not discarded is open (pulling into the done state
    delivers, and done is final), so the count needs no done_at and comes from the index
    ix_item_shown_by_state alone; with done_at, SQLite's statistics on (board_id, done_at)
    (one NULL shared by every open item) chose that index and read every row.
    """
    states = select(State.id).where(State.board_id == board_id, State.kind != "done")
    rows = session.execute(
        select(Item.state_id, func.count())
        .where(Item.state_id.in_(states.scalar_subquery()), Item.discarded_at.is_(None))
        .group_by(Item.state_id)
    )
    return {state_id: count for state_id, count in rows}


def block_reasons(session: Session, board_id: int) -> list[BlockReason]:
    return list(
        session.scalars(
            select(BlockReason).where(BlockReason.board_id == board_id).order_by(BlockReason.id)
        )
    )


def block_reason(session: Session, board_id: int, reason_id: int) -> BlockReason | None:
    return session.scalar(
        select(BlockReason).where(BlockReason.id == reason_id, BlockReason.board_id == board_id)
    )


def block_with_item(session: Session, block_id: int, user_id: int) -> tuple[Block, ItemRow] | None:
    item_id = session.scalar(select(Block.item_id).where(Block.id == block_id))
    if item_id is None:
        return None
    row = item_row(session, item_id, user_id, lock=True)
    block = session.scalar(select(Block).where(Block.id == block_id))
    if row is None or block is None:
        return None
    return block, row


def reason_names(session: Session, reason_ids: set[int]) -> dict[int, str]:
    if not reason_ids:
        return {}
    rows = session.execute(
        select(BlockReason.id, BlockReason.name).where(BlockReason.id.in_(reason_ids))
    )
    return {reason_id: name for reason_id, name in rows}


def items_of_board(
    session: Session,
    board_id: int,
    *,
    state_id: int | None = None,
    blocked: bool | None = None,
    owner_id: int | None = None,
    q: str | None = None,
    include_closed: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[tuple[Item, Block | None]]:
    stmt = (
        select(Item, Block)
        .outerjoin(Block, and_(Block.item_id == Item.id, Block.resolved_at.is_(None)))
        .where(Item.board_id == board_id)
    )
    if not include_closed:
        stmt = stmt.where(*open_item_filter())
    if state_id is not None:
        stmt = stmt.where(Item.state_id == state_id)
    if owner_id is not None:
        stmt = stmt.where(Item.owner_id == owner_id)
    if blocked is True:
        stmt = stmt.where(Block.id.is_not(None))
    elif blocked is False:
        stmt = stmt.where(Block.id.is_(None))
    if q:
        pattern = f"%{q.strip().lower()}%"
        stmt = stmt.where(
            or_(func.lower(Item.title).like(pattern), func.lower(Item.key).like(pattern))
        )
    rows = session.execute(stmt.order_by(Item.id).limit(limit).offset(offset))
    return [(item, block) for item, block in rows]


def checks_for_items(session: Session, item_ids: Sequence[int]) -> dict[int, set[int]]:
    """item id -> ids of the criteria met on it."""
    result: dict[int, set[int]] = {item_id: set() for item_id in item_ids}
    if not item_ids:
        return result
    rows = session.execute(
        select(CriterionCheck.item_id, CriterionCheck.criterion_id).where(
            CriterionCheck.item_id.in_(item_ids)
        )
    )
    for item_id, criterion_id in rows:
        result[item_id].add(criterion_id)
    return result


def check_rows_for_items(
    session: Session, item_ids: Sequence[int]
) -> dict[int, dict[int, CriterionCheck]]:
    """item id -> {criterion id: its check} for the criteria met on it."""
    result: dict[int, dict[int, CriterionCheck]] = {}
    if not item_ids:
        return result
    for check in session.scalars(
        select(CriterionCheck).where(CriterionCheck.item_id.in_(item_ids))
    ):
        result.setdefault(check.item_id, {})[check.criterion_id] = check
    return result


def members(session: Session, board_id: int) -> list[tuple[Membership, User]]:
    rows = session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.board_id == board_id)
        .order_by(User.name, User.id)
    )
    return [(membership, user) for membership, user in rows]


def membership(session: Session, board_id: int, user_id: int) -> Membership | None:
    return session.get(Membership, (board_id, user_id))


def manager_count(session: Session, board_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.board_id == board_id, Membership.role == "manager")
        )
        or 0
    )


def last_owner_in_state(session: Session, item_id: int, state_id: int) -> int | None:
    """Who last owned the item in that state: the actor of its last pull (or send-back) there."""
    return session.scalar(
        select(Event.data["owner_id"].as_integer())
        .where(
            Event.item_id == item_id,
            Event.to_state_id == state_id,
            Event.type.in_(("pulled", "sent_back")),
        )
        .order_by(Event.id.desc())
        .limit(1)
    )


def events_of_board(
    session: Session, board_id: int, *, after_id: int, limit: int
) -> Sequence[Event]:
    return session.scalars(
        select(Event)
        .where(Event.board_id == board_id, Event.id > after_id)
        .order_by(Event.id)
        .limit(limit)
    ).all()


def events_of_item(session: Session, item_id: int, *, limit: int, offset: int) -> Sequence[Event]:
    return session.scalars(
        select(Event).where(Event.item_id == item_id).order_by(Event.id).limit(limit).offset(offset)
    ).all()


def comments_of_item(
    session: Session, item_id: int, *, limit: int, offset: int
) -> list[tuple[Comment, str | None]]:
    rows = session.execute(
        select(Comment, User.name)
        .outerjoin(User, User.id == Comment.author_id)
        .where(Comment.item_id == item_id)
        .order_by(Comment.id)
        .limit(limit)
        .offset(offset)
    )
    return [(comment, name) for comment, name in rows]


def blocks_of_item(session: Session, item_id: int) -> list[Block]:
    return list(session.scalars(select(Block).where(Block.item_id == item_id).order_by(Block.id)))


def state_item_count(session: Session, state_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Item)
            .where(Item.state_id == state_id, Item.discarded_at.is_(None))
        )
        or 0
    )


def user_names(session: Session, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.name, User.is_active).where(User.id.in_(user_ids)))
    # A deactivated owner keeps their items; people see that they are gone.
    return {user_id: name if active else f"{name} (deactivated)" for user_id, name, active in rows}


def now() -> datetime:
    return datetime.now(UTC)
