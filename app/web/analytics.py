"""Bottlenecks, Delays and Time travel pages (viewer is enough; non-members get 404).

Thin: parse the URL (GET forms, so every filter is in the address and a page can be shared),
call app.services.analytics, turn the results into charts (app.web.charts, server-side SVG)
and tables. A bad filter (InvalidInput: a reversed window, a malformed date) renders the same
page with the rule's sentence in role="alert" and status 422; NotFound propagates to the 404
page. The page's dates are whole UTC days: `from` is the start of that day, `to` the end.

/boards/{id}/delays.csv exists because /api/v1/.../delays.csv takes a bearer token only: a
browser's "Download CSV" link carries the session cookie, not a token. It returns the same
service's CSV (analytics.delays_csv), byte for byte.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.db import queries
from app.db.models import CLASSES_OF_SERVICE, Board, Item, User
from app.deps import DbSession
from app.flow.errors import FlowError, InvalidInput, NotFound
from app.services import analytics
from app.services.access import visible_board
from app.web import charts
from app.web.charts import Bar, friendly_duration
from app.web.common import header_summary, parse_date, parse_int
from app.web.deps import WebUser
from app.web.templating import render

router = APIRouter()
DEFAULT_FORECAST_DAYS = 30
DEFAULT_FORECAST_ITEMS = 10
DELAYS_SHOWN = 1000  # rows on the page; the CSV has them all
CARDS_PER_RUN = 50  # cards per column half on the time-travel board


@dataclass
class Filters:
    """The page's URL filters, as typed (for the form) and as parsed (for the services)."""

    raw: dict[str, str]
    start: datetime | None = None
    end: datetime | None = None
    class_of_service: str | None = None

    def query(self, **extra: str) -> str:
        params = {k: v for k, v in {**self.raw, **extra}.items() if v}
        return urlencode(params)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _filters(request: Request, names: tuple[str, ...]) -> tuple[Filters, str | None]:
    """(filters, error sentence or None). The raw values are kept for the form either way."""
    params = request.query_params
    raw = {name: (params.get(name) or "").strip()[:40] for name in names}
    found = Filters(raw=raw)
    try:
        start, end = parse_date(raw.get("from")), parse_date(raw.get("to"))
        found.start = _day_start(start) if start else None
        # `to` is a whole day: up to the end of it.
        found.end = _day_start(end) + timedelta(days=1) if end else None
        cos = raw.get("cos") or None
        if cos is not None and cos not in CLASSES_OF_SERVICE:
            raise InvalidInput(f"Class of service is one of {', '.join(CLASSES_OF_SERVICE)}.")
        found.class_of_service = cos
    except InvalidInput as error:
        return found, error.detail
    return found, None


def _base_context(
    session: Session, user: User, board: Board, current: str, role: str
) -> dict[str, Any]:
    return {
        "board": board,
        "role": role,
        "nav_board": board,
        "nav_current": current,
        "summary": header_summary(session, user),
        "fd": friendly_duration,
        "CLASSES": CLASSES_OF_SERVICE,
    }


# --------------------------------------------------------------------------- bottlenecks


@dataclass
class ForecastPanel:
    until: date
    items: int
    by_date: analytics.Forecast | None = None
    by_count: analytics.Forecast | None = None
    error: str | None = None


@dataclass
class FlowPage:
    report: analytics.FlowReport
    cycle: analytics.CycleTimes
    throughput: list[analytics.ThroughputBucket]
    interval: str
    cfd: analytics.Cfd
    aging: analytics.Aging
    aging_by_state: list[tuple[str, list[analytics.AgingItem]]]
    reasons: list[analytics.WaitingReason]
    charts: dict[str, Any] = field(default_factory=dict)


def _flow_page(
    session: Session, user: User, board: Board, filters: Filters, interval: str, now: datetime
) -> FlowPage:
    common: dict[str, Any] = {
        "session": session,
        "board_id": board.id,
        "actor": user,
        "start": filters.start,
        "end": filters.end,
        "class_of_service": filters.class_of_service,
        "now": now,
    }
    report = analytics.flow_report(**common)
    cycle = analytics.cycle_times(**common)
    buckets = analytics.throughput(interval="week" if interval == "week" else "day", **common)
    flow = analytics.cfd(**common)
    aging = analytics.aging(**common)
    reasons = analytics.waiting_reasons(**common)
    names = {s.state_id: s.name for s in report.states}
    by_state: dict[int, list[analytics.AgingItem]] = defaultdict(list)
    for entry in aging.items:
        by_state[entry.state_id].append(entry)
    aging_by_state = [
        (s.name, by_state.get(s.state_id, [])) for s in report.states if s.kind == "work"
    ]
    page = FlowPage(report, cycle, buckets, interval, flow, aging, aging_by_state, reasons)
    page.charts = {
        "cfd": charts.cfd_chart(
            "Cumulative flow: items in each state at the end of each day",
            flow.days,
            [(s.name, s.counts) for s in flow.states],
        ),
        "scatter": charts.scatter_chart(
            "Cycle time of each item done, with the 50, 85 and 95 % lines",
            [(c.done_at, c.cycle_seconds, c.key) for c in cycle.items],
            cycle.percentiles,
            start=report.start,
            end=report.end,
        ),
        "throughput": charts.bar_chart(
            f"Throughput: items done per {'week' if interval == 'week' else 'day'}",
            [
                Bar(
                    f"{b.start.day} {b.start:%b}",
                    b.count,
                    f"{'Week of ' if interval == 'week' else ''}{b.start.isoformat()}: "
                    f"{b.count} done",
                )
                for b in buckets
            ],
        ),
        "aging": charts.aging_chart(
            "Aging work in progress by state, against the cycle-time percentiles",
            [(name, [(a.age_seconds, a.key) for a in entries]) for name, entries in aging_by_state],
            aging.percentiles,
        ),
        "efficiency": charts.meter("Flow efficiency", report.flow_efficiency),
        "pareto": charts.pareto_chart(
            "Waiting reasons: blocked time per reason, with the cumulative share",
            [
                Bar(
                    r.reason,
                    r.blocked_seconds / 3600,
                    f"{r.reason}: {friendly_duration(r.blocked_seconds)} over {r.count} "
                    f"block{'s' if r.count != 1 else ''}",
                )
                for r in reasons
            ],
        ),
        "names": names,
    }
    return page


def _forecast_panel(
    session: Session,
    user: User,
    board: Board,
    filters: Filters,
    request: Request,
    now: datetime,
) -> ForecastPanel:
    params = request.query_params
    today = now.date()
    panel = ForecastPanel(
        until=today + timedelta(days=DEFAULT_FORECAST_DAYS), items=DEFAULT_FORECAST_ITEMS
    )
    common: dict[str, Any] = {
        "session": session,
        "board_id": board.id,
        "actor": user,
        "start": filters.start,
        "end": filters.end,
        "class_of_service": filters.class_of_service,
        "now": now,
    }
    try:
        panel.until = parse_date(params.get("until")) or panel.until
        panel.items = parse_int(params.get("items"), "The number of items") or panel.items
        panel.by_date = analytics.forecast(until=panel.until, **common)
        panel.by_count = analytics.forecast(items=panel.items, **common)
    except InvalidInput as error:
        panel.error = error.detail
    return panel


@router.get("/boards/{board_id}/flow")
def flow_page(request: Request, board_id: int, session: DbSession, user: WebUser) -> Response:
    board, role = visible_board(session, board_id=board_id, actor=user)
    filters, error = _filters(request, ("from", "to", "cos", "interval"))
    interval = "week" if filters.raw.get("interval") == "week" else "day"
    now = queries.now()
    context = _base_context(session, user, board, "flow", role)
    context.update(filters=filters, interval=interval, page=None, forecast=None, alert=error)
    if error is None:
        try:
            context["page"] = _flow_page(session, user, board, filters, interval, now)
            context["forecast"] = _forecast_panel(session, user, board, filters, request, now)
        except NotFound:
            raise
        except FlowError as failure:
            context["alert"] = failure.detail
    status = 422 if context["alert"] else 200
    return render(request, "analytics/flow.html", context, status_code=status)


# --------------------------------------------------------------------------- delays


def _delay_args(request: Request) -> tuple[str, str | None]:
    status = request.query_params.get("status") or "all"
    reason = (request.query_params.get("reason") or "").strip() or None
    return status, reason


def _item_ids(session: Session, board_id: int, keys: set[str]) -> dict[str, int]:
    """key -> item id for the links (the delay rows carry the key, not the id)."""
    if not keys:
        return {}
    rows = session.execute(
        select(Item.key, Item.id).where(Item.board_id == board_id, Item.key.in_(keys))
    )
    return {k: i for k, i in rows}


@router.get("/boards/{board_id}/delays")
def delays_page(request: Request, board_id: int, session: DbSession, user: WebUser) -> Response:
    board, role = visible_board(session, board_id=board_id, actor=user)
    filters, error = _filters(request, ("from", "to", "cos", "status", "reason"))
    status, reason = _delay_args(request)
    context = _base_context(session, user, board, "delays", role)
    reasons = [r.name for r in queries.block_reasons(session, board.id)]
    context.update(
        filters=filters,
        status=status,
        reason=reason,
        reasons=reasons,
        rows=[],
        total=0,
        shown=DELAYS_SHOWN,
        ids={},
        alert=error,
        csv_url=f"/boards/{board.id}/delays.csv?{filters.query()}".rstrip("?"),
    )
    if error is None:
        try:
            found = analytics.delays(
                session=session,
                board_id=board.id,
                actor=user,
                status=status,
                start=filters.start,
                end=filters.end,
                class_of_service=filters.class_of_service,
            )
            rows = [d for d in found if reason is None or d.reason == reason]
            # Open blocks first (they are the delays someone can still act on), longest first;
            # then closed ones, most recent first.
            rows.sort(
                key=lambda d: (
                    d.resolved_at is not None,
                    -d.duration_seconds if d.resolved_at is None else 0,
                    -(d.opened_at.timestamp()),
                )
            )
            context["total"] = len(rows)
            context["rows"] = rows[:DELAYS_SHOWN]
            context["ids"] = _item_ids(session, board.id, {d.item_key for d in context["rows"]})
        except NotFound:
            raise
        except FlowError as failure:
            context["alert"] = failure.detail
    return render(
        request, "analytics/delays.html", context, status_code=422 if context["alert"] else 200
    )


@router.get("/boards/{board_id}/delays.csv")
def delays_csv(request: Request, board_id: int, session: DbSession, user: WebUser) -> Response:
    """The API's CSV, for the signed-in browser (session cookie, not a bearer token).

    The CSV service has no `reason` filter, so with one the service's rows are kept or
    dropped by their reason cell (cells untouched: still neutralised, still RFC 4180)."""
    filters, error = _filters(request, ("from", "to", "cos"))
    if error is not None:
        raise InvalidInput(error)
    status, reason = _delay_args(request)
    name, text = analytics.delays_csv(
        session=session,
        board_id=board_id,
        actor=user,
        status=status,
        start=filters.start,
        end=filters.end,
        class_of_service=filters.class_of_service,
    )
    if reason is not None:
        text = _only_reason(text, reason)
    return Response(
        content=text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _only_reason(text: str, reason: str) -> str:
    column = analytics.DELAY_COLUMNS.index("reason")
    wanted = analytics.neutralise(reason)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(rows[0])
    writer.writerows(r for r in rows[1:] if r[column] == wanted)
    return buffer.getvalue()


# --------------------------------------------------------------------------- time travel


@dataclass
class HistoryCard:
    item_id: int
    key: str
    title: str
    class_of_service: str
    blocked: bool


@dataclass
class HistoryRun:
    title: str
    stage: str | None
    cards: list[HistoryCard]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.cards)


@dataclass
class HistoryColumn:
    name: str
    kind: str
    limit: int | None
    count: int
    runs: list[HistoryRun]


def parse_moment(value: str | None, now: datetime) -> datetime:
    """A datetime-local value (YYYY-MM-DDTHH:MM, read as UTC) or ISO 8601 with an offset."""
    if not value:
        return now
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("Give the moment as YYYY-MM-DD HH:MM (UTC).") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _chosen_moment(request: Request, now: datetime) -> datetime:
    """The slider (epoch seconds in `t`) wins when it was moved away from where the page put
    it (`t0`); otherwise the datetime field `at`. Without JavaScript both still work."""
    params = request.query_params
    slider, placed = params.get("t") or "", params.get("t0") or ""
    if slider and slider != placed:
        # Epoch seconds up to the year 3000; '²' or 2**63 is a readable refusal, not a crash.
        seconds = parse_int(slider, "The moment", maximum=32_503_680_000)
        if seconds is not None:
            return datetime.fromtimestamp(seconds, UTC)
    return parse_moment(params.get("at"), now)


def _history_board(
    session: Session, board: Board, user: User, snapshot: analytics.Snapshot
) -> list[HistoryColumn]:
    states = queries.states_of(session, board.id)
    runs: dict[tuple[int, str | None], list[analytics.SnapshotItem]] = defaultdict(list)
    for entry in snapshot.items:
        runs[(entry.state_id, entry.stage)].append(entry)
    shown: list[analytics.SnapshotItem] = []
    layout: list[tuple[Any, list[tuple[str, str | None, list[analytics.SnapshotItem], int]]]] = []
    for state in states:
        halves: list[tuple[str, str | None]] = (
            [("Doing", "doing"), ("Ready", "ready")]
            if state.kind == "work"
            else [(state.name, None)]
        )
        parts = []
        for title, stage in halves:
            entries = runs.get((state.id, stage), [])
            if state.kind != "work":
                entries = [e for key, group in runs.items() if key[0] == state.id for e in group]
            # Newest first in backlog and done (as on the board); oldest first in work states.
            ordered = entries[::-1] if state.kind != "work" else entries
            picked = ordered[:CARDS_PER_RUN]
            shown.extend(picked)
            parts.append((title, stage, picked, len(entries)))
        layout.append((state, parts))
    titles = analytics.fields_as_of(
        session=session,
        board_id=board.id,
        actor=user,
        item_ids=[e.item_id for e in shown],
        at=snapshot.at,
    )
    columns = []
    for state, parts in layout:
        column_runs = [
            HistoryRun(
                title,
                stage,
                [
                    HistoryCard(
                        e.item_id,
                        e.key,
                        titles.get(e.item_id, ("", "standard"))[0],
                        titles.get(e.item_id, ("", "standard"))[1],
                        e.blocked,
                    )
                    for e in picked
                ],
                total,
            )
            for title, stage, picked, total in parts
        ]
        columns.append(
            HistoryColumn(
                state.name,
                state.kind,
                state.wip_limit,
                sum(r.total for r in column_runs),
                column_runs,
            )
        )
    return columns


def _first_moment(session: Session, board: Board) -> datetime:
    """Where the slider starts: the board's creation, or its oldest (imported) item."""
    oldest = session.scalar(select(func.min(Item.created_at)).where(Item.board_id == board.id))
    return min(board.created_at, oldest) if oldest is not None else board.created_at


@router.get("/boards/{board_id}/history")
def history_page(request: Request, board_id: int, session: DbSession, user: WebUser) -> Response:
    board, role = visible_board(session, board_id=board_id, actor=user)
    now = queries.now()
    context = _base_context(session, user, board, "history", role)
    first = _first_moment(session, board)
    context.update(
        columns=[],
        at=None,
        typed=(request.query_params.get("at") or "")[:40],
        alert=None,
        slider_min=int(first.timestamp()) // 60 * 60,
        slider_max=int(now.timestamp()),
    )
    try:
        at = _chosen_moment(request, now)
        found = analytics.snapshot(session=session, board_id=board.id, actor=user, at=at, now=now)
        context["at"] = found.at
        context["columns"] = _history_board(session, board, user, found)
    except NotFound:
        raise
    except FlowError as failure:
        context["alert"] = failure.detail
    at_value = context["at"] or now
    context["at_input"] = at_value.strftime("%Y-%m-%dT%H:%M")
    context["at_epoch"] = min(
        max(int(at_value.timestamp()), context["slider_min"]), context["slider_max"]
    )
    return render(
        request, "analytics/history.html", context, status_code=422 if context["alert"] else 200
    )
