"""Cumulative flow and flow figures over closed days, cached: a long window replays only
days not yet summed.

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

Flow figures (app.services.flow_figures) are cached the same way, per state and closed day in
flow_day, with their own mark (flow_mark: the days since..through, contiguous, so a day with
nothing in it needs no row). Their sums are exact, so the figures of the closed days plus
the replayed partial days equal the replay of the whole window.

Reads happen in the caller's session; the rows are written in their own short transaction
(the analytics GETs run in read sessions that are never committed), and skipped, not waited
for, when the database is busy: the answer is the same either way.
"""

from __future__ import annotations

import logging
import sys
from array import array
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, delete, insert, or_
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import metric_queries as mq
from app.db.models import CfdDay, CfdMark, FlowDay, FlowMark
from app.db.session import SQLITE_BUSY_TIMEOUT_MS, WRITE_OPTION
from app.services.flow_figures import Figures, StateFigures

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
    mark_row = {
        "board_id": board_id,
        "through": new_through,
        "done_state_id": done_state_id,
        "events": stamp[0],
        "last_event_id": stamp[1],
    }

    def write(conn: Connection) -> None:
        days = delete(CfdDay).where(CfdDay.board_id == board_id)
        if valid:
            days = days.where(CfdDay.day >= lo, CfdDay.day <= hi)
        conn.execute(days)
        if rows:
            conn.execute(insert(CfdDay), rows)
        conn.execute(delete(CfdMark).where(CfdMark.board_id == board_id))
        conn.execute(insert(CfdMark), [mark_row])

    _store(session, board_id, new_through, stamp, write, "cfd")
    return cached


# compute(first, last) -> the figures of each day first..last.
ComputeFigures = Callable[[date, date], list[Figures]]


def closed_day_figures(
    session: Session,
    board_id: int,
    done_state_id: int,
    first: date,
    last: date,
    compute: ComputeFigures,
) -> Figures:
    """The flow figures of the closed days first..last, added up (the caller guarantees each
    day ended before today and before the window's end). Days not cached yet are computed
    and kept, extending the cached run of days (a gap between is computed too)."""
    conn = session.connection()
    mark = mq.flow_mark(session, board_id)
    total = Figures()
    missing: list[tuple[date, date]] = [(first, last)]
    span = (first, last)
    if mark is not None:
        since, through, done_id, events, last_id = mark
        stamp = mq.events_stamp(conn, board_id, day_end(through))
        if done_id == done_state_id and stamp == (events, last_id):
            missing = []
            if first < since:
                missing.append((first, since - timedelta(days=1)))
            if last > through:
                missing.append((through + timedelta(days=1), last))
            if max(first, since) <= min(last, through):
                for row in mq.flow_days(session, board_id, max(first, since), min(last, through)):
                    _add_row(total, row)
            span = (min(first, since), max(last, through))
    if not missing:
        return total
    rows: list[dict[str, object]] = []
    for lo, hi in missing:
        for i, figures in enumerate(compute(lo, hi)):
            day = lo + timedelta(days=i)
            if first <= day <= last:
                total.add(figures)
            rows.extend(_day_rows(board_id, day, done_state_id, figures))
    stamp = mq.events_stamp(conn, board_id, day_end(span[1]))
    mark_row = {
        "board_id": board_id,
        "since": span[0],
        "through": span[1],
        "done_state_id": done_state_id,
        "events": stamp[0],
        "last_event_id": stamp[1],
    }
    reset = missing == [(first, last)] and span == (first, last)

    def write(conn: Connection) -> None:
        days = delete(FlowDay).where(FlowDay.board_id == board_id)
        if not reset:
            days = days.where(
                or_(*(and_(FlowDay.day >= lo, FlowDay.day <= hi) for lo, hi in missing))
            )
        conn.execute(days)
        if rows:
            conn.execute(insert(FlowDay), rows)
        conn.execute(delete(FlowMark).where(FlowMark.board_id == board_id))
        conn.execute(insert(FlowMark), [mark_row])

    _store(session, board_id, span[1], stamp, write, "flow")
    return total


def _pack(values: Iterable[int]) -> bytes:
    """Little-endian int64s, whatever the machine."""
    packed = array("q", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _unpack(data: bytes) -> array[int]:
    values = array("q")
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _day_rows(
    board_id: int, day: date, done_state_id: int, figures: Figures
) -> list[dict[str, object]]:
    """A day's flow_day rows: one per state with something in it; the day's completions on
    the done state's row."""
    states = dict(figures.states)
    if figures.completed and done_state_id not in states:
        states[done_state_id] = StateFigures()
    rows = []
    for state_id, f in states.items():
        done = state_id == done_state_id
        rows.append(
            {
                "board_id": board_id,
                "day": day,
                "state_id": state_id,
                "doing_us": f.doing,
                "ready_us": f.ready,
                "blocked_us": f.blocked,
                "total_us": f.total,
                "sent_back_out": f.sent_back_out,
                "sent_back_in": f.sent_back_in,
                "completed": figures.completed if done else 0,
                "completed_committed": figures.completed_committed if done else 0,
                "cycle_us": figures.cycle_us if done else 0,
                "active_us": figures.active_us if done else 0,
                "visits": _pack(f.visits),
                "waited": _pack(sorted(f.waited)),
                "wip": _pack(v for pair in sorted(f.wip.items()) for v in pair),
            }
        )
    return rows


def _add_row(total: Figures, row: mq.FlowDayRow) -> None:
    (state_id, doing, ready, blocked, whole, out, into, completed, committed, cycle, active) = row[
        :11
    ]
    visits, waited, wip = row[11:]
    figures = total.state(state_id)
    figures.doing += doing
    figures.ready += ready
    figures.blocked += blocked
    figures.total += whole
    figures.sent_back_out += out
    figures.sent_back_in += into
    figures.visits.extend(_unpack(visits))
    figures.waited.update(_unpack(waited))
    levels = _unpack(wip)
    for i in range(0, len(levels), 2):
        level = levels[i]
        figures.wip[level] = figures.wip.get(level, 0) + levels[i + 1]
    total.completed += completed
    total.completed_committed += committed
    total.cycle_us += cycle
    total.active_us += active


def _store(
    session: Session,
    board_id: int,
    through: date,
    stamp: tuple[int, int],
    write: Callable[[Connection], None],
    what: str,
) -> None:
    """Runs write() in the caller's write session, or else in a short transaction of its own
    when the history up to `through` still has this stamp; skipped when the database is busy."""
    bind = session.get_bind()
    if bind.get_execution_options().get(WRITE_OPTION):
        # A write session (it holds SQLite's write lock): the caller's commit keeps the rows.
        write(session.connection())
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
                    if mq.events_stamp(conn, board_id, day_end(through)) == stamp:
                        write(conn)
            finally:
                if sqlite:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                    conn.commit()
    except SQLAlchemyError as error:  # busy, or a racing writer stored the same days first
        log.info("%s cache not stored for board %s: %s", what, board_id, error.__class__.__name__)
