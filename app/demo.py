"""`flowboard demo`: five template boards filled with months of simulated, rule-abiding history.

Nothing here writes rows directly: every change goes through the real services with a
historical `now=`, so the demo history is exactly what people using Flowboard would have
produced (the WIP limits, criteria and roles refused what they would have refused). A small
in-memory mirror of the boards lets the simulated people decide what to try next; the
services stay the judges, and a refusal (FlowError) just means "try again later".

The model, in one paragraph: demand arrives each working day (Poisson), people pull work when
they have capacity, spend effort hours on it (one thing at a time, availability below 100 %),
check the exit criteria, mark it ready, and the next state's pullers take it when that state
has room. Rex is the only reviewer and reviews or verifies on four boards, so he is the
constraint, sharpest at "Review" on the document board (limit 2, long reviews, frequent
send-backs): finished drafts pile up in Drafting's Ready column, the document backlog hits its
limit of 20 and starts refusing new demand, and Ready queues form in front of Rex's states on
the other boards too.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, insert, literal, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from app.db import queries
from app.db.base import Base
from app.db.models import User
from app.db.session import Database
from app.flow.errors import FlowError
from app.services import blocks, boards, items, users
from app.services.board_templates import TEMPLATES

DOMAIN = "flowboard.demo"
WORK_START_HOUR = 9
WORK_HOURS = 8  # 09:00-17:00 UTC
# No expedite item may go past a full state in these last working hours, so the end state
# holds exactly one over-limit state: the manager's recorded override.
FINAL_WINDOW_TICKS = 15 * WORK_HOURS
OVERRIDE_REASON = (
    "The regulator's deadline is Friday: the CFO asked for this review ahead of the queue."
)


@dataclass
class DemoResult:
    """What `flowboard demo` prints: the shared password, the accounts and the boards."""

    password: str
    users: list[tuple[str, str, str]]  # (name, email, role description)
    boards: list[tuple[int, str]]  # (board id, board name)
    stats: dict[str, int] = field(default_factory=dict)  # calls, refusals, items... (for logs)


# --- the cast ------------------------------------------------------------------------------


@dataclass
class _Person:
    key: str
    name: str
    role: str  # board role (Mia is also site admin, so creates the boards)
    description: str
    availability: float  # effort hours per working hour spent on these boards
    max_doing: int  # pulls new work only below this many doing items (all boards)
    user: User | None = None
    off_today: bool = False


def _cast() -> list[_Person]:
    return [
        _Person(
            "mia",
            "Mia",
            "manager",
            "site admin, manager of every demo board",
            0.35,
            2,
        ),
        _Person("sam", "Sam", "member", "member", 0.9, 4),
        _Person("ann", "Ann", "member", "member", 0.85, 4),
        _Person("rex", "Rex", "reviewer", "reviewer (the only one)", 0.6, 3),
        _Person("vic", "Vic", "viewer", "viewer (read only)", 0.0, 0),
    ]


# --- what each board's work looks like -----------------------------------------------------


@dataclass(frozen=True)
class _StatePlan:
    effort: float  # median effort hours of one item here
    pullers: tuple[str, ...]
    rework: float = 0.0  # chance the puller sends it back when finishing
    rework_to: int = 1  # index of the work state it goes back to
    rework_reasons: tuple[str, ...] = ()
    prep_days: tuple[int, int] | None = None  # entry criteria met only after this many days


@dataclass(frozen=True)
class _BoardPlan:
    slug: str
    arrivals: float  # mean new items per working day
    subjects: tuple[str, ...]
    patterns: tuple[str, ...]
    parties: tuple[tuple[str, str, str], ...]  # (waiting on, block reason, note)
    states: dict[str, _StatePlan]
    block_rate: float = 0.008  # chance per working hour that a doing item gets blocked


MEMBERS = ("sam", "ann")
REX = ("rex",)

PLANS: tuple[_BoardPlan, ...] = (
    _BoardPlan(
        slug="document-review",
        arrivals=0.85,
        subjects=(
            "Travel policy",
            "Data retention policy",
            "Onboarding guide",
            "Incident response plan",
            "Supplier code of conduct",
            "Remote work policy",
            "Privacy notice",
            "Expense procedure",
            "Access control standard",
            "Whistleblowing procedure",
            "Records management guide",
            "Health and safety manual",
        ),
        patterns=("{s} {y} update", "{s}: annual review", "New {s}", "{s} (translation)"),
        parties=(
            ("Legal", "Waiting for information", "Asked Legal whether clause 4 still holds."),
            ("Subject-matter expert", "Waiting for information", "Figures need an SME check."),
            ("Translation agency", "Waiting on external party", "Translation ordered."),
            ("Author on leave", "Resource unavailable", "The author is away this week."),
        ),
        states={
            "Drafting": _StatePlan(3.5, MEMBERS),
            "Review": _StatePlan(
                4.0,
                REX,
                rework=0.25,
                rework_to=1,
                rework_reasons=(
                    "Sources missing for section 3.",
                    "Contradicts the retention schedule; please align.",
                    "Audience is wrong: rewrite for new starters.",
                    "Too long: cut to the decisions people need.",
                ),
            ),
            "Approval": _StatePlan(0.75, ("rex",)),
        },
    ),
    _BoardPlan(
        slug="audit-preparation",
        arrivals=0.55,
        subjects=(
            "Access reviews",
            "Change management",
            "Backup restore tests",
            "Vendor due diligence",
            "Segregation of duties",
            "Payroll controls",
            "Asset inventory",
            "Training records",
            "Incident log",
        ),
        patterns=("Evidence: {s}", "{s} sample for Q{q}", "Finding follow-up: {s}"),
        parties=(
            ("Finance team", "Waiting for information", "Waiting for the ledger extract."),
            ("IT operations", "Dependency", "Needs a system export from IT."),
            ("External auditor", "Waiting on external party", "Auditor to confirm the sample."),
            ("Process owner", "Waiting for information", "Process owner to explain the gap."),
        ),
        states={
            "Gather evidence": _StatePlan(2.5, MEMBERS),
            "Quality check": _StatePlan(
                1.0,
                REX,
                rework=0.15,
                rework_to=1,
                rework_reasons=(
                    "Screenshot does not show the date.",
                    "Sample period does not match the control.",
                ),
            ),
            "Follow-up": _StatePlan(1.5, MEMBERS),
        },
    ),
    _BoardPlan(
        slug="risk-treatment",
        arrivals=0.45,
        subjects=(
            "Single supplier for payroll",
            "Unpatched laptops",
            "Key person dependency",
            "Office flood risk",
            "Phishing exposure",
            "Expired certificates",
            "Cloud cost overrun",
            "Data centre power",
        ),
        patterns=("Treat: {s}", "{s} mitigation", "Reduce {s}"),
        parties=(
            ("Supplier", "Waiting on external party", "Supplier quote requested."),
            ("CFO", "Waiting for decision", "Budget needs CFO sign-off."),
            ("IT security", "Dependency", "Security team to schedule the change."),
            ("Facilities", "Waiting on external party", "Facilities to book the contractor."),
        ),
        states={
            "Plan treatment": _StatePlan(2.0, MEMBERS, prep_days=(1, 8)),
            "Implement": _StatePlan(3.0, MEMBERS),
            "Verify": _StatePlan(
                1.0,
                REX,
                rework=0.1,
                rework_to=2,
                rework_reasons=("Control works only for new accounts; extend it.",),
            ),
        },
        block_rate=0.011,
    ),
    _BoardPlan(
        slug="change-implementation",
        arrivals=0.5,
        subjects=(
            "New expense tool",
            "Firewall rule clean-up",
            "Invoice approval workflow",
            "Email retention setting",
            "Service desk hours",
            "VPN client upgrade",
            "Purchase order template",
            "CRM field changes",
        ),
        patterns=("Change: {s}", "Roll out {s}", "{s} (phase {q})"),
        parties=(
            ("Supplier", "Waiting on external party", "Vendor patch due next week."),
            ("Change advisory board", "Waiting for decision", "Next CAB meeting."),
            ("Downstream team", "Dependency", "Finance must update their checklist first."),
            ("IT operations", "Resource unavailable", "No maintenance window free."),
        ),
        states={
            "Assess": _StatePlan(1.5, MEMBERS),
            "Approve": _StatePlan(0.5, ("mia",)),
            "Implement": _StatePlan(2.5, MEMBERS, prep_days=(1, 5)),
            "Verify": _StatePlan(
                0.75,
                REX,
                rework=0.12,
                rework_to=3,
                rework_reasons=("Rollback not tested.", "Users still see the old form."),
            ),
        },
    ),
    _BoardPlan(
        slug="management-decisions",
        arrivals=0.45,
        subjects=(
            "Office move",
            "Hiring freeze",
            "Tool consolidation",
            "Supplier switch",
            "Training budget",
            "Hybrid work days",
            "Pricing change",
            "New market entry",
        ),
        patterns=("Decide: {s}", "{s}: go or no-go", "{s} options"),
        parties=(
            ("CFO", "Waiting for decision", "CFO wants the cost case first."),
            ("Board of directors", "Waiting for decision", "On the next board agenda."),
            ("Legal", "Waiting for information", "Legal to confirm the notice period."),
            ("HR", "Waiting for information", "HR to model the headcount impact."),
        ),
        states={
            "Assemble information": _StatePlan(2.5, MEMBERS),
            "Decide": _StatePlan(
                0.75,
                ("mia",),
                rework=0.1,
                rework_to=1,
                rework_reasons=("Option C is missing its cost.",),
                prep_days=(0, 4),
            ),
            "Communicate": _StatePlan(1.0, MEMBERS),
        },
        block_rate=0.012,
    ),
)

RESOLUTIONS = (
    "Answer received.",
    "Sorted out on a call.",
    "Got what we needed.",
    "Done; carrying on.",
    "",
)
DISCARD_REASONS = (
    "No longer relevant.",
    "Superseded by a newer request.",
    "Duplicate of another item.",
    "Out of scope this year.",
)


# --- the simulation ------------------------------------------------------------------------


@dataclass
class _State:
    id: int
    name: str
    kind: str
    wip_limit: int | None
    entry: list[int]
    exit: list[int]


@dataclass
class _Item:
    id: int
    board: _Board
    state: int  # index into the board's states
    cls: str
    created_tick: int
    stage: str | None = None
    owner: str | None = None
    remaining: float = 0.0
    block_id: int | None = None
    block_until: int = 0
    block_resolver: str = ""
    checked: set[int] = field(default_factory=set)
    since_tick: int = 0  # entered the current state/stage
    prep_tick: int = 0  # entry criteria of the next state can be met from then
    reworks: int = 0
    refusals: int = 0


@dataclass
class _Board:
    id: int
    name: str
    plan: _BoardPlan
    states: list[_State]
    reasons: dict[str, int]
    items: list[_Item] = field(default_factory=list)  # open items only


class _Simulation:
    def __init__(
        self,
        people: dict[str, _Person],
        rng: random.Random,
        start: datetime,
    ) -> None:
        self.people = people
        self.rng = rng
        self.clock = start
        self.session: Session | None = None
        self.boards: list[_Board] = []
        self.tick = 0
        self.last_tick = 0
        self.stats: dict[str, int] = {}
        self.closing = False

    # -- plumbing

    def count(self, name: str, by: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + by

    def now(self) -> datetime:
        """The next moment: strictly later than every earlier service call."""
        small = self.closing  # the closing moves come in quick succession
        self.clock += timedelta(
            seconds=self.rng.randint(3, 12) if small else self.rng.randint(15, 75)
        )
        return self.clock

    def call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """One service call at the next moment; a refusal is counted and answered with None."""
        assert self.session is not None
        self.count("calls")
        try:
            return fn(session=self.session, now=self.now(), **kwargs)
        except FlowError as refusal:
            self.count(f"refused:{refusal.slug}")
            return None

    def user(self, key: str) -> User:
        user = self.people[key].user
        assert user is not None
        return user

    def doing(self, key: str) -> int:
        return sum(1 for b in self.boards for i in b.items if i.owner == key and i.stage == "doing")

    def wip(self, board: _Board, index: int) -> int:
        return sum(1 for i in board.items if i.state == index)

    def has_room(self, board: _Board, index: int) -> bool:
        limit = board.states[index].wip_limit
        return limit is None or self.wip(board, index) < limit

    def sync(self, item: _Item, detail: items.ItemDetail) -> None:
        """Takes the item's position from what the service wrote."""
        row = detail.item
        index = next(n for n, s in enumerate(item.board.states) if s.id == row.state_id)
        moved = index != item.state or row.stage != item.stage
        item.state, item.stage = index, row.stage
        item.owner = next(
            (k for k, p in self.people.items() if p.user and p.user.id == row.owner_id), None
        )
        if moved:
            item.since_tick = self.tick
        if row.done_at is not None or row.discarded_at is not None:
            item.board.items.remove(item)
            self.count("completed" if row.done_at is not None else "discarded")

    # -- setup

    def setup(self) -> None:
        assert self.session is not None
        mia = self.user("mia")
        for plan in PLANS:
            template = TEMPLATES[plan.slug]
            board = boards.create_board(
                session=self.session,
                actor=mia,
                name=template.name,
                template=plan.slug,
                now=self.now(),
            )
            for person in self.people.values():
                if person.key != "mia":
                    boards.set_member(
                        session=self.session,
                        board_id=board.id,
                        user_id=self.user(person.key).id,
                        role=person.role,
                        actor=mia,
                    )
            states: list[_State] = []
            criteria = queries.criteria_of_board(self.session, board.id)
            for state in queries.states_of(self.session, board.id):
                states.append(
                    _State(
                        id=state.id,
                        name=state.name,
                        kind=state.kind,
                        wip_limit=state.wip_limit,
                        entry=[
                            c.id for c in criteria if c.state_id == state.id and c.gate == "entry"
                        ],
                        exit=[
                            c.id for c in criteria if c.state_id == state.id and c.gate == "exit"
                        ],
                    )
                )
            reasons = {r.name: r.id for r in queries.block_reasons(self.session, board.id)}
            self.boards.append(_Board(board.id, board.name, plan, states, reasons))

    # -- one working hour

    def run_tick(self, tick: int, start: datetime, arrivals: list[_Board]) -> None:
        self.tick = tick
        self.clock = max(self.clock, start + timedelta(seconds=self.rng.randint(0, 300)))
        self.resolve_blocks()
        for board in arrivals:
            self.arrive(board)
        finished = self.work()
        for item in finished:
            self.finish(item)
        order = self.boards[tick % len(self.boards) :] + self.boards[: tick % len(self.boards)]
        for board in order:
            self.pulls(board)
        for board in self.boards:
            self.maybe_block(board)
        if tick % WORK_HOURS == 3:
            for board in self.boards:
                self.tidy_backlog(board)
        # How the bottleneck looks, for the report: Review full, drafts queuing in front of it.
        doc = self.boards[0]
        if not self.has_room(doc, 2):
            self.count("hours_review_at_limit")
        self.count("hours", 1)
        self.count(
            "draft_ready_hours", sum(1 for i in doc.items if i.state == 1 and i.stage == "ready")
        )

    def resolve_blocks(self) -> None:
        for board in self.boards:
            for item in list(board.items):
                if item.block_id is not None and item.block_until <= self.tick:
                    done = self.call(
                        blocks.resolve_block,
                        block_id=item.block_id,
                        actor=self.user(item.block_resolver),
                        note=self.rng.choice(RESOLUTIONS),
                    )
                    if done is not None:
                        item.block_id = None
                        self.count("blocks_resolved")

    def arrive(self, board: _Board) -> bool:
        rng = self.rng
        roll = rng.random()
        cls = (
            "expedite"
            if roll < 0.04
            else "fixed_date"
            if roll < 0.16
            else "intangible"
            if roll < 0.24
            else "standard"
        )
        due = (
            (self.clock + timedelta(days=rng.randint(8, 35))).date()
            if cls == "fixed_date"
            else None
        )
        title = rng.choice(board.plan.patterns).format(
            s=rng.choice(board.plan.subjects), y=self.clock.year, q=rng.randint(1, 4)
        )
        creator = rng.choice(("mia", "mia", "sam", "ann", "rex"))
        detail = self.call(
            items.create_item,
            board_id=board.id,
            actor=self.user(creator),
            title=title,
            description=f"Raised by {self.people[creator].name}.",
            class_of_service=cls,
            due_date=due,
        )
        if detail is None:
            return False  # a full backlog said no to new demand
        self.count("created")
        item = _Item(
            id=detail.item.id,
            board=board,
            state=0,
            cls=cls,
            created_tick=self.tick,
            since_tick=self.tick,
        )
        first = board.plan.states[board.states[1].name]
        item.prep_tick = self.prep_tick(first)
        board.items.append(item)
        return True

    def prep_tick(self, plan: _StatePlan) -> int:
        if plan.prep_days is None:
            return self.tick
        low, high = plan.prep_days
        return self.tick + self.rng.randint(low * WORK_HOURS, high * WORK_HOURS + 4)

    def priority(self, item: _Item) -> tuple[int, int, int]:
        rank = {"expedite": 0, "fixed_date": 1, "standard": 2, "intangible": 3}[item.cls]
        return rank, item.since_tick, item.id

    def work(self) -> list[_Item]:
        """Each person spends this hour's effort on their doing items, most urgent first."""
        finished: list[_Item] = []
        for key, person in self.people.items():
            if person.off_today or person.availability <= 0:
                continue
            mine = sorted(
                (
                    i
                    for b in self.boards
                    for i in b.items
                    if i.owner == key and i.stage == "doing" and i.block_id is None
                ),
                key=self.priority,
            )
            effort = person.availability
            for item in mine:
                if effort <= 0:
                    break
                used = min(effort, item.remaining)
                item.remaining -= used
                effort -= used
                if item.remaining <= 1e-9:
                    finished.append(item)
        return finished

    def finish(self, item: _Item) -> None:
        board = item.board
        state = board.states[item.state]
        plan = board.plan.states[state.name]
        assert item.owner is not None
        actor = self.user(item.owner)
        if plan.rework and item.reworks < 2 and self.rng.random() < plan.rework:
            target = plan.rework_to
            if item.cls != "expedite" or self.has_room(board, target) or not self.in_final_window():
                detail = self.call(
                    items.send_back,
                    item_id=item.id,
                    actor=actor,
                    to_state_id=board.states[target].id,
                    reason=self.rng.choice(plan.rework_reasons),
                )
                if detail is not None:
                    self.count("sent_back")
                    item.reworks += 1
                    self.sync(item, detail)
                    back_plan = board.plan.states[board.states[target].name]
                    item.remaining = self.effort(back_plan) * 0.4
                    redo = board.states[target].exit[:1]
                    if redo and item.owner is not None:
                        self.call(
                            items.set_criterion,
                            item_id=item.id,
                            criterion_id=redo[0],
                            met=False,
                            actor=self.user(item.owner),
                        )
                        item.checked.discard(redo[0])
                    return
                item.refusals += 1
                if item.refusals < 3:
                    item.remaining = 0.25  # the rework state is full: look again soon
                    return
        self.mark_ready(item, actor)

    def mark_ready(self, item: _Item, actor: User) -> bool:
        state = item.board.states[item.state]
        for criterion_id in state.exit:
            if criterion_id not in item.checked and self.call(
                items.set_criterion,
                item_id=item.id,
                criterion_id=criterion_id,
                met=True,
                actor=actor,
            ):
                item.checked.add(criterion_id)
        detail = self.call(items.mark_ready, item_id=item.id, actor=actor)
        if detail is None:
            return False
        self.sync(item, detail)
        if item.stage == "ready" and item.state + 1 < len(item.board.states) - 1:
            following = item.board.states[item.state + 1]
            item.prep_tick = self.prep_tick(item.board.plan.states[following.name])
        return True

    def effort(self, plan: _StatePlan) -> float:
        value = self.rng.lognormvariate(math.log(plan.effort), 0.6)
        return min(max(value, 0.25), plan.effort * 5)

    def in_final_window(self) -> bool:
        return self.tick >= self.last_tick - FINAL_WINDOW_TICKS

    def candidates(self, board: _Board, source: int) -> list[_Item]:
        found = [
            i
            for i in board.items
            if i.state == source
            and i.block_id is None
            and (source == 0 or i.stage == "ready")
            and i.prep_tick <= self.tick
            and (i.cls != "intangible" or source != 0 or self.rng.random() < 0.3)
        ]
        return sorted(found, key=self.priority)

    def puller(self, plan: _StatePlan) -> str | None:
        free = [
            k
            for k in plan.pullers
            if not self.people[k].off_today and self.doing(k) < self.people[k].max_doing
        ]
        return min(free, key=self.doing) if free else None

    def pulls(self, board: _Board) -> None:
        """Downstream first: finishing beats starting."""
        for index in range(len(board.states) - 2, 0, -1):
            target = board.states[index]
            plan = board.plan.states[target.name]
            for _ in range(3):
                waiting = self.candidates(board, index - 1)
                if not waiting:
                    break
                who = self.puller(plan)
                if who is None:
                    break
                item = waiting[0]
                if not self.has_room(board, index):
                    expedite = item.cls == "expedite" and not self.in_final_window()
                    if not expedite:
                        if self.rng.random() < 0.04:
                            self.pull(item, who, index)  # a hopeful try; the limit says no
                        break
                if not self.pull(item, who, index):
                    break

    def pull(self, item: _Item, who: str, index: int, override: str | None = None) -> bool:
        actor = self.user(who)
        for criterion_id in item.board.states[index].entry:
            if criterion_id not in item.checked and self.call(
                items.set_criterion,
                item_id=item.id,
                criterion_id=criterion_id,
                met=True,
                actor=actor,
            ):
                item.checked.add(criterion_id)
        kwargs: dict[str, Any] = {"override_reason": override} if override else {}
        detail = self.call(items.pull_item, item_id=item.id, actor=actor, **kwargs)
        if detail is None:
            return False
        self.count("pulled")
        self.sync(item, detail)
        item.refusals = 0
        item.remaining = self.effort(item.board.plan.states[item.board.states[index].name])
        if index == 1 and self.rng.random() < 0.1:
            self.edit(
                item,
                who,
                {
                    "description": "Scope agreed at pull: "
                    + self.rng.choice(
                        (
                            "first draft only.",
                            "include the appendix.",
                            "two sites only.",
                            "as discussed.",
                        )
                    )
                },
            )
        return True

    def edit(self, item: _Item, who: str, changes: dict[str, object]) -> None:
        assert self.session is not None
        current = items.get_item(session=self.session, item_id=item.id, actor=self.user(who))
        if self.call(
            items.edit_item,
            item_id=item.id,
            actor=self.user(who),
            version=current.item.version,
            changes=changes,
        ):
            self.count("edited")

    def maybe_block(self, board: _Board) -> None:
        rng = self.rng
        for item in list(board.items):
            if item.block_id is not None or item.state == 0 or item.owner is None:
                continue
            rate = board.plan.block_rate if item.stage == "doing" else board.plan.block_rate / 4
            if rng.random() >= rate:
                continue
            hours = min(max(round(rng.lognormvariate(math.log(7), 0.9)), 1), 70)
            self.block(item, hours)

    def block(self, item: _Item, hours: int) -> bool:
        rng = self.rng
        board = item.board
        party, reason, note = rng.choice(board.plan.parties)
        assert item.owner is not None
        found = self.call(
            blocks.block_item,
            item_id=item.id,
            actor=self.user(item.owner),
            reason_id=board.reasons[reason],
            note=note,
            waiting_on=party,
        )
        if found is None:
            return False
        self.count("blocked")
        item.block_id = found.id
        item.block_until = self.tick + hours
        item.block_resolver = "mia" if party in ("CFO", "Board of directors") else item.owner
        return True

    def tidy_backlog(self, board: _Board) -> None:
        """Once a day: stale options are discarded, and a fixed date sometimes moves."""
        rng = self.rng
        options = sorted((i for i in board.items if i.state == 0), key=lambda i: i.created_tick)
        limit = board.states[0].wip_limit
        stale = [i for i in options if self.tick - i.created_tick > 30 * WORK_HOURS]
        crowded = limit is not None and len(options) >= limit - 1
        if (stale and rng.random() < 0.35) or (crowded and rng.random() < 0.25):
            victim = (stale or [i for i in options if i.cls == "intangible"] or options)[0]
            detail = self.call(
                items.discard_item,
                item_id=victim.id,
                actor=self.user("mia"),
                reason=rng.choice(DISCARD_REASONS),
            )
            if detail is not None:
                self.sync(victim, detail)
        dated = [i for i in board.items if i.cls == "fixed_date"]
        if dated and rng.random() < 0.05:
            item = rng.choice(dated)
            moved = (self.clock + timedelta(days=rng.randint(5, 20))).date()
            self.edit(item, "mia", {"due_date": moved})

    # -- the end state

    def finale(self) -> None:
        """Makes the promised end state true whatever the dice did, still through services."""
        self.closing = True
        for board in self.boards:
            # Fresh requests this afternoon: enough options to walk into any empty state.
            while sum(1 for i in board.items if i.state == 0) < len(board.states) - 1:
                if not self.arrive(board):
                    break
            self.fill_empty_states(board)
            if board is self.boards[0]:
                self.manager_override(board)
                self.fill_empty_states(board)  # the override may have emptied Drafting
            self.ensure_ready(board)
            self.ensure_blocked(board)
            if not any(i.state == 0 for i in board.items):
                self.arrive(board)
        open_items = [i for b in self.boards for i in b.items]
        for cls in ("expedite", "fixed_date"):
            if not any(i.cls == cls for i in open_items):
                self.arrive_as(self.boards[-1], cls)
        self.stats["states_over_limit"] = sum(
            1
            for b in self.boards
            for n, s in enumerate(b.states)
            if s.wip_limit is not None and self.wip(b, n) > s.wip_limit
        )

    def arrive_as(self, board: _Board, cls: str) -> None:
        detail = self.call(
            items.create_item,
            board_id=board.id,
            actor=self.user("mia"),
            title=f"{board.plan.subjects[0]}: urgent request",
            class_of_service=cls,
            due_date=(self.clock + timedelta(days=10)).date() if cls == "fixed_date" else None,
        )
        if detail is not None:
            board.items.append(
                _Item(detail.item.id, board, 0, cls, self.tick, since_tick=self.tick)
            )

    def make_ready(self, item: _Item) -> bool:
        if item.stage == "ready":
            return True
        if item.owner is None or item.block_id is not None:
            return False
        return self.mark_ready(item, self.user(item.owner)) and item.stage == "ready"

    def fill_empty_states(self, board: _Board) -> None:
        """Walks an item from the nearest state that can spare one into each empty state."""
        for index in range(1, len(board.states) - 1):
            if self.wip(board, index):
                continue
            for source in range(index - 1, -1, -1):
                spare = [
                    i
                    for i in board.items
                    if i.state == source
                    and i.block_id is None
                    and (source == 0 or i.stage == "ready" or i.owner is not None)
                ]
                if source and self.wip(board, source) < 2:
                    continue
                if spare:
                    self.walk(
                        min(spare, key=lambda i: (i.stage != "ready", self.priority(i))), index
                    )
                    break

    def walk(self, item: _Item, index: int) -> None:
        board = item.board
        while item.state < index:
            if item.state and not self.make_ready(item):
                return
            item.prep_tick = 0
            plan = board.plan.states[board.states[item.state + 1].name]
            if not any(self.pull(item, who, item.state + 1) for who in plan.pullers):
                return

    def ensure_ready(self, board: _Board) -> None:
        if any(i.stage == "ready" for i in board.items):
            return
        for item in board.items:
            if (
                item.stage == "doing"
                and item.state < len(board.states) - 2
                and self.make_ready(item)
            ):
                return

    def ensure_blocked(self, board: _Board) -> None:
        if any(i.block_id is not None for i in board.items):
            return
        for item in board.items:
            if item.stage == "doing" and item.owner is not None and self.block(item, 10**6):
                return

    def manager_override(self, board: _Board) -> None:
        """Mia pulls one more draft into the full bottleneck, with her reason on record."""
        index = 2  # Review on the document board: the bottleneck
        plan = board.plan.states[board.states[index].name]
        while self.has_room(board, index):
            item = self.ready_in(board, index - 1)
            if item is None or not self.pull(item, plan.pullers[0], index):
                break
        item = self.ready_in(board, index - 1)
        if (
            item is not None
            and not self.has_room(board, index)
            and self.pull(item, "mia", index, override=OVERRIDE_REASON)
        ):
            self.count("manager_overrides")

    def ready_in(self, board: _Board, index: int) -> _Item | None:
        """A standard item waiting in `index`'s Ready column, finishing or walking one there."""
        waiting = [i for i in self.candidates(board, index) if i.cls != "expedite"]
        if waiting:
            return waiting[0]
        for item in board.items:
            if item.state == index and item.cls != "expedite" and self.make_ready(item):
                return item
        for item in board.items:
            if item.state == 0 and item.cls != "expedite" and item.block_id is None:
                self.walk(item, index)
                if item.state == index and self.make_ready(item):
                    return item
                return None
        return None


def _ticks(start: datetime, end: datetime) -> list[datetime]:
    """The start of every working hour (09:00-17:00 UTC, Monday to Friday) in [start, end)."""
    hours: list[datetime] = []
    day = start.date()
    while True:
        base = datetime(day.year, day.month, day.day, WORK_START_HOUR, tzinfo=UTC)
        if base >= end:
            return hours
        if day.weekday() < 5:
            for hour in range(WORK_HOURS):
                moment = base + timedelta(hours=hour)
                if start <= moment and moment + timedelta(hours=1) <= end:
                    hours.append(moment)
        day += timedelta(days=1)


def _poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def load_demo(
    database: Database, *, now: datetime | None = None, seed: int = 7, months: int = 6
) -> DemoResult | None:
    """Fills an EMPTY database (no users) with the demo; returns None and does nothing otherwise.

    The same seed and `now` give the same boards, items and history. On PostgreSQL the
    simulation runs against a private in-memory SQLite database and its rows are then copied
    over in one transaction (see _copy_rows); a PostgreSQL database that is not entirely empty
    gets the simulation directly, as SQLite does.
    """
    started = time.perf_counter()
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # Flowboard speaks UTC
    with database.unit_of_work(write=False) as session:
        if queries.user_count(session):
            return None
        scratch_first = not database.is_sqlite and not _has_rows(session)
    if not scratch_first:
        result = _simulate(database, now=now, seed=seed, months=months)
    else:
        # The simulation makes ~25,000 small statements through the services; against a
        # server each is a round trip (about 100 s on a busy 2-core machine). Against an
        # in-memory SQLite they cost microseconds, and the copy is a few bulk inserts. The
        # history is the same: the same services judged every action.
        scratch = Database("sqlite://", poolclass=StaticPool)
        try:
            Base.metadata.create_all(scratch.engine)
            result = _simulate(scratch, now=now, seed=seed, months=months)
            if result is not None and not _copy_rows(scratch, database):
                result = None  # someone else filled the database meanwhile
        finally:
            scratch.dispose()
    if result is not None:
        result.stats["milliseconds"] = round((time.perf_counter() - started) * 1000)
    return result


def _has_rows(session: Session) -> bool:
    """Whether any table holds a row (a restore or a sign-in attempt may leave some)."""
    return any(
        session.execute(select(literal(1)).select_from(table).limit(1)).first() is not None
        for table in Base.metadata.sorted_tables
    )


def _copy_rows(source: Database, target: Database) -> bool:
    """Copies every row of `source` into the empty PostgreSQL `target`, ids kept, in one
    transaction, then moves the id sequences past them; False (nothing written) when the
    target has users by then."""
    tables = Base.metadata.sorted_tables  # parents first
    with source.engine.connect() as reading, target.unit_of_work() as session:
        if queries.user_count(session):
            return False
        writing = session.connection()
        for table in tables:
            rows = [dict(row._mapping) for row in reading.execute(select(table))]
            if rows:
                writing.execute(insert(table), rows)
        for table in tables:
            primary = list(table.primary_key.columns)
            if len(primary) != 1 or not isinstance(primary[0].type, Integer):
                continue
            writing.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence(:table, :column), "
                    f'coalesce((SELECT max("{primary[0].name}") FROM "{table.name}"), 0) + 1, '
                    "false) "
                    "WHERE pg_get_serial_sequence(:table, :column) IS NOT NULL"
                ),
                {"table": table.name, "column": primary[0].name},
            )
    return True


def _simulate(database: Database, *, now: datetime, seed: int, months: int) -> DemoResult | None:
    rng = random.Random(seed)
    people = {p.key: p for p in _cast()}
    password = secrets.token_urlsafe(12)
    with database.unit_of_work() as session:
        if queries.user_count(session):
            return None
        for person in people.values():
            person.user = users.create_user(
                session=session,
                email=f"{person.key}@{DOMAIN}",
                name=person.name,
                password=password,
                is_admin=person.key == "mia",
            )
    # Leave an hour before `now` so the closing moves still happen before it.
    end = now - timedelta(hours=1)
    start = (now - timedelta(days=round(months * 30.44))).replace(
        hour=WORK_START_HOUR, minute=0, second=0, microsecond=0
    )
    hours = _ticks(start, end)
    sim = _Simulation(people, rng, start)
    sim.last_tick = len(hours) - 1
    with database.unit_of_work() as session:
        sim.session = session
        sim.setup()
    day_plan: dict[int, list[_Board]] = {}
    for week_start in range(0, len(hours), 5 * WORK_HOURS):
        with database.unit_of_work() as session:
            sim.session = session
            for tick in range(week_start, min(week_start + 5 * WORK_HOURS, len(hours))):
                if tick % WORK_HOURS == 0:
                    day_plan = {}
                    for person in people.values():
                        person.off_today = rng.random() < 0.05
                    for board in sim.boards:
                        for _ in range(_poisson(rng, board.plan.arrivals)):
                            day_plan.setdefault(tick + rng.randrange(WORK_HOURS), []).append(board)
                sim.run_tick(tick, hours[tick], day_plan.get(tick, []))
    with database.unit_of_work() as session:
        sim.session = session
        for person in people.values():
            person.off_today = False
        sim.finale()
        if sim.clock >= now:  # cannot happen with the hour left free; never write the future
            raise RuntimeError("the demo history ran past `now`")
    return DemoResult(
        password=password,
        users=[(p.name, f"{p.key}@{DOMAIN}", p.description) for p in people.values()],
        boards=[(b.id, b.name) for b in sim.boards],
        stats=sim.stats,
    )
