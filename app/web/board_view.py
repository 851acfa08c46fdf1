"""The board as the templates see it: columns, halves, lanes, signals and allowed actions.

Which buttons a card shows is asked of app.flow.rules (the same checks the services run), with
the facts that need no extra query; the service still checks everything when a button is used.
WIP and criteria are left to the service on purpose, so a refused pull can explain itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from app.db import board_queries as bq
from app.db import queries
from app.db.board_queries import BoardFilters, CardRow, ColumnKey
from app.db.models import BlockReason, Board, Criterion, Item, State, User
from app.flow import rules
from app.flow.errors import FlowError
from app.services.items import item_facts, state_facts
from app.web.templating import duration


@dataclass
class Card:
    row: CardRow
    age: str
    criteria: str = ""
    criteria_partial: bool = False
    blocked_text: str = ""
    may_pull: bool = False
    may_ready: bool = False
    may_block: bool = False
    may_unblock: bool = False
    send_back_to: list[State] = field(default_factory=list)
    alert: str | None = None

    @property
    def item(self) -> Item:
        return self.row.item


@dataclass
class Run:
    """The cards of one state, stage and lane, with paging and the pull signal."""

    key: ColumnKey
    title: str
    cards: list[Card]
    total: int
    signal: str = ""

    @property
    def more(self) -> int:
        return max(0, self.total - len(self.cards))


@dataclass
class Column:
    state: State
    wip_text: str
    wip_class: str
    role_text: str
    runs: list[Run]
    lane: bool = False

    @property
    def is_work(self) -> bool:
        return self.state.kind == "work"


@dataclass
class BoardView:
    board: Board
    role: str
    states: list[State]
    columns: list[Column]
    lane: list[Column]
    filters: BoardFilters
    members: list[User]
    reasons: list[BlockReason]
    query: str
    alert: str | None = None
    may_create: bool = False
    offset: int = 0  # cards before this page of a column ("Show N more" pages)
    last_event_id: int = 0  # the newest event this rendering already shows

    @property
    def refresh_url(self) -> str:
        return f"/boards/{self.board.id}" + (f"?{self.query}" if self.query else "")

    @property
    def live_url(self) -> str:
        return f"/api/v1/boards/{self.board.id}/stream"

    def action_url(self, item_id: int, action: str) -> str:
        url = f"/boards/{self.board.id}/items/{item_id}/{action}"
        return url + (f"?{self.query}" if self.query else "")

    def more_url(self, run: Run) -> str:
        params = {
            "stage": run.key.stage or "",
            "lane": "expedite" if run.key.expedite else "",
            "offset": str(self.offset + len(run.cards)),
        }
        extra = f"&{self.query}" if self.query else ""
        return f"/boards/{self.board.id}/states/{run.key.state_id}/cards?{urlencode(params)}{extra}"


def filter_query(filters: BoardFilters) -> str:
    params: dict[str, str] = {}
    if filters.text:
        params["q"] = filters.text
    if filters.owner_id is not None:
        params["owner"] = str(filters.owner_id)
    if filters.class_of_service:
        params["cos"] = filters.class_of_service
    if filters.blocked_only:
        params["blocked"] = "1"
    return urlencode(params)


def wip_label(state: State, wip: int, delivered: int) -> tuple[str, str]:
    if state.kind == "done":
        return f"{delivered} done", ""
    if state.wip_limit is None:
        return str(wip), ""
    if wip > state.wip_limit:
        return f"{wip}/{state.wip_limit} over limit", "over"
    if wip == state.wip_limit:
        return f"{wip}/{state.wip_limit} at limit", "at"
    return f"{wip}/{state.wip_limit}", "under"


class _Rules:
    """Allowed actions for one viewer on one board, asked of app.flow.rules."""

    def __init__(self, states: list[State], role: str, user: User, has_reasons: bool) -> None:
        self.states = states
        self.facts = [state_facts(s) for s in states]
        self.by_id = {s.id: s for s in states}
        self.role = role
        self.user = user
        self.has_reasons = has_reasons

    @staticmethod
    def _allowed(check: Callable[[], object]) -> bool:
        try:
            check()
        except FlowError:
            return False
        return True

    def apply(self, card: Card) -> None:
        item = card.row.item
        facts = item_facts(item, card.row.block.id if card.row.block else None)
        state = self.by_id[item.state_id]
        if facts.closed:
            return
        card.may_pull = self._allowed(
            lambda: rules.check_pull(
                item=facts,
                states=self.facts,
                actor_role=self.role,
                target_wip=0,
                actor_doing=0,
                personal_limit=None,
                unmet_entry=[],
            )
        )
        card.may_ready = self._allowed(
            lambda: rules.check_mark_ready(
                item=facts,
                state=state_facts(state),
                actor_id=self.user.id,
                actor_role=self.role,
                unmet_exit=[],
            )
        )
        card.may_block = self.has_reasons and self._allowed(
            lambda: rules.check_block(item=facts, actor_role=self.role, reason_on_board=True)
        )
        card.may_unblock = facts.open_block_id is not None and self._allowed(
            lambda: rules.check_unblock(actor_role=self.role, already_resolved=False)
        )
        earlier = [
            s
            for s in self.states
            if s.kind == "work" and (s.position, s.id) < (state.position, state.id)
        ]
        card.send_back_to = [
            s
            for s in earlier
            if self._allowed(
                partial(
                    rules.check_send_back,
                    item=facts,
                    states=self.facts,
                    to_state_id=s.id,
                    reason="-",
                    actor_role=self.role,
                    target_wip=0,
                )
            )
        ]


def _criteria_text(
    card: Card,
    criteria: dict[tuple[int, str], list[Criterion]],
    checks: set[int],
    after: State | None,
) -> None:
    item = card.row.item
    if item.done_at is not None:
        return
    wanted = criteria.get((item.state_id, "exit"), [])
    label = "Exit"
    if not wanted and after is not None:
        wanted, label = criteria.get((after.id, "entry"), []), "Entry"
    if wanted:
        met = sum(1 for c in wanted if c.id in checks)
        card.criteria = f"{label} ✓ {met}/{len(wanted)}"
        card.criteria_partial = met < len(wanted)


def make_cards(
    session: Session,
    rows: list[CardRow],
    states: list[State],
    role: str,
    user: User,
    has_reasons: bool,
    now: datetime,
) -> list[Card]:
    """Cards with age, criteria progress, block badge and allowed actions (two statements)."""
    by_id = {s.id: s for s in states}
    after = {s.id: rules.state_after([state_facts(x) for x in states], s.id) for s in states}
    criteria: dict[tuple[int, str], list[Criterion]] = {}
    for criterion in queries.criteria_of_board(session, states[0].board_id) if states else []:
        criteria.setdefault((criterion.state_id, criterion.gate), []).append(criterion)
    ids = [r.item.id for r in rows]
    checks = queries.checks_for_items(session, ids)
    ready_at = bq.ready_since(session, [r.item.id for r in rows if r.item.stage == "ready"])
    rule = _Rules(states, role, user, has_reasons)
    cards = []
    for row in rows:
        item = row.item
        state = by_id[item.state_id]
        if state.kind == "done":
            start = item.committed_at or item.created_at
            age = f"cycle {duration((item.done_at or now) - start)}"
        elif item.stage == "ready":
            age = f"ready {duration(now - ready_at.get(item.id, item.state_entered_at))}"
        else:
            age = f"{duration(now - item.state_entered_at)} in {state.name}"
        card = Card(row=row, age=age)
        if row.block is not None:
            parts = [f"Blocked {duration(now - row.block.opened_at)}", row.reason_name or ""]
            if row.block.waiting_on:
                parts.append(f"waits on {row.block.waiting_on}")
            card.blocked_text = " · ".join(p for p in parts if p)
        following = after[item.state_id]
        _criteria_text(
            card,
            criteria,
            checks.get(item.id, set()),
            by_id.get(following.id) if following else None,
        )
        rule.apply(card)
        cards.append(card)
    return cards


def build_board(
    session: Session,
    *,
    board: Board,
    role: str,
    user: User,
    filters: BoardFilters,
    now: datetime,
    alert_item_id: int | None = None,
    alert: str | None = None,
) -> BoardView:
    states = queries.states_of(session, board.id)
    done = next((s for s in states if s.kind == "done"), None)
    newest_first = [s.id for s in states if s.kind in ("backlog", "done")]
    # Read first: anything committed after this id is not shown yet, so live updates for it
    # still refresh; events at or below it (e.g. the viewer's own action) need no refresh.
    last_event_id = bq.last_event_id(session, board.id)
    wip = queries.wip_by_state(session, board.id)
    counts = bq.column_counts(session, board.id, done.id if done else None, filters)
    rows = bq.visible_cards(session, board.id, newest_first, done.id if done else None, filters)
    reasons = queries.block_reasons(session, board.id)
    cards = make_cards(session, rows, states, role, user, bool(reasons), now)
    view = BoardView(
        board=board,
        role=role,
        states=states,
        columns=[],
        lane=[],
        filters=filters,
        members=[u for _, u in queries.members(session, board.id)],
        reasons=reasons,
        query=filter_query(filters),
        may_create=rules.role_at_least(role, "member"),
        last_event_id=last_event_id,
    )
    placed = False
    for card in cards:
        if alert and card.item.id == alert_item_id:
            card.alert, placed = alert, True
    if alert and not placed:
        view.alert = alert
    grouped: dict[ColumnKey, list[Card]] = {}
    for card in cards:
        item = card.item
        key = ColumnKey(item.state_id, item.stage, bq.in_expedite_lane(item))
        grouped.setdefault(key, []).append(card)
    has_lane = any(k.expedite and n for k, n in counts.items())
    delivered = sum(n for k, n in counts.items() if done is not None and k.state_id == done.id)
    for lane in (True, False) if has_lane else (False,):
        columns = view.lane if lane else view.columns
        for state in states:
            stages: tuple[str | None, ...] = ("doing", "ready") if state.kind == "work" else (None,)
            runs = []
            for stage in stages:
                key = ColumnKey(state.id, stage, lane)
                runs.append(
                    Run(
                        key=key,
                        title={"doing": "Doing", "ready": "Ready"}.get(stage or "", state.name),
                        cards=grouped.get(key, []),
                        total=counts.get(key, 0),
                    )
                )
            text, css = wip_label(state, wip.get(state.id, 0), delivered)
            role_text = "reviewers pull" if state.pull_role == "reviewer" else ""
            columns.append(Column(state, text, css, role_text, runs, lane=lane))
    _signals(view, wip, now)
    return view


def _signals(view: BoardView, wip: dict[int, int], now: datetime) -> None:
    """Pull signals: room downstream of a Ready with work, or Ready waiting on a full state."""
    main = view.columns
    for index in range(1, len(main)):
        previous, column = main[index - 1], main[index]
        if not previous.is_work:
            continue
        ready = [c for c in previous.runs[1].cards]
        if not ready:
            continue
        state = column.state
        free = None if state.wip_limit is None else state.wip_limit - wip.get(state.id, 0)
        oldest = min(ready, key=lambda c: (c.item.state_entered_at, c.item.id))
        if column.is_work and (free is None or free > 0):
            room = f"Room for {free}" if free is not None else "Room"
            column.runs[0].signal = f"{room}: pull {oldest.item.key} from {previous.state.name}"
        elif column.is_work:
            waited = oldest.age.removeprefix("ready ")
            previous.runs[1].signal = f"{state.name} has no room: this waits {waited}"
