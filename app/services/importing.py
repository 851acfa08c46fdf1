"""Importing items with their history from another tool.

The whole payload is validated before anything is written, so an import either stores every
item or none. Imported history is written as the same rows the live services write (Item,
Block, and `created` / `pulled` / `marked_ready` / `unready` / `completed` / `sent_back` /
`blocked` / `unblocked` events at their historical times), plus one `imported` event per item,
so analytics and time travel read it exactly like work done on the board.

Limits, criteria and the one-state-at-a-time pull rule are not applied to history: it
already happened. History may therefore skip states and move while blocked.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.db import metric_queries as mq
from app.db import queries
from app.db.models import CLASSES_OF_SERVICE, Board, User
from app.db.session import Database
from app.flow.errors import FlowError, InvalidInput
from app.flow.text import is_visibly_empty, text_problem
from app.inputs import parse_id
from app.services.access import visible_board

TITLE_MAX = 200
NOTE_MAX = 5000
WAITING_ON_MAX = 200
# Errors listed in one 422 (the count of all of them is given too).
ERRORS_LISTED = 200
# Items written per bulk round (rows built, then COPY / executemany); bounds memory and paces
# the progress bar of very large CLI imports.
CHUNK_ITEMS = 2_000
SEND_BACK_REASON = "Imported history"

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """One problem in the payload: which item (0-based), which field, and what is wrong."""

    item: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"item": self.item, "field": self.field, "message": self.message}


@dataclass(slots=True)
class _Move:
    at: datetime
    state_id: int
    stage: str | None


@dataclass(slots=True)
class _Block:
    reason_id: int
    reason: str
    opened_at: datetime
    resolved_at: datetime | None
    note: str
    waiting_on: str


@dataclass(slots=True)
class _Planned:
    title: str
    class_of_service: str
    created_at: datetime
    moves: list[_Move] = field(default_factory=list)
    done_at: datetime | None = None
    blocks: list[_Block] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _StateInfo:
    id: int
    kind: str
    position: int
    name: str


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Holds off Python's cyclic garbage collector while a large import is parsed, checked and
    written: it would otherwise walk the whole payload (millions of objects) again and again as
    the rows are made, which took about half of reading and validating. Nothing here makes
    reference cycles; memory is freed as usual. Re-enabled by whoever found it enabled."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse_time(value: object) -> datetime | None:
    """An ISO 8601 time (naive means UTC), or None when it is not one."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is UTC:  # "Z" or "+00:00", most of a large import: nothing to convert
        return parsed
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC moment Python has
        return None


class _Validator:
    """Checks the payload against the board and turns it into _Planned items."""

    def __init__(
        self,
        states: dict[str, _StateInfo],
        reasons: dict[str, int],
        backlog: _StateInfo,
        now: datetime,
    ) -> None:
        self.states = states
        self.reasons = reasons
        self.backlog = backlog
        self.now = now
        self.errors: list[ImportProblem] = []

    def error(self, item: int | None, where: str, message: str) -> None:
        self.errors.append(ImportProblem(item, where, message))

    def _time(self, index: int, where: str, value: object) -> datetime | None:
        parsed = _parse_time(value)
        if parsed is None:
            self.error(index, where, "must be an ISO 8601 time, like 2026-03-01T09:30:00Z")
        elif parsed > self.now:
            self.error(index, where, "is in the future; history ends now")
            return None
        return parsed

    def item(self, index: int, raw: object) -> _Planned | None:
        if not isinstance(raw, dict):
            self.error(index, "", "each item must be an object")
            return None
        before = len(self.errors)
        raw_title = raw.get("title")
        title = " ".join(str(raw_title or "").split())
        if not isinstance(raw_title, str) or not 1 <= len(title) <= TITLE_MAX:
            self.error(index, "title", f"needs 1 to {TITLE_MAX} characters")
        elif (problem := text_problem(raw_title)) is not None:
            self.error(index, "title", problem)
        elif is_visibly_empty(title):
            self.error(index, "title", "needs visible characters, not only blanks")
        cos = raw.get("class_of_service") or "standard"
        if cos not in CLASSES_OF_SERVICE:
            self.error(index, "class_of_service", f"must be one of {', '.join(CLASSES_OF_SERVICE)}")
        created_at = self._time(index, "created_at", raw.get("created_at"))
        history = raw.get("history") or []
        blocks = raw.get("blocks") or []
        if not isinstance(history, list):
            self.error(index, "history", "must be a list")
            history = []
        if not isinstance(blocks, list):
            self.error(index, "blocks", "must be a list")
            blocks = []
        planned = _Planned(title, str(cos), created_at or self.now)
        self._history(index, history, planned, created_at)
        self._blocks(index, blocks, planned, created_at)
        return planned if len(self.errors) == before else None

    def _history(
        self, index: int, history: list[Any], planned: _Planned, created_at: datetime | None
    ) -> None:
        current, stage = self.backlog, None
        last_at = created_at
        for n, entry in enumerate(history):
            where = f"history[{n}]"
            if not isinstance(entry, dict):
                self.error(index, where, "must be an object {at, state, stage?}")
                return
            at = self._time(index, f"{where}.at", entry.get("at"))
            name = entry.get("state")
            state = self.states.get(name) if isinstance(name, str) else None
            if state is None:
                self.error(index, f"{where}.state", f"no state named {name!r} on this board")
                return
            wanted = entry.get("stage")
            if state.kind == "work":
                wanted = wanted or "doing"
                if wanted not in ("doing", "ready"):
                    self.error(index, f"{where}.stage", "is doing or ready in a work state")
                    return
            elif wanted is not None:
                self.error(
                    index, f"{where}.stage", f"must be empty: {state.name} is a {state.kind} state"
                )
                return
            if state.kind == "backlog":
                self.error(index, f"{where}.state", "history cannot return to the backlog")
                return
            if current.kind == "done":
                self.error(index, where, "comes after the item was done; done is final")
                return
            if state.id == current.id and wanted == stage:
                self.error(index, where, f"repeats {state.name} / {wanted}, where it already is")
                return
            if at is None:
                return
            if last_at is not None and at < last_at:
                what = "created_at" if n == 0 else f"history[{n - 1}].at"
                self.error(index, f"{where}.at", f"goes back in time (before {what})")
                return
            planned.moves.append(_Move(at, state.id, wanted))
            if state.kind == "done":
                planned.done_at = at
            current, stage, last_at = state, wanted, at

    def _blocks(
        self, index: int, blocks: list[Any], planned: _Planned, created_at: datetime | None
    ) -> None:
        done_at = planned.done_at
        parsed: list[tuple[int, _Block]] = []
        for n, entry in enumerate(blocks):
            where = f"blocks[{n}]"
            if not isinstance(entry, dict):
                self.error(index, where, "must be an object {reason, from, to?, note?}")
                continue
            reason = entry.get("reason")
            reason_id = self.reasons.get(reason) if isinstance(reason, str) else None
            if reason_id is None:
                self.error(index, f"{where}.reason", f"no block reason named {reason!r}")
            opened = self._time(index, f"{where}.from", entry.get("from"))
            resolved = None
            if entry.get("to") is not None:
                resolved = self._time(index, f"{where}.to", entry.get("to"))
                if resolved is None:
                    continue
            note, waiting_on = entry.get("note") or "", entry.get("waiting_on") or ""
            if not isinstance(note, str) or len(note) > NOTE_MAX:
                self.error(index, f"{where}.note", f"is text of at most {NOTE_MAX} characters")
            elif (problem := text_problem(note, multiline=True)) is not None:
                self.error(index, f"{where}.note", problem)
            if not isinstance(waiting_on, str) or len(waiting_on) > WAITING_ON_MAX:
                self.error(
                    index,
                    f"{where}.waiting_on",
                    f"is text of at most {WAITING_ON_MAX} characters",
                )
            elif (problem := text_problem(waiting_on)) is not None:
                self.error(index, f"{where}.waiting_on", problem)
            if opened is None or reason_id is None:
                continue
            if created_at is not None and opened < created_at:
                self.error(index, f"{where}.from", "is before the item's created_at")
                continue
            if resolved is not None and resolved < opened:
                self.error(index, f"{where}.to", "is before its from")
                continue
            if done_at is not None and (resolved is None or resolved > done_at):
                self.error(index, f"{where}.to", "a block must end by the time the item is done")
                continue
            block = _Block(
                reason_id, str(reason), opened, resolved, str(note).strip(), str(waiting_on).strip()
            )
            parsed.append((n, block))
        parsed.sort(key=lambda p: p[1].opened_at)
        for (_, earlier), (n, later) in pairwise(parsed):
            if earlier.resolved_at is None or later.opened_at < earlier.resolved_at:
                self.error(index, f"blocks[{n}].from", "overlaps another block of this item")
        planned.blocks = [b for _, b in parsed]


def validate_payload(
    *, session: Session, board_id: int, payload: object, now: datetime
) -> list[_Planned]:
    """Every item of the payload, checked against the board. Raises InvalidInput listing all
    problems (up to ERRORS_LISTED), so nothing is written when anything is wrong."""
    rows = mq.states(session, board_id)
    states = {r.name: _StateInfo(r.id, r.kind, r.position, r.name) for r in rows}
    backlog = next(s for s in states.values() if s.kind == "backlog")
    validator = _Validator(states, mq.reason_ids(session, board_id), backlog, now)
    items = payload.get("items") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise InvalidInput(
            "The import needs a body {items: [...]}.",
            errors=[ImportProblem(None, "items", "must be a list").as_dict()],
        )
    planned = [validator.item(index, raw) for index, raw in enumerate(items)]
    if validator.errors:
        errors = validator.errors
        first = errors[0]
        raise InvalidInput(
            f"Nothing was imported: {len(errors)} problem(s), the first in item {first.item}, "
            f"{first.field}: {first.message}.",
            errors=[e.as_dict() for e in errors[:ERRORS_LISTED]],
            error_count=len(errors),
        )
    return [p for p in planned if p is not None]


# Order of events at the same instant: a block ends before the item moves (a blocked item
# would not have moved), and a block that starts at a move starts in the new state.
_RANK_UNBLOCK, _RANK_MOVE, _RANK_BLOCK = 1, 2, 3

ITEM_COLUMNS = (
    "id, board_id, number, key, title, description, class_of_service, due_date, state_id, "
    "stage, owner_id, created_by_id, created_at, state_entered_at, committed_at, done_at, "
    "discarded_at, discard_reason, version"
)
BLOCK_COLUMNS = (
    "id, board_id, item_id, reason_id, note, waiting_on, state_id, opened_at, opened_by_id, "
    "resolved_at, resolved_by_id, resolution"
)
EVENT_COLUMNS = "board_id, item_id, type, actor_id, at, from_state_id, to_state_id, stage, data"
# The event data the old ORM path serialised with json.dumps, precomputed where it is fixed.
_NO_DATA = json.dumps({})
_SENT_BACK_DATA = json.dumps({"reason": SEND_BACK_REASON})

Row = tuple[Any, ...]


def _sqlite_time(at: datetime | None) -> str | None:
    """What SQLAlchemy's SQLite DateTime stores for UTCDateTime: naive UTC with microseconds."""
    if at is None:
        return None
    if at.tzinfo is UTC:  # all of the payload's times: "YYYY-MM-DD HH:MM:SS.ffffff+00:00"
        return at.isoformat(" ", "microseconds")[:26]
    stored = at.isoformat(" ", "microseconds")
    if stored.endswith("+00:00"):  # another zero-offset tzinfo
        return stored[:-6]
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _same_time(at: datetime | None) -> datetime | None:
    return at


class _Rows:
    """Writes rows as plain tuples straight to the driver, in the session's transaction.

    The import's hot path: 20,000 items are ~200,000 events, and SQLAlchemy's per-row,
    per-column bind processing cost more than the database's own work. SQLite gets
    executemany with times preformatted as SQLAlchemy would store them; PostgreSQL gets COPY.
    Item and block ids are reserved up front (a sequence on PostgreSQL; past the highest id on
    SQLite, whose write lock the import already holds), so no insert has to return any.
    """

    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        self.postgres = self.connection.dialect.name == "postgresql"
        self.time: Callable[[datetime | None], Any] = _same_time if self.postgres else _sqlite_time
        self.may_skip_checks = self.postgres and self._may_set_replication_role()

    def _may_set_replication_role(self) -> bool:
        """A superuser may; from PostgreSQL 15 on, so may a role granted it by
        GRANT SET ON PARAMETER session_replication_role TO <role>."""
        info = self.connection.dialect.server_version_info or (0,)
        if info >= (15,):
            query = "SELECT has_parameter_privilege('session_replication_role', 'SET')"
        else:
            query = "SELECT current_setting('is_superuser') = 'on'"
        return bool(self.connection.exec_driver_sql(query).scalar())

    @contextmanager
    def references_known(self) -> Iterator[None]:
        """Leaves out PostgreSQL's foreign-key checks of the event rows written inside, where
        the role may (see _may_set_replication_role): they were three lookups per event, about
        60 % of the server's work for an import, and prove nothing here. Every event refers to
        the board (this transaction's UPDATE holds its row), the importing user (locked by the
        checked item rows' created_by_id) and an item this transaction inserted, checked. The
        table has no other trigger that replica mode would leave out.

        Not restored on an error: the transaction is then rolled back, which undoes SET LOCAL.
        """
        if not self.may_skip_checks:
            yield
            return
        previous = self.connection.exec_driver_sql(
            "SELECT current_setting('session_replication_role')"
        ).scalar_one()
        self.connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        yield
        self.connection.execute(
            text("SELECT set_config('session_replication_role', :role, true)"), {"role": previous}
        )

    def reserve_ids(self, table: str, count: int) -> list[int]:
        if count == 0:
            return []
        if self.postgres:
            return list(
                self.connection.execute(
                    text(
                        "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                        "FROM generate_series(1, :count)"
                    ),
                    {"table": table, "count": count},
                ).scalars()
            )
        highest = self.connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}"))
        first = int(highest.scalar_one()) + 1
        return list(range(first, first + count))

    def insert(self, table: str, columns: str, rows: Iterable[Row]) -> None:
        """Raises SQLAlchemy's errors (IntegrityError, OperationalError...), as Core would.

        On PostgreSQL the rows stream to the server as they are made, so building them and
        the server's inserting overlap (two processes, two cores)."""
        if not self.postgres:
            listed = list(rows)
            if listed:
                marks = ", ".join("?" * (columns.count(",") + 1))
                statement = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
                self.connection.exec_driver_sql(statement, listed)
            return
        statement = f"COPY {table} ({columns}) FROM STDIN"
        raw = self.connection.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as error:
            # Wrapped and handled as for any statement: a lost connection is invalidated.
            self.connection._handle_dbapi_exception(error, statement, None, cursor, None)
        finally:
            cursor.close()


class _Writer:
    def __init__(
        self,
        board: Board,
        states: dict[int, _StateInfo],
        backlog: _StateInfo,
        actor: User,
        now: datetime,
        time: Callable[[datetime | None], Any],
    ) -> None:
        self.board_id = board.id
        self.key = board.key
        self.states = states
        self.backlog = backlog
        self.actor_id = actor.id
        self.now = now
        self.time = time

    def item_row(self, item_id: int, number: int, p: _Planned) -> Row:
        state_id, stage = self.backlog.id, None
        entered = p.created_at
        committed_at = done_at = None
        for move in p.moves:
            if move.state_id != state_id:
                entered = move.at
            if committed_at is None:
                committed_at = move.at  # the first move leaves the backlog: the commitment
            if self.states[move.state_id].kind == "done":
                done_at = move.at
            state_id, stage = move.state_id, move.stage
        time = self.time
        return (
            item_id,
            self.board_id,
            number,
            f"{self.key}-{number}",
            p.title,
            "",  # description
            p.class_of_service,
            None,  # due_date
            state_id,
            stage,
            None,  # owner_id
            self.actor_id,  # created_by_id
            time(p.created_at),
            time(entered),
            time(committed_at),
            time(done_at),
            None,  # discarded_at
            None,  # discard_reason
            1,  # version
        )

    def block_row(self, block_id: int, item_id: int, p: _Planned, b: _Block) -> Row:
        return (
            block_id,
            self.board_id,
            item_id,
            b.reason_id,
            b.note,
            b.waiting_on,
            _position_at(p, b.opened_at, self.backlog.id, inclusive=True)[0],
            self.time(b.opened_at),
            self.actor_id,
            self.time(b.resolved_at),
            self.actor_id if b.resolved_at is not None else None,
            "",  # resolution
        )

    def events(self, item_id: int, p: _Planned, block_ids: list[int]) -> list[Row]:
        """The item's events in the order the live services would have written them."""
        board_id, actor_id, time = self.board_id, self.actor_id, self.time
        created = json.dumps({"title": p.title})
        rows: list[Row] = [
            (
                board_id,
                item_id,
                "created",
                actor_id,
                time(p.created_at),
                None,
                self.backlog.id,
                None,
                created,
            )
        ]
        ranks = [0]
        state, stage = self.backlog, None
        for move in p.moves:
            target = self.states[move.state_id]
            at = time(move.at)
            if target.id == state.id:
                kind = "marked_ready" if move.stage == "ready" else "unready"
                rows.append(
                    (
                        board_id,
                        item_id,
                        kind,
                        actor_id,
                        at,
                        state.id,
                        state.id,
                        move.stage,
                        _NO_DATA,
                    )
                )
            elif target.kind == "done" and state.kind == "work":
                if stage == "doing":
                    rows.append(
                        (
                            board_id,
                            item_id,
                            "marked_ready",
                            actor_id,
                            at,
                            state.id,
                            state.id,
                            "ready",
                            _NO_DATA,
                        )
                    )
                rows.append(
                    (
                        board_id,
                        item_id,
                        "completed",
                        actor_id,
                        at,
                        state.id,
                        target.id,
                        None,
                        _NO_DATA,
                    )
                )
            else:
                back = target.position < state.position
                rows.append(
                    (
                        board_id,
                        item_id,
                        "sent_back" if back else "pulled",
                        actor_id,
                        at,
                        state.id,
                        target.id,
                        "doing" if target.kind == "work" else None,
                        _SENT_BACK_DATA if back else _NO_DATA,
                    )
                )
                if move.stage == "ready":
                    rows.append(
                        (
                            board_id,
                            item_id,
                            "marked_ready",
                            actor_id,
                            at,
                            target.id,
                            target.id,
                            "ready",
                            _NO_DATA,
                        )
                    )
            state, stage = target, move.stage
        if p.blocks:
            ranks.extend(_RANK_MOVE for _ in range(len(rows) - 1))
            for block, block_id in zip(p.blocks, block_ids, strict=True):
                sid, sstage = _position_at(p, block.opened_at, self.backlog.id, inclusive=True)
                data: dict[str, Any] = {"block_id": block_id, "reason": block.reason}
                if block.waiting_on:
                    data["waiting_on"] = block.waiting_on
                rows.append(
                    (
                        board_id,
                        item_id,
                        "blocked",
                        actor_id,
                        time(block.opened_at),
                        sid,
                        sid,
                        sstage,
                        json.dumps(data),
                    )
                )
                ranks.append(_RANK_BLOCK)
                if block.resolved_at is not None:
                    sid, sstage = _position_at(
                        p, block.resolved_at, self.backlog.id, inclusive=False
                    )
                    seconds = int((block.resolved_at - block.opened_at).total_seconds())
                    data = {
                        "block_id": block_id,
                        "reason": block.reason,
                        "blocked_seconds": seconds,
                    }
                    rows.append(
                        (
                            board_id,
                            item_id,
                            "unblocked",
                            actor_id,
                            time(block.resolved_at),
                            sid,
                            sid,
                            sstage,
                            json.dumps(data),
                        )
                    )
                    ranks.append(_RANK_UNBLOCK)
            # Stable: same time and rank keep the order written (created, then the moves).
            # SQLite's preformatted times sort like the times (fixed width, all UTC).
            order = sorted(range(len(rows)), key=lambda n: (rows[n][4], ranks[n]))
            rows = [rows[n] for n in order]
        # Without blocks the rows are already in time order: created, then the moves.
        imported: dict[str, Any] = {"history": len(p.moves)}
        if p.blocks:
            imported["blocks"] = len(p.blocks)
        rows.append(
            (
                board_id,
                item_id,
                "imported",
                actor_id,
                time(self.now),
                None,
                None,
                None,
                json.dumps(imported),
            )
        )
        return rows


def _position_at(
    p: _Planned, at: datetime, backlog_id: int, *, inclusive: bool
) -> tuple[int, str | None]:
    """(state, stage) of the planned item at `at`; with inclusive, moves at `at` have happened."""
    state_id, stage = backlog_id, None
    for move in p.moves:
        if move.at < at or (inclusive and move.at == at):
            state_id, stage = move.state_id, move.stage
        else:
            break
    return state_id, stage


def import_history(
    *,
    session: Session,
    board_id: int,
    actor: User,
    payload: dict[str, Any],
    progress: Progress | None = None,
    now: datetime | None = None,
) -> int:
    """Imports items with their history onto the board; returns how many. Managers only.

    Raises NotFound, InsufficientRole, and InvalidInput (422) listing every problem as
    {item, field, message} when any item is invalid; then nothing is written. Writes in bulk
    (COPY on PostgreSQL, executemany on SQLite) in chunks, in the session's transaction: the
    caller commits, so the import is one transaction. progress(done, total) is called after
    each chunk.
    """
    now = now or queries.now()
    board, _ = visible_board(
        session, board_id=board_id, actor=actor, required="manager", doing="import items"
    )
    with _collector_paused():
        planned = validate_payload(session=session, board_id=board.id, payload=payload, now=now)
        if progress is not None:
            progress(0, len(planned))
        if planned:
            _write(session, board, actor, planned, now, progress)
    return len(planned)


def _write(
    session: Session,
    board: Board,
    actor: User,
    planned: list[_Planned],
    now: datetime,
    progress: Progress | None,
) -> None:
    """Writes the checked items, their blocks and events in chunks, in the session's
    transaction."""
    total = len(planned)
    rows = mq.states(session, board.id)
    states = {r.id: _StateInfo(r.id, r.kind, r.position, r.name) for r in rows}
    backlog = next(s for s in states.values() if s.kind == "backlog")
    # Reserve the item numbers in one UPDATE ... RETURNING, as create_item does one at a time;
    # on SQLite this write also takes the write lock before the ids are reserved.
    last = session.execute(
        update(Board)
        .where(Board.id == board.id)
        .values(last_item_number=Board.last_item_number + total)
        .returning(Board.last_item_number)
    ).scalar_one()
    set_committed_value(board, "last_item_number", last)
    first_number = last - total + 1
    sink = _Rows(session)
    writer = _Writer(board, states, backlog, actor, now, sink.time)
    item_ids = sink.reserve_ids("item", total)
    block_ids = sink.reserve_ids("block", sum(len(p.blocks) for p in planned))
    next_block = 0
    for start in range(0, total, CHUNK_ITEMS):
        chunk = planned[start : start + CHUNK_ITEMS]
        item_rows: list[Row] = []
        block_rows: list[Row] = []
        owned: list[tuple[int, _Planned, list[int]]] = []
        for offset, p in enumerate(chunk):
            item_id = item_ids[start + offset]
            item_rows.append(writer.item_row(item_id, first_number + start + offset, p))
            mine = block_ids[next_block : next_block + len(p.blocks)]
            next_block += len(p.blocks)
            block_rows.extend(
                writer.block_row(block_id, item_id, p, b)
                for block_id, b in zip(mine, p.blocks, strict=True)
            )
            owned.append((item_id, p, mine))
        sink.insert("item", ITEM_COLUMNS, item_rows)
        if block_rows:
            sink.insert("block", BLOCK_COLUMNS, block_rows)
        # Most of the rows: made while they are sent (see _Rows.insert).
        events = (row for item_id, p, mine in owned for row in writer.events(item_id, p, mine))
        with sink.references_known():
            sink.insert("event", EVENT_COLUMNS, events)
        if progress is not None:
            progress(start + len(chunk), total)
    session.flush()


# --- from a file (the `flowboard import-history FILE BOARD` command) -------------------------


class ImportFileError(Exception):
    """Why nothing was imported from a file, in one line a person can act on."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_payload(path: Path) -> object:
    """The JSON in `path`. Raises ImportFileError for a missing, unreadable or invalid file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImportFileError(f"there is no file {path}.") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path} is a folder, not a JSON file.") from None
    except UnicodeDecodeError:
        raise ImportFileError(f"{path} is not UTF-8 text.") from None
    except OSError as error:
        reason = _one_line(error.strerror or error)
        raise ImportFileError(f"cannot read {path}: {reason}.") from None
    try:
        with _collector_paused():
            return json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportFileError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None
    except RecursionError:
        raise ImportFileError(f"{path} nests too deeply to be an import.") from None


def _board(session: Session, ref: str) -> Board:
    board_id = parse_id(ref)
    found = session.scalar(
        select(Board).where(Board.id == board_id if board_id is not None else Board.key == ref)
    )
    if found is None:
        raise ImportFileError(f"there is no board {ref!r}; give its id or key (like DOC).")
    return found


def import_file(
    *, database: Database, path: Path, board: str, progress: Progress | None = None
) -> tuple[int, str]:
    """Imports the JSON file `path` into the board with id or key `board`, as the first site
    admin, all or nothing; returns (items imported, board name).

    Raises ImportFileError (one line) for every problem: the file, its shape or content, the
    board, a missing admin, or a database that cannot be used.
    """
    payload = read_payload(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        raise ImportFileError(f'{path} must hold one object like {{"items": [...]}}.')
    try:
        with database.unit_of_work() as session:
            target = _board(session, board)
            actor = session.scalar(select(User).where(User.is_admin.is_(True)).order_by(User.id))
            if actor is None:
                raise ImportFileError("create an admin first (flowboard create-user --admin).")
            count = import_history(
                session=session,
                board_id=target.id,
                actor=actor,
                payload=payload,
                progress=progress,
            )
            return count, target.name
    except FlowError as error:
        raise ImportFileError(_one_line(error.detail)) from None
    except SQLAlchemyError as error:
        reason = _one_line(str(getattr(error, "orig", None) or error).splitlines()[0])
        raise ImportFileError(f"the database could not be used: {reason}") from None
