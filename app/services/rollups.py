"""Cumulative flow over closed days, cached: a long window replays only days not yet summed.

The count of items in a state at the end of a UTC day before today never changes while the
event log only grows at the present: such days are computed once (by the same replay the
analytics use, over the missing days only) and kept in cfd_day. A cached day equals the
replay of any window containing it, because done and discarded are final (the rules and the
import refuse moves after them), so an item left out of a window for having closed before it
sits in done (counted by done_before) or nowhere, exactly where its own path puts it.

Invalidation needs no hook in the writers: cfd_mark keeps the count and last id of the
board's events before the end of the last cached day. Anything that writes history into the
past (import_history, a restore, an action with a backdated `now`) changes that pair, and the
next read drops the board's cache and recomputes. A change of the done state drops it too.
A restore with --force empties cfd_day with every other table; backups leave it out (it is
not in backup.LABELS) and it refills on demand.

Reads happen in the caller's session; the rows are written in their own short transaction
(the analytics GETs run in read sessions that are never committed), and skipped, not waited
for, when the database is busy: the answer is the same either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import metric_queries as mq
from app.db.models import CfdDay, CfdMark
from app.db.session import SQLITE_BUSY_TIMEOUT_MS, WRITE_OPTION

log = logging.getLogger(__name__)

# A cache write never makes an analytics answer wait long for SQLite's write lock.
CACHE_BUSY_TIMEOUT_MS = 200

# compute(first, last) -> state_id -> items at the end of each day first..last.
Compute = Callable[[date, date], dict[int, list[int]]]


def day_end(day: date) -> datetime:
    """Midnight (UTC) ending `day`."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def closed_day_counts(
    session: Session,
    board_id: int,
    done_state_id: int,
    first: date,
    last: date,
    compute: Compute,
) -> dict[date, dict[int, int]]:
    """day -> state_id -> items at the end of the day, for closed days first..last (the caller
    guarantees each day ended before today and before the window's end)."""
    conn = session.connection()
    mark = mq.cfd_mark(session, board_id)
    valid = False
    through: date | None = None
    cached: dict[date, dict[int, int]] = {}
    if mark is not None:
        through, done_id, events, last_id = mark
        valid = done_id == done_state_id and mq.events_stamp(conn, board_id, day_end(through)) == (
            events,
            last_id,
        )
        if valid and first <= through:
            for day, state_id, items in mq.cfd_days(session, board_id, first, min(last, through)):
                cached.setdefault(day, {})[state_id] = items
    missing = [
        first + timedelta(days=i)
        for i in range((last - first).days + 1)
        if first + timedelta(days=i) not in cached
    ]
    if not missing:
        return cached
    lo, hi = missing[0], missing[-1]
    fresh = compute(lo, hi)
    rows: list[dict[str, object]] = []
    for i in range((hi - lo).days + 1):
        day = lo + timedelta(days=i)
        counts = {state_id: per_day[i] for state_id, per_day in fresh.items()}
        cached[day] = counts
        rows.extend(
            {"board_id": board_id, "day": day, "state_id": s, "items": n} for s, n in counts.items()
        )
    new_through = max(hi, through) if valid and through is not None else hi
    stamp = mq.events_stamp(conn, board_id, day_end(new_through))
    _store(
        session,
        board_id,
        rows=rows,
        span=(lo, hi),
        reset=not valid,
        mark={
            "board_id": board_id,
            "through": new_through,
            "done_state_id": done_state_id,
            "events": stamp[0],
            "last_event_id": stamp[1],
        },
    )
    return cached


def _write(
    conn: Connection,
    board_id: int,
    rows: list[dict[str, object]],
    span: tuple[date, date],
    reset: bool,
    mark: dict[str, object],
) -> None:
    days = delete(CfdDay).where(CfdDay.board_id == board_id)
    if not reset:
        days = days.where(CfdDay.day >= span[0], CfdDay.day <= span[1])
    conn.execute(days)
    if rows:
        conn.execute(insert(CfdDay), rows)
    conn.execute(delete(CfdMark).where(CfdMark.board_id == board_id))
    conn.execute(insert(CfdMark), [mark])


def _store(
    session: Session,
    board_id: int,
    *,
    rows: list[dict[str, object]],
    span: tuple[date, date],
    reset: bool,
    mark: dict[str, object],
) -> None:
    bind = session.get_bind()
    if bind.get_execution_options().get(WRITE_OPTION):
        # A write session (it holds SQLite's write lock): the caller's commit keeps the rows.
        _write(session.connection(), board_id, rows, span, reset, mark)
        return
    engine = bind if isinstance(bind, Engine) else bind.engine
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            if sqlite:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={CACHE_BUSY_TIMEOUT_MS}")
                conn.commit()
            try:
                with conn.begin():
                    # Written in a newer snapshot than the one computed from: only when the
                    # history behind it is still the same.
                    through = mark["through"]
                    assert isinstance(through, date)
                    now_stamp = mq.events_stamp(conn, board_id, day_end(through))
                    if now_stamp == (mark["events"], mark["last_event_id"]):
                        _write(conn, board_id, rows, span, reset, mark)
            finally:
                if sqlite:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                    conn.commit()
    except SQLAlchemyError as error:  # busy, or a racing writer stored the same days first
        log.info("cfd cache not stored for board %s: %s", board_id, error.__class__.__name__)
