"""The bulk import writes exactly what the former row-by-row path wrote, on both databases.

The former path (dict rows through SQLAlchemy Core's executemany, ids read back) is kept
below as the reference: the same payload is imported onto two identical boards, one by
each path, and every item, block and event is compared column by column, including the
stored text of times and event data (SQLite compares times as text).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import String, Table, Text, func, insert, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import metric_queries as mq
from app.db.models import Block, BlockReason, Board, Event, Item, State, User
from app.services import boards, importing, items
from app.services.importing import (
    _RANK_BLOCK,
    _RANK_MOVE,
    _RANK_UNBLOCK,
    SEND_BACK_REASON,
    ImportFileError,
    _Block,
    _Planned,
    _position_at,
    _StateInfo,
    import_file,
    import_history,
    validate_payload,
)
from tests.analytics import helpers as h
from tests.analytics.helpers import item, t
from tests.factories import Seed

NOW = t(30, 12, month=4)
STATES = ("Build", "Review", "Done")


class _ReferenceWriter:
    """The row-building of the import before the bulk path (dicts through SQLAlchemy Core),
    kept as the oracle the bulk path must match row for row."""

    def __init__(
        self,
        board: Board,
        states: dict[int, _StateInfo],
        backlog: _StateInfo,
        actor: User,
        now: datetime,
    ) -> None:
        self.board = board
        self.states = states
        self.backlog = backlog
        self.actor = actor
        self.now = now

    def item_row(self, number: int, p: _Planned) -> dict[str, Any]:
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
        return {
            "board_id": self.board.id,
            "number": number,
            "key": f"{self.board.key}-{number}",
            "title": p.title,
            "description": "",
            "class_of_service": p.class_of_service,
            "due_date": None,
            "state_id": state_id,
            "stage": stage,
            "owner_id": None,
            "created_by_id": self.actor.id,
            "created_at": p.created_at,
            "state_entered_at": entered,
            "committed_at": committed_at,
            "done_at": done_at,
            "discarded_at": None,
            "discard_reason": None,
            "version": 1,
        }

    def block_row(self, item_id: int, p: _Planned, b: _Block) -> dict[str, Any]:
        return {
            "board_id": self.board.id,
            "item_id": item_id,
            "reason_id": b.reason_id,
            "note": b.note,
            "waiting_on": b.waiting_on,
            "state_id": _position_at(p, b.opened_at, self.backlog.id, inclusive=True)[0],
            "opened_at": b.opened_at,
            "opened_by_id": self.actor.id,
            "resolved_at": b.resolved_at,
            "resolved_by_id": self.actor.id if b.resolved_at is not None else None,
            "resolution": "",
        }

    def _event(
        self,
        item_id: int,
        type_: str,
        at: datetime,
        from_id: int | None,
        to_id: int | None,
        stage: str | None,
        **data: Any,
    ) -> dict[str, Any]:
        return {
            "board_id": self.board.id,
            "item_id": item_id,
            "type": type_,
            "actor_id": self.actor.id,
            "at": at,
            "from_state_id": from_id,
            "to_state_id": to_id,
            "stage": stage,
            "data": {k: v for k, v in data.items() if v is not None},
        }

    def events(self, item_id: int, p: _Planned, block_ids: list[int]) -> list[dict[str, Any]]:
        """The item's events in the order the live services would have written them."""
        timed: list[tuple[datetime, int, int, dict[str, Any]]] = []
        seq = 0

        def add(at: datetime, rank: int, row: dict[str, Any]) -> None:
            nonlocal seq
            timed.append((at, rank, seq, row))
            seq += 1

        add(
            p.created_at,
            0,
            self._event(
                item_id, "created", p.created_at, None, self.backlog.id, None, title=p.title
            ),
        )
        state, stage = self.backlog, None
        for move in p.moves:
            target = self.states[move.state_id]
            at = move.at
            if target.id == state.id:
                kind = "marked_ready" if move.stage == "ready" else "unready"
                add(at, _RANK_MOVE, self._event(item_id, kind, at, state.id, state.id, move.stage))
            elif target.kind == "done" and state.kind == "work":
                if stage == "doing":
                    add(
                        at,
                        _RANK_MOVE,
                        self._event(item_id, "marked_ready", at, state.id, state.id, "ready"),
                    )
                add(
                    at, _RANK_MOVE, self._event(item_id, "completed", at, state.id, target.id, None)
                )
            else:
                back = target.position < state.position
                entry_stage = "doing" if target.kind == "work" else None
                add(
                    at,
                    _RANK_MOVE,
                    self._event(
                        item_id,
                        "sent_back" if back else "pulled",
                        at,
                        state.id,
                        target.id,
                        entry_stage,
                        reason=SEND_BACK_REASON if back else None,
                    ),
                )
                if move.stage == "ready":
                    add(
                        at,
                        _RANK_MOVE,
                        self._event(item_id, "marked_ready", at, target.id, target.id, "ready"),
                    )
            state, stage = target, move.stage
        for block, block_id in zip(p.blocks, block_ids, strict=True):
            sid, sstage = _position_at(p, block.opened_at, self.backlog.id, inclusive=True)
            add(
                block.opened_at,
                _RANK_BLOCK,
                self._event(
                    item_id,
                    "blocked",
                    block.opened_at,
                    sid,
                    sid,
                    sstage,
                    block_id=block_id,
                    reason=block.reason,
                    waiting_on=block.waiting_on or None,
                ),
            )
            if block.resolved_at is not None:
                sid, sstage = _position_at(p, block.resolved_at, self.backlog.id, inclusive=False)
                add(
                    block.resolved_at,
                    _RANK_UNBLOCK,
                    self._event(
                        item_id,
                        "unblocked",
                        block.resolved_at,
                        sid,
                        sid,
                        sstage,
                        block_id=block_id,
                        reason=block.reason,
                        blocked_seconds=int((block.resolved_at - block.opened_at).total_seconds()),
                    ),
                )
        timed.sort(key=lambda t: (t[0], t[1], t[2]))
        rows = [t[3] for t in timed]
        rows.append(
            self._event(
                item_id,
                "imported",
                self.now,
                None,
                None,
                None,
                history=len(p.moves),
                blocks=len(p.blocks) or None,
            )
        )
        return rows


def _reference_import(
    session: Session, board_id: int, actor: User, payload: dict[str, Any], now: datetime
) -> int:
    """import_history's write loop before the bulk path, on the same validated plan."""
    board = session.get(Board, board_id)
    assert board is not None
    planned = validate_payload(session=session, board_id=board_id, payload=payload, now=now)
    total = len(planned)
    rows = mq.states(session, board_id)
    states = {r.id: _StateInfo(r.id, r.kind, r.position, r.name) for r in rows}
    backlog = next(s for s in states.values() if s.kind == "backlog")
    writer = _ReferenceWriter(board, states, backlog, actor, now)
    last = session.execute(
        update(Board)
        .where(Board.id == board_id)
        .values(last_item_number=Board.last_item_number + total)
        .returning(Board.last_item_number)
    ).scalar_one()
    first_number = last - total + 1
    item_table, block_table, event_table = (
        cast(Table, Item.__table__),
        cast(Table, Block.__table__),
        cast(Table, Event.__table__),
    )
    numbers = range(first_number, first_number + total)
    session.execute(
        item_table.insert(), [writer.item_row(n, p) for n, p in zip(numbers, planned, strict=True)]
    )
    ids = mq.item_ids_by_number(session, board_id, numbers[0], numbers[-1])
    item_ids = [ids[n] for n in numbers]
    block_rows = [
        writer.block_row(item_id, p, b)
        for item_id, p in zip(item_ids, planned, strict=True)
        for b in p.blocks
    ]
    block_ids: list[int] = []
    if block_rows:
        block_ids = list(
            session.execute(
                block_table.insert().returning(block_table.c.id, sort_by_parameter_order=True),
                block_rows,
            ).scalars()
        )
    event_rows: list[dict[str, Any]] = []
    offset = 0
    for item_id, p in zip(item_ids, planned, strict=True):
        mine = block_ids[offset : offset + len(p.blocks)]
        offset += len(p.blocks)
        event_rows.extend(writer.events(item_id, p, mine))
    session.execute(event_table.insert(), event_rows)
    session.flush()
    return total


# --- the payload: a few hundred random histories with every shape the writer handles -------


def _payload(count: int, seed: int = 8) -> dict[str, Any]:
    """Random histories: skips, sends back, unready, ready at a move, done straight from doing,
    blocks spanning moves or starting at one, open blocks, items left in the backlog."""
    rng = random.Random(seed)
    reasons = ("Waiting for decision", "Dependency", "Waiting for information")
    out: list[dict[str, Any]] = []
    for n in range(count):
        created = t(1) + timedelta(hours=rng.randint(0, 24 * 20), minutes=rng.randint(0, 59))
        at = created + timedelta(hours=rng.choice((0, 1, 5)))
        history: list[dict[str, Any]] = []
        position, stage = 0, None  # 0: backlog, 1..3: STATES
        done_at: datetime | None = None
        for _ in range(rng.randint(0, 7)):
            if position == 3:
                break
            roll = rng.random()
            if position and stage == "doing" and roll < 0.35:
                entry = h.move(at, STATES[position - 1], "ready")
                stage = "ready"
            elif position and stage == "ready" and roll < 0.1:
                entry = h.move(at, STATES[position - 1], "doing")  # unready
                stage = "doing"
            elif position == 2 and roll < 0.3:
                position, stage = 1, "doing"  # sent back
                entry = h.move(at, "Build")
            else:
                position = rng.randint(position + 1, 3)  # a pull, maybe skipping a state
                stage = "ready" if position < 3 and rng.random() < 0.15 else None
                stage = stage or ("doing" if position < 3 else None)
                entry = h.move(at, STATES[position - 1], stage if stage == "ready" else None)
            history.append(entry)
            done_at = at if position == 3 else None
            at += timedelta(hours=rng.choice((0, 1, 3, 20)))
        blocks: list[dict[str, Any]] = []
        cursor = created
        for _ in range(rng.choice((0, 0, 1, 2))):
            opened = cursor + timedelta(hours=rng.choice((0, 1, 2, 30)))
            resolved: datetime | None = opened + timedelta(hours=rng.choice((0, 1, 7, 40)))
            if rng.random() < 0.15 and done_at is None:
                resolved = None
            if done_at is not None and (resolved is None or resolved > done_at):
                break
            extra = {"note": rng.choice(("", "Budget owner away", "Asked Legal"))}
            if rng.random() < 0.5:
                extra["waiting_on"] = rng.choice(("Legal", "CFO", "Ünïcode supplier"))
            blocks.append(h.block(rng.choice(reasons), opened, resolved, **extra))
            if resolved is None or resolved >= NOW:
                break
            cursor = resolved
        out.append(
            item(
                f"Imported {n} \\u201cquoted\\u201d",
                created,
                history,
                blocks,
                class_of_service=rng.choice(("standard", "expedite", "fixed_date", "intangible")),
            )
        )
    return {"items": out}


# --- what a board holds, with ids replaced by what they mean ----------------------------------


def _pairs(session: Session, statement: Any) -> dict[Any, Any]:
    return {key: value for key, value in session.execute(statement)}


def _dump(session: Session, board_id: int) -> dict[str, Any]:
    names = _pairs(session, select(State.id, State.name).where(State.board_id == board_id))
    reasons = _pairs(
        session, select(BlockReason.id, BlockReason.name).where(BlockReason.board_id == board_id)
    )
    numbers = _pairs(session, select(Item.id, Item.number).where(Item.board_id == board_id))
    block_ids = list(
        session.scalars(select(Block.id).where(Block.board_id == board_id).order_by(Block.id))
    )
    block_no = {block_id: n for n, block_id in enumerate(block_ids)}
    times = (Item.created_at, Item.state_entered_at, Item.committed_at, Item.done_at)
    stored = [sql_cast(c, String).label(f"text_{n}") for n, c in enumerate(times)]
    item_rows = [
        (
            i.number,
            i.key.split("-")[1],
            i.title,
            i.description,
            i.class_of_service,
            i.due_date,
            names[i.state_id],
            i.stage,
            i.owner_id,
            i.created_by_id,
            i.created_at,
            i.state_entered_at,
            i.committed_at,
            i.done_at,
            i.discarded_at,
            i.discard_reason,
            i.version,
            tuple(texts),
        )
        for i, *texts in session.execute(
            select(Item, *stored).where(Item.board_id == board_id).order_by(Item.number)
        )
    ]
    block_rows = [
        (
            numbers[b.item_id],
            reasons[b.reason_id],
            b.note,
            b.waiting_on,
            names.get(b.state_id or 0),
            b.opened_at,
            b.opened_by_id,
            b.resolved_at,
            b.resolved_by_id,
            b.resolution,
            opened_text,
            resolved_text,
        )
        for b, opened_text, resolved_text in session.execute(
            select(
                Block,
                sql_cast(Block.opened_at, String).label("opened_text"),
                sql_cast(Block.resolved_at, String).label("resolved_text"),
            )
            .where(Block.board_id == board_id)
            .order_by(Block.id)
        )
    ]
    event_rows = []
    for e, at_text, data_text in session.execute(
        select(
            Event,
            sql_cast(Event.at, String).label("at_text"),
            sql_cast(Event.data, Text).label("data_text"),
        )
        .where(Event.board_id == board_id, Event.item_id.is_not(None))
        .order_by(Event.id)
    ):
        data = dict(e.data)
        if "block_id" in data:
            data["block_id"] = block_no[data["block_id"]]
            data_text = None  # holds the id itself; the decoded data is compared instead
        event_rows.append(
            (
                numbers[e.item_id],
                e.type,
                e.actor_id,
                e.at,
                names.get(e.from_state_id or 0),
                names.get(e.to_state_id or 0),
                e.stage,
                data,
                at_text,
                data_text,
            )
        )
    last = session.scalar(select(Board.last_item_number).where(Board.id == board_id))
    return {"items": item_rows, "blocks": block_rows, "events": event_rows, "last": last}


def _twin_board(seed: Seed) -> int:
    """A second board with the seed board's states and block reasons, and the same members."""
    with seed.database.unit_of_work() as session:
        admin = session.get(User, seed.user("admin").id)
        assert admin is not None
        specs = [
            boards.StateSpec(s.name, s.kind, s.wip_limit, s.pull_role) for s in seed.states.values()
        ]
        twin = boards.create_board(
            session=session, actor=admin, name="Twin", key="TWN", states=specs
        )
        boards.set_member(
            session=session,
            board_id=twin.id,
            user_id=seed.user("manager").id,
            role="manager",
            actor=admin,
        )
        return twin.id


def _existing_items(seed: Seed, board_id: int, count: int) -> None:
    with seed.database.unit_of_work() as session:
        for n in range(count):
            items.create_item(
                session=session,
                board_id=board_id,
                actor=seed.user("manager"),
                title=f"Made on the board {n}",
                now=t(1, 9),
            )


@pytest.mark.parametrize("role_may_skip", [True, False], ids=["checks-left-out", "checked"])
def test_bulk_import_matches_the_former_path(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, role_may_skip: bool
) -> None:
    """Both ways on PostgreSQL: with the events' foreign-key checks left out (the test server's
    role may) and with every reference checked (as for a role that may not)."""
    if not role_may_skip:
        monkeypatch.setattr(importing._Rows, "_may_set_replication_role", lambda self: False)
    twin = _twin_board(seed)
    _existing_items(seed, seed.board_id, 3)
    _existing_items(seed, twin, 3)
    payload = _payload(300)
    with seed.database.unit_of_work() as session:
        manager = seed.user("manager")
        assert (
            import_history(
                session=session, board_id=seed.board_id, actor=manager, payload=payload, now=NOW
            )
            == 300
        )
    with seed.database.unit_of_work() as session:
        assert _reference_import(session, twin, seed.user("manager"), payload, NOW) == 300

    with seed.database.unit_of_work(write=False) as session:
        bulk, reference = _dump(session, seed.board_id), _dump(session, twin)
    # The payload really exercises what it should.
    types = {e[1] for e in bulk["events"]}
    assert {"created", "pulled", "marked_ready", "unready", "completed", "sent_back"} <= types
    assert {"blocked", "unblocked", "imported"} <= types
    assert any(b[7] is None for b in bulk["blocks"]) and len(bulk["blocks"]) > 50
    # Numbers continue after the items made on the board; the board's counter follows.
    assert [i[0] for i in bulk["items"]] == list(range(1, 304))
    assert bulk["last"] == 303
    for key in ("items", "blocks", "events", "last"):
        assert bulk[key] == reference[key], key


def test_bulk_import_times_and_numbers(seed: Seed) -> None:
    """Read back through the ORM: aware UTC times as given, the keys after the existing items."""
    _existing_items(seed, seed.board_id, 2)
    payload = {
        "items": [
            item(
                "One",
                t(2, 9, 15),
                [h.move(t(2, 10), "Build"), h.move(t(3, 11), "Review"), h.move(t(4, 12), "Done")],
                [h.block("Dependency", t(2, 12), t(3, 9), waiting_on="Legal")],
            ),
            item("Two", t(5, 8)),
        ]
    }
    with seed.database.unit_of_work() as session:
        import_history(
            session=session,
            board_id=seed.board_id,
            actor=seed.user("manager"),
            payload=payload,
            now=NOW,
        )
    with seed.database.unit_of_work(write=False) as session:
        one, two = session.scalars(select(Item).where(Item.number > 2).order_by(Item.number)).all()
        assert (one.key, two.key) == ("TST-3", "TST-4")
        assert (one.created_at, one.committed_at, one.done_at) == (t(2, 9, 15), t(2, 10), t(4, 12))
        assert one.state_entered_at == t(4, 12) and one.created_at.utcoffset() == timedelta(0)
        assert (two.state_id, two.committed_at, two.state_entered_at) == (
            seed.state_id("Backlog"),
            None,
            t(5, 8),
        )
        (stored,) = session.scalars(select(Block))
        assert (stored.item_id, stored.state_id) == (one.id, seed.state_id("Build"))
        blocked = session.scalar(select(Event).where(Event.type == "blocked"))
        assert blocked is not None
        assert blocked.data == {
            "block_id": stored.id,
            "reason": "Dependency",
            "waiting_on": "Legal",
        }
        # A later write through the services gets the next number and fresh ids.
        later = items.create_item(
            session=session, board_id=seed.board_id, actor=seed.user("manager"), title="Later"
        )
        assert later.item.key == "TST-5" and later.item.id > two.id


def _counts(seed: Seed) -> tuple[int, int, int, int]:
    with seed.database.unit_of_work(write=False) as session:
        return (
            session.scalar(select(func.count()).select_from(Item)) or 0,
            session.scalar(select(func.count()).select_from(Block)) or 0,
            session.scalar(select(func.count()).select_from(Event)) or 0,
            session.scalar(select(Board.last_item_number).where(Board.id == seed.board_id)) or 0,
        )


def _squat_number(seed: Seed, number: int) -> None:
    """An item row holding a number the board has not handed out yet: the import's third
    chunk collides with it after two chunks were written."""
    with seed.database.unit_of_work() as session:
        session.execute(
            insert(Item).values(
                board_id=seed.board_id,
                number=number,
                key=f"TST-{number}",
                title="Squatter",
                class_of_service="standard",
                state_id=seed.state_id("Backlog"),
                created_at=t(1),
                state_entered_at=t(1),
            )
        )


def test_failure_mid_way_imports_nothing(seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importing, "CHUNK_ITEMS", 2)
    _existing_items(seed, seed.board_id, 1)
    _squat_number(seed, 6)  # the import would number its items 2..11
    before = _counts(seed)
    chunks: list[int] = []
    with pytest.raises(IntegrityError), seed.database.unit_of_work() as session:
        import_history(
            session=session,
            board_id=seed.board_id,
            actor=seed.user("manager"),
            payload=_payload(10),
            progress=lambda done, total: chunks.append(done),
        )
    assert chunks == [0, 2, 4]  # two chunks were written before the third failed
    assert _counts(seed) == before


def test_failure_mid_way_from_a_file_imports_nothing(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(importing, "CHUNK_ITEMS", 2)
    _squat_number(seed, 5)
    before = _counts(seed)
    path = tmp_path / "history.json"
    path.write_text(json.dumps(_payload(10)), encoding="utf-8")
    with pytest.raises(ImportFileError, match="the database could not be used"):
        import_file(database=seed.database, path=path, board="TST")
    assert _counts(seed) == before


def _bad_event(session: Session, seed: Seed) -> None:
    """An event of an item that does not exist."""
    session.execute(
        insert(Event).values(
            board_id=seed.board_id, item_id=10**9, type="created", at=t(1), data={}
        )
    )


def _replication_role(session: Session) -> str:
    return str(session.execute(text("SELECT current_setting('session_replication_role')")).scalar())


def test_event_checks_are_left_out_only_inside_references_known(seed: Seed, backend: str) -> None:
    with seed.database.unit_of_work() as session:
        sink = importing._Rows(session)
        if backend == "postgresql":
            superuser = session.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar()
            assert sink.may_skip_checks is bool(superuser)
            with sink.references_known():
                inside = _replication_role(session)
            assert (inside, _replication_role(session)) == (
                "replica" if superuser else "origin",
                "origin",
            )
        else:
            assert sink.may_skip_checks is False
    # Whatever happened inside, the references of later writes are checked again.
    with pytest.raises(IntegrityError), seed.database.unit_of_work() as session:
        with importing._Rows(session).references_known():
            pass
        _bad_event(session, seed)


def test_a_role_that_may_not_skip_checks_gets_every_reference_checked(
    seed: Seed, backend: str
) -> None:
    with pytest.raises(IntegrityError), seed.database.unit_of_work() as session:
        if backend == "postgresql":
            # A role of this transaction only (CREATE ROLE is rolled back with it).
            role = f"flowboard_plain_{uuid.uuid4().hex[:8]}"
            session.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
            session.execute(text(f'GRANT SELECT, INSERT ON event TO "{role}"'))
            session.execute(text(f'GRANT USAGE ON SEQUENCE event_id_seq TO "{role}"'))
            session.execute(text(f'SET LOCAL ROLE "{role}"'))
        sink = importing._Rows(session)
        assert sink.may_skip_checks is False
        with sink.references_known():
            _bad_event(session, seed)
