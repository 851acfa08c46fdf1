"""The board as the templates see it: columns, halves, lanes, signals and allowed actions.

Which buttons a card shows is asked of app.flow.rules (the same checks the services run), with
the facts that need no extra query; the service still checks everything when a button is used.
WIP and criteria are left to the service on purpose, so a refused pull can explain itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from app.db import board_queries as bq
from app.db import queries
from app.db.board_queries import BoardFilters, CardItem, CardRow, ColumnKey
from app.db.models import BlockReason, Board, Criterion, Item, State, User
from app.flow import rules
from app.flow.errors import FlowError, InvalidMove
from app.flow.rules import ItemFacts
from app.services.items import get_item, item_facts, state_facts
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
    def item(self) -> CardItem:
        return self.row.item

    @property
    def send_back_ids(self) -> str:
        """The states it may go back to, nearest first (the dialog's default)."""
        return " ".join(str(s.id) for s in reversed(self.send_back_to))


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
    def may_act(self) -> bool:
        """Members and above get the shared Block / Send back dialogs (viewers never act)."""
        return rules.role_at_least(self.role, "member")

    @property
    def live_url(self) -> str:
        """Unfiltered pages get ready-made deltas; a filtered page reloads itself on each event
        (a delta is rendered for the unfiltered board)."""
        if self.query:
            return f"/api/v1/boards/{self.board.id}/stream"
        return f"/boards/{self.board.id}/live"

    def action_url(self, item_id: int, action: str) -> str:
        url = f"/boards/{self.board.id}/items/{item_id}/{action}"
        return url + (f"?{self.query}" if self.query else "")

    def run_id(self, key: ColumnKey) -> str:
        """The element id of a run: deltas (action answers, live) address runs by it."""
        return f"run-{key.state_id}-{key.stage or 'all'}" + ("-x" if key.expedite else "")

    def all_url(self, run: Run) -> str:
        """The column's page with every card of the run (a plain link: a page of its own)."""
        params = {
            "stage": run.key.stage or "",
            "lane": "expedite" if run.key.expedite else "",
            "all": "1",
        }
        extra = f"&{self.query}" if self.query else ""
        return f"/boards/{self.board.id}/states/{run.key.state_id}/cards?{urlencode(params)}{extra}"

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


class CardRules:
    """Allowed actions for one viewer on one board, asked of app.flow.rules' non-raising twins
    (no exception, no sentence per refused button of every card)."""

    def __init__(self, states: list[State], role: str, user_id: int, has_reasons: bool) -> None:
        self.states = states
        self.facts = [state_facts(s) for s in states]
        self.facts_by_id = {f.id: f for f in self.facts}
        self.by_id = {s.id: s for s in states}
        # Earlier work states per state, nearest last: the send-back candidates.
        self.earlier = {
            s.id: [
                x for x in states if x.kind == "work" and (x.position, x.id) < (s.position, s.id)
            ]
            for s in states
        }
        self.role = role
        self.user_id = user_id
        self.has_reasons = has_reasons
        # Role-only answers, the same for every card of this viewer.
        self.may_unblock = rules.unblock_refusal(actor_role=role) is None
        self._answers: dict[
            tuple[object, ...], tuple[bool, bool, bool, bool, tuple[State, ...]]
        ] = {}

    def apply(self, card: Card) -> None:
        item = card.row.item
        if item.done_at is not None or item.discarded_at is not None:
            return
        # The rules decide on a card's kind, not on which item it is: its state and stage,
        # class, block, open or closed, and whether this viewer owns it (ids and keys only
        # fill the refusals' sentences, never asked for here). Cards of one kind share one
        # answer: a column of a thousand cards asks the rules a few times.
        owner = item.owner_id
        kind = (
            item.state_id,
            item.stage,
            None if owner is None else (self.user_id if owner == self.user_id else -1),
            item.class_of_service,
            card.row.block is not None,
        )
        answer = self._answers.get(kind)
        if answer is None:
            facts = ItemFacts(
                id=0,
                key="",
                state_id=kind[0],
                stage=kind[1],
                owner_id=kind[2],
                class_of_service=kind[3],
                open_block_id=1 if kind[4] else None,
                done=False,
                discarded=False,
            )
            answer = self._answers[kind] = self._answer(facts)
        card.may_pull, card.may_ready, card.may_block, card.may_unblock, sends = answer
        card.send_back_to = list(sends)

    def _answer(self, facts: ItemFacts) -> tuple[bool, bool, bool, bool, tuple[State, ...]]:
        role = self.role
        return (
            rules.pull_refusal(item=facts, states=self.facts, actor_role=role) is None,
            rules.mark_ready_refusal(
                item=facts,
                state=self.facts_by_id[facts.state_id],
                actor_id=self.user_id,
                actor_role=role,
            )
            is None,
            self.has_reasons and rules.block_refusal(item=facts, actor_role=role) is None,
            facts.open_block_id is not None and self.may_unblock,
            tuple(
                s
                for s in self.earlier[facts.state_id]
                if rules.send_back_refusal(
                    item=facts, states=self.facts, to_state_id=s.id, actor_role=role
                )
                is None
            ),
        )

    def restyled(self, card: Card) -> Card:
        """A copy of `card` with the buttons this viewer gets (live deltas render per viewer
        variant from one build)."""
        fresh = replace(card, may_pull=False, may_ready=False, may_block=False, may_unblock=False)
        fresh.send_back_to = []
        self.apply(fresh)
        return fresh


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
    user_id: int,
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
    # Progress is shown against criteria: a board without any needs no checks read.
    checks = queries.checks_for_items(session, ids) if criteria else {}
    ready_at = bq.ready_since(session, [r.item.id for r in rows if r.item.stage == "ready"])
    rule = CardRules(states, role, user_id, has_reasons)
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
    user_id: int,
    filters: BoardFilters,
    now: datetime,
    alert_item_id: int | None = None,
    alert: str | None = None,
    detail_ids: set[int] | None = None,
) -> BoardView:
    """The board as one viewer sees it. `detail_ids` (deltas): only those cards, and the Ready
    cards the pull signals quote, get their age, criteria and buttons; the others only their
    place (a delta does not render them)."""
    states = queries.states_of(session, board.id)
    done = next((s for s in states if s.kind == "done"), None)
    newest_first = [s.id for s in states if s.kind in ("backlog", "done")]
    # Read first: anything committed after this id is not shown yet, so live updates for it
    # still refresh; events at or below it (e.g. the viewer's own action) need no refresh.
    last_event_id = bq.last_event_id(session, board.id)
    counts = bq.column_counts(session, board.id, done.id if done else None, filters)
    if filters == BoardFilters():
        # Unfiltered, the counts already hold every open item outside Done: no second pass
        # over the board's items for the WIP badges.
        wip: dict[int, int] = {}
        for key, n in counts.items():
            if done is None or key.state_id != done.id:
                wip[key.state_id] = wip.get(key.state_id, 0) + n
    else:
        wip = queries.wip_by_state(session, board.id)
    rows = bq.visible_cards(
        session,
        board.id,
        newest_first,
        done.id if done else None,
        filters,
        runs=[key for key, n in counts.items() if n],  # the counts know which runs have cards
    )
    reasons = queries.block_reasons(session, board.id)
    if detail_ids is None:
        cards = make_cards(session, rows, states, role, user_id, bool(reasons), now)
    else:
        # The pull signals quote the oldest shown Ready card of each run: the run's first.
        first_ready: dict[ColumnKey, CardRow] = {}
        for r in rows:
            if r.item.stage == "ready":
                key = ColumnKey(r.item.state_id, "ready", bq.in_expedite_lane(r.item))
                first_ready.setdefault(key, r)
        quoted = {r.item.id for r in first_ready.values()}
        wanted = [r for r in rows if r.item.id in detail_ids or r.item.id in quoted]
        detailed = {
            c.item.id: c
            for c in make_cards(session, wanted, states, role, user_id, bool(reasons), now)
        }
        cards = [detailed.get(r.item.id) or Card(row=r, age="") for r in rows]
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


@dataclass
class ActionForm:
    """The Block or Send back form of one item as a page of its own (no JavaScript)."""

    action: str  # block | send-back
    item: Item
    board: Board
    reasons: list[BlockReason]
    send_back_to: list[State]
    post_url: str
    refusal: FlowError | None = None


def action_form(
    session: Session, *, user: User, item_id: int, action: str, query: str
) -> ActionForm:
    """What the card's Block / Send back link opens. Raises NotFound; a refused action comes back
    with the rule's sentence (`refusal`) instead of a form."""
    detail = get_item(session=session, item_id=item_id, actor=user)
    item, board, role = detail.item, detail.board, detail.role
    states = queries.states_of(session, board.id)
    reasons = queries.block_reasons(session, board.id)
    block = detail.open_block
    card = Card(row=CardRow(item, detail.owner_name, block, None), age="")
    CardRules(states, role, user.id, bool(reasons)).apply(card)
    facts = item_facts(item, block.id if block else None)
    refusal: FlowError | None = None
    if action == "block" and not card.may_block:
        found = rules.block_refusal(item=facts, actor_role=role, reason_on_board=bool(reasons))
        refusal = found() if found else InvalidMove(f"{item.key} cannot be blocked now.")
    elif action == "send-back" and not card.send_back_to:
        found = rules.send_back_refusal(
            item=facts,
            states=[state_facts(s) for s in states],
            to_state_id=_nearest_earlier_work(states, item.state_id),
            actor_role=role,
        )
        refusal = found() if found else InvalidMove(f"{item.key} cannot be sent back now.")
    post_url = f"/boards/{board.id}/items/{item.id}/{action}" + (f"?{query}" if query else "")
    return ActionForm(
        action=action,
        item=item,
        board=board,
        reasons=reasons,
        send_back_to=list(reversed(card.send_back_to)),  # nearest first, the default
        post_url=post_url,
        refusal=refusal,
    )


def _nearest_earlier_work(states: list[State], state_id: int) -> int:
    """The state a send back would most likely aim at (its refusal explains the others)."""
    here = next(s for s in states if s.id == state_id)
    earlier = [
        s for s in states if s.kind == "work" and (s.position, s.id) < (here.position, here.id)
    ]
    return earlier[-1].id if earlier else state_id
