"""SELECTs behind flow analytics, time travel and the delay report.

Every function selects only the columns it needs and hands back plain tuples, streamed
with `yield_per` (a server-side cursor on PostgreSQL), so a board with 100,000 items is
never loaded as ORM objects. They run on the session's connection (Core), in the session's
transaction, skipping the ORM per-row loading machinery. The indexes these rely on are in
migration 0002.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from app.db.models import (
    Block,
    BlockReason,
    CfdDay,
    CfdMark,
    Event,
    FlowDay,
    FlowMark,
    Item,
    State,
    User,
)

# Rows fetched per round trip while streaming.
STREAM_ROWS = 5_000

# Events that move an item between states or stages (with to_state_id and stage after it).
MOVE_TYPES = (
    "created",
    "pulled",
    "marked_ready",
    "unready",
    "completed",
    "sent_back",
    "discarded",
)
BLOCK_TYPES = ("blocked", "unblocked")

_STREAM: dict[str, Any] = {"yield_per": STREAM_ROWS}


@dataclass(frozen=True, slots=True)
class StateRow:
    id: int
    name: str
    kind: str
    position: int
    wip_limit: int | None


def states(session: Session, board_id: int) -> list[StateRow]:
    rows = session.connection().execute(
        select(State.id, State.name, State.kind, State.position, State.wip_limit)
        .where(State.board_id == board_id)
        .order_by(State.position, State.id)
    )
    return [StateRow(*row) for row in rows]


def _class_filter(class_of_service: str | None) -> list[Any]:
    return [] if class_of_service is None else [Item.class_of_service == class_of_service]


def _alive_in(board_id: int, start: datetime, end: datetime) -> list[Any]:
    """Items whose life touches [start, end): created before end, not closed before start.

    Items done before start sit in done for the whole window: callers count them with
    done_before() instead of replaying their events.
    """
    return [
        Item.board_id == board_id,
        Item.created_at < end,
        or_(Item.done_at.is_(None), Item.done_at >= start),
        or_(Item.discarded_at.is_(None), Item.discarded_at >= start),
    ]


def items_alive_in(
    session: Session, board_id: int, start: datetime, end: datetime
) -> Iterator[tuple[int, str, datetime | None, datetime | None]]:
    """(id, class_of_service, committed_at, done_at) of the items alive in the window.

    In three index range scans, each bounded by the window, rather than one over every item
    created before `end`: items done in the window, items not done, and items done after
    it (created before its end). The last is found from the shorter side, items done after
    `end` or items created before it, judged by where `end` falls in the board's item
    creation times (coalesce() keeps the planner off the index not chosen).
    """
    columns = (
        Item.id,
        Item.class_of_service,
        _raw_time(session, Item.committed_at),
        _raw_time(session, Item.done_at),
    )
    conn = session.connection()
    alive = [
        Item.board_id == board_id,
        or_(Item.discarded_at.is_(None), Item.discarded_at >= start),
    ]
    created = func.coalesce(Item.created_at, Item.created_at)
    done_after = func.coalesce(Item.done_at, Item.done_at)
    on_board = Item.board_id == board_id
    first, last = conn.execute(  # two scalar subqueries: each is one index lookup
        select(
            select(func.min(Item.created_at)).where(on_board).scalar_subquery(),
            select(func.max(Item.created_at)).where(on_board).scalar_subquery(),
        )
    ).one()
    if first is None:
        return
    if _aware(end) - _aware(first) < _aware(last) - _aware(end):  # type: ignore[operator]
        spanning = [Item.created_at < end, done_after >= end]
    else:
        spanning = [created < end, Item.done_at >= end]
    statements = (
        select(*columns).where(*alive, Item.done_at >= start, Item.done_at < end),
        select(*columns).where(*alive, Item.done_at.is_(None), Item.created_at < end),
        select(*columns).where(*alive, *spanning),
    )
    for stmt in statements:
        for item_id, cos, committed, done_at in conn.execute(stmt, execution_options=_STREAM):
            yield item_id, cos, _aware(committed), _aware(done_at)


# Item ids per IN (...) list: under SQLite's oldest bind-variable limit (999).
ID_CHUNK = 900


def _id_filters(
    session: Session, column: InstrumentedAttribute[Any], ids: Sequence[int]
) -> Iterator[ColumnElement[bool]]:
    """`column IN ids` as few statements as the database allows.

    PostgreSQL takes the whole list as one array parameter (= ANY), so one statement and no
    query text with thousands of placeholders to build and parse; SQLite gets IN lists in
    chunks under its oldest bind-variable limit.
    """
    if session.get_bind().dialect.name == "postgresql":
        if ids:
            yield column == any_(bindparam("ids", list(ids), type_=ARRAY(Integer)))
        return
    for first in range(0, len(ids), ID_CHUNK):
        yield column.in_(ids[first : first + ID_CHUNK])


def _raw_time(session: Session, column: InstrumentedAttribute[Any]) -> Any:
    """The column without per-value conversion in Python where the driver's own is enough.

    Replaying a window reads hundreds of thousands of times: SQLite's text is parsed with
    datetime.fromisoformat (C) by _aware() instead of SQLAlchemy's regular expression, and
    psycopg's aware datetimes only get their zone normalised to UTC.
    """
    if session.get_bind().dialect.name == "sqlite":
        return type_coerce(column, String)
    return type_coerce(column, DateTime(timezone=True))


def _aware(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        # psycopg gives the session's ZoneInfo; comparing those is ~20x slower than
        # datetime.UTC, and the replay compares and sorts every time it reads.
        return value if value.tzinfo is UTC else value.astimezone(UTC)
    # Parsing the offset is several times cheaper than .replace(tzinfo=UTC) afterwards.
    return datetime.fromisoformat(value + "+00:00")


def events_of_items(
    session: Session,
    item_ids: Sequence[int],
    *,
    types: tuple[str, ...] = MOVE_TYPES,
    until: datetime | None = None,
) -> Iterator[tuple[int, int, str, datetime, int | None, int | None, str | None]]:
    """(item_id, event id, type, at, from_state_id, to_state_id, stage) of the items' events
    of these types (at or before `until`), over their whole life, unordered.

    By explicit item ids (see _id_filters): with a join instead, PostgreSQL prefers a parallel
    scan of the whole event table (every board's events); ids make it use the
    (item_id, id) index, so the cost follows the items asked for, not the database size.
    """
    conn = session.connection()
    for matches in _id_filters(session, Event.item_id, item_ids):
        stmt = select(
            Event.item_id,
            Event.id,
            Event.type,
            _raw_time(session, Event.at),
            Event.from_state_id,
            Event.to_state_id,
            Event.stage,
        ).where(matches, Event.type.in_(types))
        if until is not None:
            stmt = stmt.where(Event.at <= until)
        for item_id, event_id, type_, at, from_id, to_id, stage in conn.execute(
            stmt, execution_options=_STREAM
        ):
            yield item_id, event_id, type_, _aware(at), from_id, to_id, stage  # type: ignore[misc]


def blocks_of_items(
    session: Session, item_ids: Sequence[int]
) -> Iterator[tuple[int, datetime, datetime | None]]:
    """(item_id, opened_at, resolved_at) of every block of these items."""
    conn = session.connection()
    for matches in _id_filters(session, Block.item_id, item_ids):
        stmt = select(
            Block.item_id,
            _raw_time(session, Block.opened_at),
            _raw_time(session, Block.resolved_at),
        ).where(matches)
        for item_id, opened, resolved in conn.execute(stmt, execution_options=_STREAM):
            yield item_id, _aware(opened), _aware(resolved)  # type: ignore[misc]


def done_before(
    session: Session, board_id: int, before: datetime, class_of_service: str | None = None
) -> int:
    """Items delivered before `before` (they sit in done; discarded items never reach done)."""
    return (
        session.connection().scalar(
            select(func.count())
            .select_from(Item)
            .where(
                Item.board_id == board_id,
                Item.done_at < before,
                Item.discarded_at.is_(None),
                *_class_filter(class_of_service),
            )
        )
        or 0
    )


def done_in(
    session: Session,
    board_id: int,
    start: datetime,
    end: datetime,
    class_of_service: str | None = None,
) -> list[tuple[int, str, datetime, datetime | None, datetime]]:
    """(id, key, done_at, committed_at, created_at) of items delivered in [start, end)."""
    rows = session.connection().execute(
        select(Item.id, Item.key, Item.done_at, Item.committed_at, Item.created_at)
        .where(
            Item.board_id == board_id,
            Item.done_at >= start,
            Item.done_at < end,
            Item.discarded_at.is_(None),
            *_class_filter(class_of_service),
        )
        .order_by(Item.done_at, Item.id),
        execution_options=_STREAM,
    )
    return list(rows)  # type: ignore[arg-type]


def open_committed(
    session: Session, board_id: int, class_of_service: str | None = None
) -> list[tuple[int, str, int, datetime]]:
    """(id, key, state_id, committed_at) of open items past the commitment point."""
    rows = session.connection().execute(
        select(Item.id, Item.key, Item.state_id, Item.committed_at)
        .where(
            Item.board_id == board_id,
            Item.done_at.is_(None),
            Item.discarded_at.is_(None),
            Item.committed_at.is_not(None),
            *_class_filter(class_of_service),
        )
        .order_by(Item.committed_at, Item.id),
        execution_options=_STREAM,
    )
    return list(rows)  # type: ignore[arg-type]


def open_items_now(
    session: Session, board_id: int
) -> Iterator[tuple[int, int, str | None, str, datetime, bool]]:
    """(id, state_id, stage, class_of_service, created_at, blocked) of every open item now."""
    open_block = (
        select(Block.id)
        .where(Block.item_id == Item.id, Block.resolved_at.is_(None))
        .exists()
        .label("blocked")
    )
    stmt = select(
        Item.id, Item.state_id, Item.stage, Item.class_of_service, Item.created_at, open_block
    ).where(Item.board_id == board_id, Item.done_at.is_(None), Item.discarded_at.is_(None))
    yield from cast(Iterator[Any], session.connection().execute(stmt, execution_options=_STREAM))


def ready_since(session: Session, board_id: int) -> dict[int, datetime]:
    """item id -> when it last became ready, for the items in a Ready stage now."""
    rows = session.connection().execute(
        select(Event.item_id, func.max(Event.at))
        .join(Item, Item.id == Event.item_id)
        .where(
            Item.board_id == board_id,
            Item.stage == "ready",
            Item.done_at.is_(None),
            Item.discarded_at.is_(None),
            Event.type == "marked_ready",
        )
        .group_by(Event.item_id)
    )
    return {item_id: at for item_id, at in rows if item_id is not None}


def blocks_overlapping(
    session: Session,
    board_id: int,
    start: datetime,
    end: datetime,
    class_of_service: str | None = None,
) -> list[tuple[str, datetime, datetime | None]]:
    """(reason name, opened_at, resolved_at) of blocks open at some time in [start, end)."""
    stmt = (
        select(BlockReason.name, Block.opened_at, Block.resolved_at)
        .join(BlockReason, BlockReason.id == Block.reason_id)
        .where(
            Block.board_id == board_id,
            Block.opened_at < end,
            or_(Block.resolved_at.is_(None), Block.resolved_at > start),
        )
    )
    if class_of_service is not None:
        stmt = stmt.join(Item, Item.id == Block.item_id).where(
            Item.class_of_service == class_of_service
        )
    return cast(list[Any], list(session.connection().execute(stmt, execution_options=_STREAM)))


def done_items_at(session: Session, board_id: int, at: datetime) -> Iterator[tuple[int, str]]:
    """(id, key) of items delivered at or before `at` (in done from then on)."""
    stmt = (
        select(Item.id, Item.key)
        .where(Item.board_id == board_id, Item.done_at <= at, Item.discarded_at.is_(None))
        .order_by(Item.id)
    )
    yield from cast(Iterator[Any], session.connection().execute(stmt, execution_options=_STREAM))


def _open_at(board_id: int, at: datetime) -> list[Any]:
    return [
        Item.board_id == board_id,
        Item.created_at <= at,
        or_(Item.done_at.is_(None), Item.done_at > at),
        or_(Item.discarded_at.is_(None), Item.discarded_at > at),
    ]


def open_items_at(session: Session, board_id: int, at: datetime) -> Iterator[tuple[int, str]]:
    """(id, key) of items that existed at `at` and were neither done nor discarded yet."""
    stmt = select(Item.id, Item.key).where(*_open_at(board_id, at))
    yield from cast(Iterator[Any], session.connection().execute(stmt, execution_options=_STREAM))


@dataclass(frozen=True, slots=True)
class DelayRow:
    item_key: str
    title: str
    state: str | None
    reason: str
    note: str
    waiting_on: str
    opened_at: datetime
    opened_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str


def delays(
    session: Session,
    board_id: int,
    *,
    status: str,
    start: datetime,
    end: datetime,
    class_of_service: str | None = None,
) -> Iterator[DelayRow]:
    """Blocks open at some time in [start, end), oldest first; status open|closed|all."""
    opener = aliased(User)
    resolver = aliased(User)
    stmt = (
        select(
            Item.key,
            Item.title,
            State.name,
            BlockReason.name,
            Block.note,
            Block.waiting_on,
            Block.opened_at,
            opener.name,
            Block.resolved_at,
            resolver.name,
            Block.resolution,
        )
        .join(Item, Item.id == Block.item_id)
        .join(BlockReason, BlockReason.id == Block.reason_id)
        .outerjoin(State, State.id == Block.state_id)
        .outerjoin(opener, opener.id == Block.opened_by_id)
        .outerjoin(resolver, resolver.id == Block.resolved_by_id)
        .where(
            Block.board_id == board_id,
            Block.opened_at < end,
            or_(Block.resolved_at.is_(None), Block.resolved_at > start),
            *_class_filter(class_of_service),
        )
        .order_by(Block.opened_at, Block.id)
    )
    if status == "open":
        stmt = stmt.where(Block.resolved_at.is_(None))
    elif status == "closed":
        stmt = stmt.where(Block.resolved_at.is_not(None))
    for row in session.connection().execute(stmt, execution_options=_STREAM):
        yield DelayRow(*row)


def state_names(session: Session, board_id: int) -> dict[str, tuple[int, str]]:
    """name -> (id, kind), exact names, for import validation."""
    rows = session.connection().execute(
        select(State.name, State.id, State.kind).where(State.board_id == board_id)
    )
    return {name: (state_id, kind) for name, state_id, kind in rows}


def reason_ids(session: Session, board_id: int) -> dict[str, int]:
    rows = session.connection().execute(
        select(BlockReason.name, BlockReason.id).where(BlockReason.board_id == board_id)
    )
    return {name: reason_id for name, reason_id in rows}


def item_ids_by_number(session: Session, board_id: int, first: int, last: int) -> dict[int, int]:
    """number -> id for the items numbered first..last on the board (just imported)."""
    rows = session.connection().execute(
        select(Item.number, Item.id).where(
            and_(Item.board_id == board_id, Item.number >= first, Item.number <= last)
        )
    )
    return {number: item_id for number, item_id in rows}


def fields_as_of(
    session: Session, board_id: int, item_ids: Sequence[int], at: datetime
) -> dict[int, tuple[str, str]]:
    """(title, class_of_service) of the board's items as they were at `at`: today's values
    with the edits made after `at` undone, newest first, so the oldest edit's "before" wins."""
    conn = session.connection()
    fields: dict[int, list[str]] = {}
    for matches in _id_filters(session, Item.id, item_ids):
        rows = conn.execute(
            select(Item.id, Item.title, Item.class_of_service).where(
                matches, Item.board_id == board_id
            )
        )
        for item_id, title, cos in rows:
            fields[item_id] = [title, cos]
    for matches in _id_filters(session, Event.item_id, list(fields)):
        edits = conn.execute(
            select(Event.item_id, Event.data)
            .where(matches, Event.type == "edited", Event.at > at)
            .order_by(Event.id.desc())
        )
        for item_id, data in edits:
            changes = (data or {}).get("changes", {})
            for index, name in enumerate(("title", "class_of_service")):
                if name in changes:
                    fields[item_id][index] = changes[name][0]
    return {item_id: (values[0], values[1]) for item_id, values in fields.items()}


# --------------------------------------------------------------------------- cfd rollups


def cfd_mark(session: Session, board_id: int) -> tuple[date, int, int, int] | None:
    """(through, done_state_id, events, last_event_id) of the board's cached CFD days."""
    row = (
        session.connection()
        .execute(
            select(
                CfdMark.through, CfdMark.done_state_id, CfdMark.events, CfdMark.last_event_id
            ).where(CfdMark.board_id == board_id)
        )
        .first()
    )
    return None if row is None else (row[0], row[1], row[2], row[3])


def events_stamp(conn: Connection, board_id: int, before: datetime) -> tuple[int, int]:
    """(count, last id) of the board's events before `before`: changes when history before
    it is written (imports, restores, backdated actions), not when today is (index range
    scan on (board_id, at))."""
    stmt = select(func.count(), func.coalesce(func.max(Event.id), 0)).where(
        Event.board_id == board_id, Event.at < before
    )
    row = conn.execute(stmt).one()
    return int(row[0]), int(row[1])


def cfd_days(
    session: Session, board_id: int, first: date, last: date
) -> Iterator[tuple[date, int, int]]:
    """(day, state_id, items) cached for the board's days first..last."""
    stmt = select(CfdDay.day, CfdDay.state_id, CfdDay.items).where(
        CfdDay.board_id == board_id, CfdDay.day >= first, CfdDay.day <= last
    )
    yield from cast(Iterator[Any], session.connection().execute(stmt))


# --------------------------------------------------------------------------- flow rollups


def flow_mark(session: Session, board_id: int) -> tuple[date, date, int, int, int] | None:
    """(since, through, done_state_id, events, last_event_id) of the board's cached flow days."""
    row = (
        session.connection()
        .execute(
            select(
                FlowMark.since,
                FlowMark.through,
                FlowMark.done_state_id,
                FlowMark.events,
                FlowMark.last_event_id,
            ).where(FlowMark.board_id == board_id)
        )
        .first()
    )
    return None if row is None else (row[0], row[1], row[2], row[3], row[4])


FlowDayRow = tuple[int, int, int, int, int, int, int, int, int, int, int, bytes, bytes, bytes]


def flow_days(session: Session, board_id: int, first: date, last: date) -> Iterator[FlowDayRow]:
    """(state_id, doing_us, ready_us, blocked_us, total_us, sent_back_out, sent_back_in,
    completed, completed_committed, cycle_us, active_us, visits, waited, wip) of the board's
    cached days first..last."""
    stmt = select(
        FlowDay.state_id,
        FlowDay.doing_us,
        FlowDay.ready_us,
        FlowDay.blocked_us,
        FlowDay.total_us,
        FlowDay.sent_back_out,
        FlowDay.sent_back_in,
        FlowDay.completed,
        FlowDay.completed_committed,
        FlowDay.cycle_us,
        FlowDay.active_us,
        FlowDay.visits,
        FlowDay.waited,
        FlowDay.wip,
    ).where(FlowDay.board_id == board_id, FlowDay.day >= first, FlowDay.day <= last)
    yield from cast(Iterator[Any], session.connection().execute(stmt))
