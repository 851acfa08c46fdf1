"""Flow analytics, time travel and the delay report, for the API and the HTML pages alike.

Every function checks the actor may see the board (viewer is enough; NotFound for
non-members), reads through app.db.metric_queries (SQL aggregation or one streaming pass
over the events of the items alive in the window, as plain tuples) and does the maths in
app.flow.metrics. Results are plain dataclasses; `as_dict()` gives the API's JSON shape.

Windows: `start` / `end` are the API's `from` / `to` (default: the 90 days up to now). An
`end` later than now is read as now. Raises InvalidInput (422) for from > to, a window over
three years, or a `from` in the future.

Decisions, also in the report to the lead:
- rework_count of a state counts sends back OUT of it (the state that found the problem
  and returned the item to an earlier state); sent_back_into_count counts the arrivals.
- bottleneck: among work states, the one with the largest queue wait in front of it (the
  Ready time, within the window, of the work state just before it: handoffs waiting for it
  to pull), times (1 + its fraction of the window at its WIP limit). A state whose
  upstream queue is long AND which sat at its limit scores up to double. The first work
  state has no queue in front (the backlog holds options, not committed work). No state
  with a positive score: no bottleneck (null).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any, Literal

from sqlalchemy.orm import Session

from app.db import metric_queries as mq
from app.db import queries
from app.db.metric_queries import StateRow
from app.db.models import CLASSES_OF_SERVICE, User
from app.flow import metrics as m
from app.flow.errors import InvalidInput
from app.flow.text import neutralise_cell
from app.services import rollups
from app.services.access import visible_board
from app.services.flow_figures import Figures, StateFigures, day_figures, window_figures
from app.services.replay import ItemHistory, replay

DEFAULT_WINDOW = timedelta(days=90)
MAX_WINDOW = timedelta(days=3 * 365 + 1)  # three years, one of them a leap year
FORECAST_MAX_ITEMS = 10_000
FORECAST_MAX_DAYS = 3650
SECONDS_PER_WEEK = 7 * 86_400


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    now: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def days(self) -> list[date]:
        """The calendar days (UTC) the window touches, for CFD and run charts."""
        first, last = self.start.date(), self.end.date()
        if self.end == datetime.combine(last, time(), tzinfo=UTC) and last > first:
            last -= timedelta(days=1)  # a window ending at midnight does not touch that day
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    @property
    def whole_days(self) -> list[date]:
        """The whole UTC days inside the window (forecast history: partial days bias it)."""
        first = self.start.date()
        if self.start != datetime.combine(first, time(), tzinfo=UTC):
            first += timedelta(days=1)
        last = self.end.date() - timedelta(days=1)
        return [first + timedelta(days=i) for i in range(max(0, (last - first).days + 1))]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def resolve_window(
    start: datetime | None, end: datetime | None, now: datetime | None = None
) -> Window:
    """The analysis window. Raises InvalidInput for a reversed, future or over-long window."""
    now = _utc(now) or queries.now()
    end = min(_utc(end) or now, now)
    start = _utc(start) or end - DEFAULT_WINDOW
    if start > now:
        raise InvalidInput("`from` is in the future: there is no history there yet.")
    if start > end:
        raise InvalidInput("`from` must not be after `to`.")
    if end - start > MAX_WINDOW:
        raise InvalidInput("The window may cover at most three years; narrow `from` / `to`.")
    return Window(start, end, now)


def _check_class(class_of_service: str | None) -> None:
    if class_of_service is not None and class_of_service not in CLASSES_OF_SERVICE:
        raise InvalidInput(f"class_of_service is one of {', '.join(CLASSES_OF_SERVICE)}.")


def _seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


# --------------------------------------------------------------------------- replay


def _replay(session: Session, board_id: int, window: Window) -> dict[int, ItemHistory]:
    """Every item alive in the window with its moves and blocks (app.services.replay)."""
    return replay(session, board_id, window.start, window.end, window.now)


# --------------------------------------------------------------------------- flow


@dataclass
class StateFlow:
    state_id: int
    name: str
    kind: str
    wip: int
    limit: int | None
    queue: int
    oldest_ready_seconds: float | None
    median_seconds_in_state: float | None
    p85_seconds_in_state: float | None
    doing_seconds: float
    ready_seconds: float
    blocked_seconds: float
    blocked_now: int
    pct_time_at_limit: float | None
    rework_count: int
    sent_back_into_count: int
    queue_wait_seconds: float
    items_waited_in_front: int


@dataclass
class FlowReport:
    start: datetime
    end: datetime
    states: list[StateFlow]
    bottleneck_state_id: int | None
    flow_efficiency: float | None
    throughput_per_week: float
    avg_wip: float
    avg_cycle_time_seconds: float | None
    summary: str
    class_of_service: str | None = None

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["from"] = body.pop("start").isoformat()
        body["to"] = body.pop("end").isoformat()
        return body


def choose_bottleneck(
    states: list[StateRow],
    ready_seconds: dict[int, float],
    pct_at_limit: dict[int, float | None],
) -> tuple[int | None, dict[int, float]]:
    """(bottleneck state id or None, each work state's queue wait in front). Pure; the rule
    is in the module docstring: wait in front x (1 + fraction of the window at the limit)."""
    in_front: dict[int, float] = {}
    best: tuple[float, int] | None = None
    for before, state in pairwise(states):
        if state.kind != "work":
            continue
        wait = ready_seconds.get(before.id, 0.0) if before.kind == "work" else 0.0
        in_front[state.id] = wait
        score = wait * (1.0 + (pct_at_limit.get(state.id) or 0.0))
        if score > 0 and (best is None or score > best[0]):
            best = (score, state.id)
    return (best[1] if best else None), in_front


def _days_text(seconds: float) -> str:
    days = seconds / 86_400
    return f"{days:.1f} days" if days >= 1 else f"{seconds / 3600:.1f} hours"


def _window_text(window: Window) -> str:
    if window.end == window.now:
        days = round(window.seconds / 86_400)
        return f"the last {days} days" if days != 1 else "the last day"
    return f"{window.start.date().isoformat()} to {window.end.date().isoformat()}"


def _s(us: float) -> float:
    """Seconds from microseconds (made once, from an exact sum)."""
    return us / m.MICROS_PER_SECOND


def _s_or_none(us: float | None) -> float | None:
    return None if us is None else _s(us)


def _closed_days(window: Window) -> tuple[date, date] | None:
    """(first, last) of the whole UTC days inside the window that ended before today."""
    first = window.start.date()
    if window.start != _midnight(first):
        first += timedelta(days=1)
    last = min(window.now.date(), window.end.date()) - timedelta(days=1)
    return (first, last) if first <= last else None


def _replayed_figures(
    session: Session, board_id: int, window: Window, done_id: int, class_of_service: str | None
) -> Figures:
    """The window's flow figures from one replay of it: the reference."""
    histories = _replay(session, board_id, window).values()
    start, end, now = (m.micros(t) for t in (window.start, window.end, window.now))
    return window_figures(histories, start, end, now, done_id, class_of_service)


def _flow_figures(
    session: Session, board_id: int, window: Window, done_id: int, class_of_service: str | None
) -> Figures:
    """The window's flow figures: its closed days from the rollups cache (computed by the
    replay the first time) plus the replay of its partial first and last days. A class filter
    replays the whole window (an item's class may be edited at any time), as does a window
    without a closed day."""
    closed = _closed_days(window)
    if class_of_service is not None or closed is None:
        return _replayed_figures(session, board_id, window, done_id, class_of_service)
    first, last = closed

    def compute(a: date, b: date) -> list[Figures]:
        span = Window(_midnight(a), rollups.day_end(b), window.now)
        histories = _replay(session, board_id, span).values()
        days = (b - a).days + 1
        return day_figures(histories, m.micros(span.start), days, m.micros(span.now), done_id)

    total = rollups.closed_day_figures(session, board_id, done_id, first, last, compute)
    for piece in (
        Window(window.start, _midnight(first), window.now),
        Window(rollups.day_end(last), window.end, window.now),
    ):
        if piece.end > piece.start:
            total.add(_replayed_figures(session, board_id, piece, done_id, None))
    return total


def flow_report(
    *,
    session: Session,
    board_id: int,
    actor: User,
    start: datetime | None = None,
    end: datetime | None = None,
    class_of_service: str | None = None,
    now: datetime | None = None,
) -> FlowReport:
    """The Bottlenecks view per state and for the board.

    With class_of_service, every item figure counts that class only; wip, limit and
    pct_time_at_limit always describe the whole state, because the limit does.
    """
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    _check_class(class_of_service)
    window = resolve_window(start, end, now)
    now_ = window.now
    states = mq.states(session, board.id)
    kinds = {s.id: s.kind for s in states}
    done_id = next(s.id for s in states if s.kind == "done")
    figures = _flow_figures(session, board.id, window, done_id, class_of_service)
    by_state = figures.states
    span_us = m.micros(window.end) - m.micros(window.start)

    pct: dict[int, float | None] = {}
    for state in states:
        limit = state.wip_limit
        if state.kind == "done" or limit is None or span_us <= 0:
            pct[state.id] = None
            continue
        levels = by_state[state.id].wip if state.id in by_state else {}
        # WIP is never negative: a limit of 0 (or less) is met all the time.
        at_limit = m.micros_at_or_above(levels, limit) if limit > 0 else span_us
        pct[state.id] = _s(at_limit) / window.seconds

    # Now: WIP (all classes, against the limit), queues, blocked and the oldest wait.
    wip_now: dict[int, int] = defaultdict(int)
    queue_now: dict[int, int] = defaultdict(int)
    blocked_now: dict[int, int] = defaultdict(int)
    oldest: dict[int, datetime] = {}
    ready_items: list[tuple[int, int]] = []
    for item_id, state_id, stage, cos, created_at, blocked in mq.open_items_now(session, board.id):
        wip_now[state_id] += 1
        if class_of_service is not None and cos != class_of_service:
            continue
        if blocked:
            blocked_now[state_id] += 1
        if kinds.get(state_id) == "backlog":
            queue_now[state_id] += 1
            if state_id not in oldest or created_at < oldest[state_id]:
                oldest[state_id] = created_at
        elif stage == "ready":
            queue_now[state_id] += 1
            ready_items.append((item_id, state_id))
    if ready_items:
        since = mq.ready_since(session, board.id)
        for item_id, state_id in ready_items:
            became_ready = since.get(item_id)
            if became_ready is not None and (
                state_id not in oldest or became_ready < oldest[state_id]
            ):
                oldest[state_id] = became_ready

    ready_totals = {sid: _s(f.ready) for sid, f in by_state.items()}
    bottleneck, in_front = choose_bottleneck(states, ready_totals, pct)
    rows: list[StateFlow] = []
    empty = StateFigures()
    for before, state in zip([None, *states], states, strict=False):
        f = by_state.get(state.id, empty)
        ps = m.percentiles(f.visits, (50, 85))
        waited_before = by_state[before.id].waited if before and before.id in by_state else ()
        rows.append(
            StateFlow(
                state_id=state.id,
                name=state.name,
                kind=state.kind,
                wip=wip_now.get(state.id, 0),
                limit=state.wip_limit,
                queue=queue_now.get(state.id, 0),
                oldest_ready_seconds=(
                    m.age_seconds(now_, oldest[state.id]) if state.id in oldest else None
                ),
                median_seconds_in_state=_s_or_none(ps["50"]),
                p85_seconds_in_state=_s_or_none(ps["85"]),
                doing_seconds=_s(f.doing),
                ready_seconds=_s(f.ready),
                blocked_seconds=_s(f.blocked),
                blocked_now=blocked_now.get(state.id, 0),
                pct_time_at_limit=pct.get(state.id),
                rework_count=f.sent_back_out,
                sent_back_into_count=f.sent_back_in,
                queue_wait_seconds=in_front.get(state.id, 0.0),
                items_waited_in_front=(
                    len(waited_before)
                    if before is not None and before.kind == "work" and state.kind == "work"
                    else 0
                ),
            )
        )
    weeks = window.seconds / SECONDS_PER_WEEK
    work_us = sum(f.total for sid, f in by_state.items() if kinds.get(sid) == "work")
    committed = figures.completed_committed
    report = FlowReport(
        start=window.start,
        end=window.end,
        states=rows,
        bottleneck_state_id=bottleneck,
        flow_efficiency=m.flow_efficiency(_s(figures.active_us), _s(figures.cycle_us)),
        throughput_per_week=figures.completed / weeks if weeks > 0 else 0.0,
        avg_wip=_s(work_us) / window.seconds if window.seconds > 0 else 0.0,
        avg_cycle_time_seconds=_s(figures.cycle_us) / committed if committed else None,
        summary="",
        class_of_service=class_of_service,
    )
    report.summary = _summary(report, window)
    return report


def _summary(report: FlowReport, window: Window) -> str:
    """One sentence a manager can act on."""
    by_id = {s.state_id: s for s in report.states}
    if report.bottleneck_state_id is None:
        return (
            "No bottleneck stands out: no handoff waited in a Ready stage during "
            f"{_window_text(window)}."
        )
    state = by_id[report.bottleneck_state_id]
    index = report.states.index(state)
    before = report.states[index - 1]
    count = state.items_waited_in_front
    average = state.queue_wait_seconds / count if count else 0.0
    text = (
        f"{state.name} is the bottleneck: {count} item{'s' if count != 1 else ''} waited on "
        f"average {_days_text(average)} in {before.name} / Ready for {state.name} to pull"
    )
    if state.pct_time_at_limit is not None:
        text += (
            f"; {state.name} was at its WIP limit {state.pct_time_at_limit:.0%} of "
            f"{_window_text(window)}"
        )
    return text + "."


# ------------------------------------------------------------------- cycle times, throughput


@dataclass(slots=True)
class CycleTime:
    item_id: int
    key: str
    done_at: datetime
    cycle_seconds: float
    lead_seconds: float


@dataclass
class CycleTimes:
    items: list[CycleTime]
    percentiles: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (ISO strings), built directly: asdict() is slow on thousands of rows."""
        return {
            "items": [
                {
                    "item_id": c.item_id,
                    "key": c.key,
                    "done_at": c.done_at.isoformat(),
                    "cycle_seconds": c.cycle_seconds,
                    "lead_seconds": c.lead_seconds,
                }
                for c in self.items
            ],
            "percentiles": dict(self.percentiles),
        }


def _cycle_times(
    session: Session, board_id: int, window: Window, class_of_service: str | None
) -> CycleTimes:
    items = [
        CycleTime(item_id, key, done_at, _seconds(committed, done_at), _seconds(created, done_at))
        for item_id, key, done_at, committed, created in mq.done_in(
            session, board_id, window.start, window.end, class_of_service
        )
        if committed is not None
    ]
    return CycleTimes(items, m.percentiles([c.cycle_seconds for c in items]))


def cycle_times(
    *,
    session: Session,
    board_id: int,
    actor: User,
    start: datetime | None = None,
    end: datetime | None = None,
    class_of_service: str | None = None,
    now: datetime | None = None,
) -> CycleTimes:
    """Items done in the window: cycle = done - committed, lead = done - created; nearest-rank
    50/85/95 of the cycle times."""
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    _check_class(class_of_service)
    return _cycle_times(session, board.id, resolve_window(start, end, now), class_of_service)


@dataclass(slots=True)
class ThroughputBucket:
    start: date
    count: int


def throughput(
    *,
    session: Session,
    board_id: int,
    actor: User,
    interval: Literal["day", "week"] = "day",
    start: datetime | None = None,
    end: datetime | None = None,
    class_of_service: str | None = None,
    now: datetime | None = None,
) -> list[ThroughputBucket]:
    """Items entering done per day or week (weeks start on Monday); discarded never count."""
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    _check_class(class_of_service)
    if interval not in ("day", "week"):
        raise InvalidInput("interval is day or week.")
    window = resolve_window(start, end, now)
    done = mq.done_in(session, board.id, window.start, window.end, class_of_service)
    days = window.days
    buckets = m.bucket_counts([d for _i, _k, d, _c, _cr in done], days[0], days[-1], interval)
    return [ThroughputBucket(s, c) for s, c in buckets]


# --------------------------------------------------------------------------- cumulative flow


@dataclass(slots=True)
class CfdState:
    state_id: int
    name: str
    counts: list[int]


@dataclass
class Cfd:
    days: list[date]
    states: list[CfdState]

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": [d.isoformat() for d in self.days],
            "states": [
                {"state_id": s.state_id, "name": s.name, "counts": s.counts} for s in self.states
            ],
        }


def cfd(
    *,
    session: Session,
    board_id: int,
    actor: User,
    start: datetime | None = None,
    end: datetime | None = None,
    class_of_service: str | None = None,
    now: datetime | None = None,
) -> Cfd:
    """Items in each state at the end of each day of the window (the last day: at `to`).

    Days that ended before today (and before `to`) come from the rollups cache (computed by
    this same replay the first time); the days after them are replayed. A class filter
    replays the whole window (an item's class may be edited at any time).
    """
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    _check_class(class_of_service)
    window = resolve_window(start, end, now)
    states = mq.states(session, board.id)
    state_ids = [s.id for s in states]
    done_id = next(s.id for s in states if s.kind == "done")
    days = window.days
    today = window.now.date()
    closed = 0
    if class_of_service is None:
        while (
            closed < len(days)
            and days[closed] < today
            and rollups.day_end(days[closed]) <= window.end
        ):
            closed += 1
    if not closed:
        counts = _cfd_replay(session, board.id, window, state_ids, done_id, class_of_service)
        return Cfd(days, [CfdState(s.id, s.name, counts[s.id]) for s in states])

    def compute(first: date, last: date) -> dict[int, list[int]]:
        span = Window(_midnight(first), rollups.day_end(last), window.now)
        return _cfd_replay(session, board.id, span, state_ids, done_id, None)

    cached = rollups.closed_day_counts(
        session, board.id, done_id, days[0], days[closed - 1], compute
    )
    counts = {s: [cached[d].get(s, 0) for d in days[:closed]] for s in state_ids}
    if closed < len(days):
        tail = Window(_midnight(days[closed]), window.end, window.now)
        rest = _cfd_replay(session, board.id, tail, state_ids, done_id, None)
        for s in state_ids:
            counts[s].extend(rest[s])
    return Cfd(days, [CfdState(s.id, s.name, counts[s.id]) for s in states])


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _cfd_replay(
    session: Session,
    board_id: int,
    window: Window,
    state_ids: list[int],
    done_id: int,
    class_of_service: str | None,
) -> dict[int, list[int]]:
    """The CFD counts of every day of the window, replayed from the events."""
    replay = _replay(session, board_id, window)
    paths: Iterable[list[tuple[datetime, int | None]]] = (
        [(at, state_id) for at, state_id, _stage in h.path]
        for h in replay.values()
        if class_of_service is None or h.class_of_service == class_of_service
    )
    counts = m.cfd_counts(paths, window.days, state_ids=state_ids)
    # Items delivered before the window are in done on every day of it.
    base = mq.done_before(session, board_id, window.start, class_of_service)
    counts[done_id] = [c + base for c in counts[done_id]]
    return counts


# --------------------------------------------------------------------------- aging


@dataclass(slots=True)
class AgingItem:
    item_id: int
    key: str
    state_id: int
    age_seconds: float


@dataclass
class Aging:
    items: list[AgingItem]
    percentiles: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": [
                {
                    "item_id": a.item_id,
                    "key": a.key,
                    "state_id": a.state_id,
                    "age_seconds": a.age_seconds,
                }
                for a in self.items
            ],
            "percentiles": dict(self.percentiles),
        }


def aging(
    *,
    session: Session,
    board_id: int,
    actor: User,
    start: datetime | None = None,
    end: datetime | None = None,
    class_of_service: str | None = None,
    now: datetime | None = None,
) -> Aging:
    """Open committed items, now - committed_at, oldest first; the percentiles are those of
    the window's cycle times (the reference lines of the aging chart)."""
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    _check_class(class_of_service)
    window = resolve_window(start, end, now)
    items = [
        AgingItem(item_id, key, state_id, m.age_seconds(window.now, committed))
        for item_id, key, state_id, committed in mq.open_committed(
            session, board.id, class_of_service
        )
    ]
    reference = _cycle_times(session, board.id, window, class_of_service).percentiles
    return Aging(items, reference)


# --------------------------------------------------------------------------- waiting reasons


@dataclass(slots=True)
class WaitingReason:
    reason: str
    count: int
    blocked_seconds: float


def waiting_reasons(
    *,
    session: Session,
    board_id: int,
    actor: User,
    start: datetime | None = None,
    end: datetime | None = None,
    class_of_service: str | None = None,
    now: datetime | None = None,
) -> list[WaitingReason]:
    """Blocks open during the window per reason: how many, and their blocked time inside the
    window (open blocks run to `to`); most time first (a Pareto)."""
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    _check_class(class_of_service)
    window = resolve_window(start, end, now)
    count: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    for reason, opened, resolved in mq.blocks_overlapping(
        session, board.id, window.start, window.end, class_of_service
    ):
        count[reason] += 1
        lo, hi = max(opened, window.start), min(resolved or window.end, window.end)
        seconds[reason] += max(0.0, _seconds(lo, hi))
    rows = [WaitingReason(r, count[r], seconds[r]) for r in count]
    rows.sort(key=lambda r: (-r.blocked_seconds, -r.count, r.reason))
    return rows


# --------------------------------------------------------------------------- forecast


@dataclass
class Forecast:
    percentiles: dict[str, Any]
    history_days: int
    runs: int
    items: int | None = None
    until: date | None = None
    days: dict[str, int | None] | None = None
    start_date: date | None = None

    def as_dict(self) -> dict[str, Any]:
        body = {k: v for k, v in asdict(self).items() if v is not None or k == "percentiles"}
        body["percentiles"] = {
            p: v.isoformat() if isinstance(v, date) else v for p, v in self.percentiles.items()
        }
        for name in ("until", "start_date"):
            if name in body:
                body[name] = body[name].isoformat()
        return body


def forecast(
    *,
    session: Session,
    board_id: int,
    actor: User,
    items: int | None = None,
    until: date | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    class_of_service: str | None = None,
    now: datetime | None = None,
) -> Forecast:
    """Monte Carlo over the daily throughput of the whole UTC days in the window.

    items=N: the dates by which N more items are done, 50/85/95 % sure (null when history
    cannot get there in ten years). until=D: how many items by the end of day D. Days count
    from tomorrow (today is already under way). Exactly one of items / until, else
    InvalidInput. Seeded: the same data gives the same answer.
    """
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    _check_class(class_of_service)
    if (items is None) == (until is None):
        raise InvalidInput("Give exactly one of `items` (how many) or `until` (a date).")
    if items is not None and not 1 <= items <= FORECAST_MAX_ITEMS:
        raise InvalidInput(f"items must be between 1 and {FORECAST_MAX_ITEMS}.")
    window = resolve_window(start, end, now)
    today = window.now.date()
    days = window.whole_days
    done = mq.done_in(session, board.id, window.start, window.end, class_of_service)
    history = (
        m.daily_throughput([d for _i, _k, d, _c, _cr in done], days[0], days[-1]) if days else []
    )
    runs = m.DEFAULT_RUNS
    if items is not None:
        if history:
            ahead = m.forecast_days_for_items(history, items, runs, max_days=FORECAST_MAX_DAYS)
        else:
            ahead = {"50": None, "85": None, "95": None}
        dates = {
            p: (today + timedelta(days=d) if d is not None else None) for p, d in ahead.items()
        }
        return Forecast(dates, len(history), runs, items=items, days=ahead, start_date=today)
    assert until is not None
    days_ahead = (until - today).days
    if days_ahead < 1:
        raise InvalidInput("until must be a date after today.")
    if days_ahead > FORECAST_MAX_DAYS:
        raise InvalidInput("until may be at most ten years ahead.")
    counts = (
        m.forecast_items_by_date(history, days_ahead, runs, max_days=FORECAST_MAX_DAYS)
        if history
        else {"50": 0, "85": 0, "95": 0}
    )
    return Forecast(dict(counts), len(history), runs, until=until, start_date=today)


# --------------------------------------------------------------------------- time travel


@dataclass(slots=True)
class SnapshotItem:
    item_id: int
    key: str
    state_id: int
    stage: str | None
    blocked: bool


@dataclass
class Snapshot:
    at: datetime
    items: list[SnapshotItem]

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "items": [
                {
                    "item_id": i.item_id,
                    "key": i.key,
                    "state_id": i.state_id,
                    "stage": i.stage,
                    "blocked": i.blocked,
                }
                for i in self.items
            ],
        }


def snapshot(
    *, session: Session, board_id: int, actor: User, at: datetime, now: datetime | None = None
) -> Snapshot:
    """The board as it was at `at`, rebuilt from the events: every item that existed and was
    not discarded yet, with its state, stage and whether it was blocked. Raises InvalidInput
    for a future `at`."""
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    now_ = _utc(now) or queries.now()
    at_ = _utc(at)
    assert at_ is not None
    if at_ > now_:
        raise InvalidInput("`at` is in the future; time travel goes backwards only.")
    states = mq.states(session, board.id)
    done_id = next(s.id for s in states if s.kind == "done")
    out = [
        SnapshotItem(i, k, done_id, None, False)
        for i, k in mq.done_items_at(session, board.id, at_)
    ]
    keys = dict(mq.open_items_at(session, board.id, at_))
    last: dict[int, tuple[datetime, int, int | None, str | None]] = {}
    blocked: dict[int, tuple[datetime, int, bool]] = {}
    events = mq.events_of_items(
        session, list(keys), types=mq.MOVE_TYPES + mq.BLOCK_TYPES, until=at_
    )
    for item_id, event_id, type_, ev_at, _from_id, to_id, stage in events:
        order = (ev_at, event_id)
        if type_ in mq.BLOCK_TYPES:
            seen = blocked.get(item_id)
            if seen is None or order > seen[:2]:
                blocked[item_id] = (ev_at, event_id, type_ == "blocked")
        else:
            moved = last.get(item_id)
            if moved is None or order > moved[:2]:
                last[item_id] = (ev_at, event_id, to_id, stage)
    for item_id, key in keys.items():
        moved = last.get(item_id)
        if moved is None or moved[2] is None:
            continue  # no move recorded (or discarded by then): not on the board
        block = blocked.get(item_id)
        out.append(SnapshotItem(item_id, key, moved[2], moved[3], bool(block and block[2])))
    out.sort(key=lambda s: s.item_id)
    return Snapshot(at_, out)


def fields_as_of(
    *, session: Session, board_id: int, actor: User, item_ids: list[int], at: datetime
) -> dict[int, tuple[str, str]]:
    """(title, class_of_service) of these items as they were at `at` (edits after it undone),
    for showing a snapshot's cards. Raises NotFound for non-members."""
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    return mq.fields_as_of(session, board.id, item_ids, _utc(at) or queries.now())


# --------------------------------------------------------------------------- delays


DELAY_COLUMNS = (
    "item key",
    "title",
    "state",
    "reason",
    "note",
    "waiting on",
    "opened at",
    "opened by",
    "resolved at",
    "resolved by",
    "resolution",
    "duration hours",
)
# One rule for every CSV the app writes (delays here, the audit trail in services.audit).
neutralise = neutralise_cell


@dataclass(slots=True)
class Delay:
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
    duration_seconds: float


def delays(
    *,
    session: Session,
    board_id: int,
    actor: User,
    status: str = "all",
    start: datetime | None = None,
    end: datetime | None = None,
    class_of_service: str | None = None,
    now: datetime | None = None,
) -> Iterator[Delay]:
    """Every block open at some time in the window (status open|closed|all), oldest first.
    Duration runs to the resolution, or to now for open blocks. Checks (NotFound,
    InvalidInput) happen at the call; rows stream as they are iterated."""
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    _check_class(class_of_service)
    if status not in ("open", "closed", "all"):
        raise InvalidInput("status is open, closed or all.")
    window = resolve_window(start, end, now)

    def rows() -> Iterator[Delay]:
        for row in mq.delays(
            session,
            board.id,
            status=status,
            start=window.start,
            end=window.end,
            class_of_service=class_of_service,
        ):
            yield Delay(
                item_key=row.item_key,
                title=row.title,
                state=row.state,
                reason=row.reason,
                note=row.note,
                waiting_on=row.waiting_on,
                opened_at=row.opened_at,
                opened_by=row.opened_by,
                resolved_at=row.resolved_at,
                resolved_by=row.resolved_by,
                resolution=row.resolution,
                duration_seconds=_seconds(row.opened_at, row.resolved_at or window.now),
            )

    return rows()


def _iso(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ""


def delays_csv(
    *,
    session: Session,
    board_id: int,
    actor: User,
    status: str = "all",
    start: datetime | None = None,
    end: datetime | None = None,
    class_of_service: str | None = None,
    now: datetime | None = None,
) -> tuple[str, str]:
    """(file name, CSV text): RFC 4180 (quoted as needed, CRLF), one row per delay, text
    cells neutralised against formula injection."""
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    rows = delays(
        session=session,
        board_id=board.id,
        actor=actor,
        status=status,
        start=start,
        end=end,
        class_of_service=class_of_service,
        now=now,
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(DELAY_COLUMNS)
    for d in rows:
        writer.writerow(
            [
                neutralise(d.item_key),
                neutralise(d.title),
                neutralise(d.state or ""),
                neutralise(d.reason),
                neutralise(d.note),
                neutralise(d.waiting_on),
                _iso(d.opened_at),
                neutralise(d.opened_by or ""),
                _iso(d.resolved_at),
                neutralise(d.resolved_by or ""),
                neutralise(d.resolution),
                f"{d.duration_seconds / 3600:.2f}",
            ]
        )
    return f"{board.key}-delays-{status}.csv", buffer.getvalue()
