"""Request and response models of the JSON API (API.md), and the serialisers that fill them.

Request models are strict and forbid unknown fields, so a client cannot slip `board_id`,
`owner_id`, `state_id` or `stage` into a body that does not take them (mass assignment is a
422, not a silent write). Rules about a board's own data (unique names, state layout, roles)
stay in the services; the schemas only check shapes and ranges.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy.orm import Session

from app.db import queries
from app.db.models import Block, BlockReason, Board, Comment, Criterion, Event, State, User
from app.inputs import DB_INT_MAX, Id, MultiLine, Text
from app.services.board_templates import TEMPLATES
from app.services.items import ItemDetail

Role = Literal["viewer", "member", "reviewer", "manager"]
PullRole = Literal["member", "reviewer"]
Kind = Literal["backlog", "work", "done"]
Gate = Literal["entry", "exit"]
ClassOfService = Literal["standard", "expedite", "fixed_date", "intangible"]
Template = Literal[
    "document-review",
    "audit-preparation",
    "risk-treatment",
    "change-implementation",
    "management-decisions",
]
assert set(Template.__args__) == set(TEMPLATES)  # type: ignore[attr-defined]

WipLimit = Annotated[int, Field(ge=1, le=10_000)]
# The title rule of API.md (1..200 characters after trimming), checked here so the 422 names
# the field; the service trims and checks again for callers that bypass the API.
# Text follows app.flow.text (no control characters; names and titles must show something).
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Text(visible=True)
]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120), Text(visible=True)
]
# A state, criterion or block reason name (the service trims and checks it is not empty).
ShortName = Annotated[str, Field(max_length=80), Text(visible=True)]
Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    Text(multiline=True, visible=True),
]
Note = Annotated[MultiLine, Field(max_length=5000)]
Description = Annotated[MultiLine, Field(max_length=20_000)]
# Versions count up from 1 in a 32-bit column.
Version = Annotated[int, Field(ge=0, le=DB_INT_MAX)]
# JSON has no date type: accept the ISO string while every other field stays strict.
DueDate = Annotated[date | None, Field(strict=False)]


class Input(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class PatchInput(Input):
    """A partial update: absent fields stay unchanged; `NOT_NULL` fields may not be sent as null."""

    NOT_NULL: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required_values(self) -> PatchInput:
        for name in self.model_fields_set & self.NOT_NULL:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep it unchanged")
        return self

    def changes(self, *, exclude: frozenset[str] = frozenset()) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.model_fields_set - exclude}


# --- users ---------------------------------------------------------------------------------


class UserIn(Input):
    email: Annotated[str, Field(min_length=3, max_length=254), Text()]
    name: Name
    # The minimum is the service's rule too (MIN_PASSWORD_LENGTH); the maximum bounds hashing.
    password: Annotated[str, Field(min_length=8, max_length=1000)]
    is_admin: bool = False


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    is_admin: bool
    is_active: bool
    deactivated_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            is_admin=user.is_admin,
            is_active=user.is_active,
            deactivated_at=user.deactivated_at,
        )


class UserPatch(PatchInput):
    """Site admins: rename, promote or demote, deactivate (`is_active: false`) or reactivate."""

    NOT_NULL = frozenset({"name", "is_admin", "is_active"})

    name: Name | None = None
    is_admin: bool | None = None
    is_active: bool | None = None


class PasswordChangeIn(Input):
    current_password: Annotated[str, Field(max_length=1000)]
    # At least MIN_PASSWORD_LENGTH (8) characters; the maximum bounds hashing work.
    new_password: Annotated[str, Field(min_length=8, max_length=1000)]


class TokenIn(Input):
    name: Name
    scope: Literal["read", "write"]
    # An ISO 8601 time in the future (without a zone it is UTC); null: never expires.
    expires_at: Annotated[datetime | None, Field(strict=False)] = None


class TokenOut(BaseModel):
    """A token as listed: `name` is null for tokens from POST /auth/token."""

    id: int
    name: str | None
    scope: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class NewTokenOut(TokenOut):
    """The answer to POST /tokens: the only time `token` is shown."""

    token: str


# --- boards --------------------------------------------------------------------------------


class StateSpecIn(Input):
    name: ShortName
    kind: Kind
    wip_limit: WipLimit | None = None
    pull_role: PullRole = "member"


class BoardIn(Input):
    name: Name
    key: Annotated[str | None, Field(pattern=r"^[A-Z]{2,10}$")] = None
    template: Template | None = None
    # An empty list is a bad layout, not "use the default": only leaving `states` out does that.
    states: Annotated[list[StateSpecIn] | None, Field(min_length=1, max_length=50)] = None
    personal_wip_limit: WipLimit | None = None
    expedite_exceeds_limits: bool = True


class BoardPatch(PatchInput):
    NOT_NULL = frozenset({"name", "expedite_exceeds_limits"})

    name: Name | None = None
    personal_wip_limit: WipLimit | None = None
    expedite_exceeds_limits: bool | None = None


class CriterionBrief(BaseModel):
    id: int
    text: str
    gate: str
    position: int


class StateOut(BaseModel):
    id: int
    board_id: int
    name: str
    kind: str
    position: int
    wip_limit: int | None
    pull_role: str
    wip: int
    criteria: list[CriterionBrief]

    @classmethod
    def of(cls, state: State, *, wip: int, criteria: list[Criterion]) -> StateOut:
        return cls(
            id=state.id,
            board_id=state.board_id,
            name=state.name,
            kind=state.kind,
            position=state.position,
            wip_limit=state.wip_limit,
            pull_role=state.pull_role,
            wip=0 if state.kind == "done" else wip,
            criteria=[
                CriterionBrief(id=c.id, text=c.text, gate=c.gate, position=c.position)
                for c in sorted(criteria, key=lambda c: (c.gate != "entry", c.position, c.id))
            ],
        )


class BlockReasonOut(BaseModel):
    id: int
    name: str

    @classmethod
    def of(cls, reason: BlockReason) -> BlockReasonOut:
        return cls(id=reason.id, name=reason.name)


class BoardOut(BaseModel):
    id: int
    name: str
    key: str
    personal_wip_limit: int | None
    expedite_exceeds_limits: bool
    my_role: str
    states: list[StateOut]
    block_reasons: list[BlockReasonOut]


def states_out(session: Session, board_id: int) -> list[StateOut]:
    """Every state of a board with its WIP now and its criteria, in flow order."""
    wip = queries.wip_by_state(session, board_id)
    by_state: dict[int, list[Criterion]] = {}
    for criterion in queries.criteria_of_board(session, board_id):
        by_state.setdefault(criterion.state_id, []).append(criterion)
    return [
        StateOut.of(state, wip=wip.get(state.id, 0), criteria=by_state.get(state.id, []))
        for state in queries.states_of(session, board_id)
    ]


def state_out(session: Session, state: State) -> StateOut:
    found = [s for s in states_out(session, state.board_id) if s.id == state.id]
    return found[0]


def board_out(session: Session, board: Board, role: str) -> BoardOut:
    return BoardOut(
        id=board.id,
        name=board.name,
        key=board.key,
        personal_wip_limit=board.personal_wip_limit,
        expedite_exceeds_limits=board.expedite_exceeds_limits,
        my_role=role,
        states=states_out(session, board.id),
        block_reasons=[BlockReasonOut.of(r) for r in queries.block_reasons(session, board.id)],
    )


class MemberIn(Input):
    role: Role


class MemberOut(BaseModel):
    user_id: int
    name: str
    email: str
    role: str


class MemberByEmailIn(Input):
    email: Annotated[str, Field(min_length=3, max_length=254), Text()]
    role: Role = "member"


class MemberByEmailOut(BaseModel):
    """The same answer whether or not an account uses the email (nothing to enumerate)."""

    email: str
    role: str
    status: Literal["added-if-account-exists"] = "added-if-account-exists"


class StateIn(Input):
    name: ShortName
    wip_limit: WipLimit | None = None
    pull_role: PullRole = "member"
    position: Annotated[int, Field(ge=0, le=1000)] | None = None


class StatePatch(PatchInput):
    NOT_NULL = frozenset({"name", "pull_role", "position"})

    name: ShortName | None = None
    wip_limit: WipLimit | None = None
    pull_role: PullRole | None = None
    position: Annotated[int, Field(ge=0, le=1000)] | None = None


class CriterionIn(Input):
    text: Annotated[str, Field(max_length=300), Text(visible=True)]
    gate: Gate


class CriterionOut(BaseModel):
    id: int
    state_id: int
    text: str
    gate: str
    position: int

    @classmethod
    def of(cls, criterion: Criterion) -> CriterionOut:
        return cls(
            id=criterion.id,
            state_id=criterion.state_id,
            text=criterion.text,
            gate=criterion.gate,
            position=criterion.position,
        )


class BlockReasonIn(Input):
    name: ShortName


# --- items ---------------------------------------------------------------------------------


class ItemIn(Input):
    title: Title
    description: Description = ""
    class_of_service: ClassOfService = "standard"
    due_date: DueDate = None


class ItemPatch(PatchInput):
    NOT_NULL = frozenset({"title", "class_of_service"})

    version: Version
    title: Title | None = None
    description: Description | None = None
    class_of_service: ClassOfService | None = None
    due_date: DueDate = None
    owner_id: Id | None = None
    # A manager's reason to hand a doing item to someone at the board's personal limit.
    override_reason: Reason | None = None


class PullIn(Input):
    override_reason: Reason | None = None
    # Optional guard for drag and drop: the state the client expects the item to enter.
    to_state_id: Id | None = None


class SendBackIn(Input):
    to_state_id: Id
    reason: Reason
    override_reason: Reason | None = None


class DiscardIn(Input):
    reason: Reason


class BlockIn(Input):
    reason_id: Id
    note: Note = ""
    waiting_on: Annotated[str, Field(max_length=200), Text()] = ""


class ResolveIn(Input):
    note: Note = ""


class CriterionSetIn(Input):
    met: bool


class CommentIn(Input):
    body: Annotated[MultiLine, Field(max_length=20_000)]


class BlockOut(BaseModel):
    id: int
    item_id: int
    reason_id: int
    reason: str
    note: str
    waiting_on: str
    opened_at: datetime
    opened_by: int | None
    resolved_at: datetime | None
    resolved_by: int | None
    resolution: str


def block_out(session: Session, block: Block, reason_name: str | None = None) -> BlockOut:
    # The services attach the reason they loaded; a block read on its own looks the name up.
    reason = block.__dict__.get("reason")
    if reason_name is not None:
        pass
    elif reason is not None:
        reason_name = reason.name
    else:
        reason_name = queries.reason_names(session, {block.reason_id}).get(block.reason_id, "")
    return BlockOut(
        id=block.id,
        item_id=block.item_id,
        reason_id=block.reason_id,
        reason=reason_name,
        note=block.note or "",
        waiting_on=block.waiting_on or "",
        opened_at=block.opened_at,
        opened_by=block.opened_by_id,
        resolved_at=block.resolved_at,
        resolved_by=block.resolved_by_id,
        resolution=block.resolution or "",
    )


class CriterionStatusOut(BaseModel):
    criterion_id: int
    text: str
    gate: str
    state_id: int
    met: bool
    met_by: int | None
    met_at: datetime | None


class ItemOut(BaseModel):
    id: int
    key: str
    board_id: int
    title: str
    description: str
    class_of_service: str
    due_date: date | None
    state_id: int
    stage: str | None
    owner_id: int | None
    created_at: datetime
    committed_at: datetime | None
    done_at: datetime | None
    discarded_at: datetime | None
    blocked: bool
    block: BlockOut | None
    criteria: list[CriterionStatusOut]
    waiting_for: str
    version: int


def json_answer(model: BaseModel) -> Response:
    """`model` as a 200 JSON answer, serialised in the route's own thread. Returned from a
    sync route, the model itself would be checked again by FastAPI in a threadpool hop of its
    own (a wait for a free thread and the loop, per request); the route's response_model
    still documents the answer."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")


def item_out(session: Session, detail: ItemDetail) -> ItemOut:
    item = detail.item
    block = detail.open_block
    return ItemOut(
        id=item.id,
        key=item.key,
        board_id=item.board_id,
        title=item.title,
        description=item.description or "",
        class_of_service=item.class_of_service,
        due_date=item.due_date,
        state_id=item.state_id,
        stage=item.stage,
        owner_id=item.owner_id,
        created_at=item.created_at,
        committed_at=item.committed_at,
        done_at=item.done_at,
        discarded_at=item.discarded_at,
        blocked=block is not None,
        block=block_out(session, block, detail.block_reason) if isinstance(block, Block) else None,
        criteria=[
            CriterionStatusOut(
                criterion_id=c.criterion_id,
                text=c.text,
                gate=c.gate,
                state_id=c.state_id,
                met=c.met,
                met_by=c.met_by,
                met_at=c.met_at,
            )
            for c in detail.criteria
        ],
        waiting_for=detail.waiting_for,
        version=item.version,
    )


class CommentOut(BaseModel):
    id: int
    item_id: int
    author_id: int | None
    author_name: str | None
    body: str
    created_at: datetime

    @classmethod
    def of(cls, comment: Comment, author_name: str | None) -> CommentOut:
        return cls(
            id=comment.id,
            item_id=comment.item_id,
            author_id=comment.author_id,
            author_name=author_name,
            body=comment.body,
            created_at=comment.created_at,
        )


# --- events --------------------------------------------------------------------------------


class EventOut(BaseModel):
    id: int
    board_id: int
    item_id: int | None
    type: str
    actor_id: int | None
    at: datetime
    from_state_id: int | None
    to_state_id: int | None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            id=event.id,
            board_id=event.board_id,
            item_id=event.item_id,
            type=event.type,
            actor_id=event.actor_id,
            at=event.at,
            from_state_id=event.from_state_id,
            to_state_id=event.to_state_id,
            data=event.data or {},
        )


# --- import with history -------------------------------------------------------------------
# The documented shape of POST /boards/{board_id}/import. The body is checked by
# app.services.importing, which lists every problem as {item, field, message} in one 422 (a
# shape check here would stop at the first wrong type); tests keep the two in step.


class ImportMoveIn(BaseModel):
    at: datetime
    state: Annotated[str, Field(description="A state name on this board.")]
    stage: Literal["doing", "ready"] | None = None


class ImportBlockIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    reason: Annotated[str, Field(description="A block reason name on this board.")]
    from_: Annotated[datetime, Field(alias="from")]
    to: datetime | None = None
    note: Annotated[str, Field(max_length=5000), Text(multiline=True)] = ""
    waiting_on: Annotated[str, Field(max_length=200), Text()] = ""


class ImportItemIn(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=200), Text(visible=True)]
    class_of_service: ClassOfService = "standard"
    created_at: datetime
    history: list[ImportMoveIn] = []
    blocks: list[ImportBlockIn] = []


class ImportIn(BaseModel):
    items: list[ImportItemIn]


class ImportOut(BaseModel):
    imported: int


# --- analytics answers ---------------------------------------------------------------------
# Documentation only: the analytics routes send the services' JSON-ready dicts as they are
# (cheap for thousands of rows); schemathesis checks the answers against these.

Percentiles = Annotated[
    dict[str, float | None], Field(description='"50", "85" and "95": nearest-rank values.')
]


class CycleTimeOut(BaseModel):
    item_id: int
    key: str
    done_at: datetime
    cycle_seconds: float
    lead_seconds: float


class CycleTimesOut(BaseModel):
    items: list[CycleTimeOut]
    percentiles: Percentiles


class ThroughputOut(BaseModel):
    start: date
    count: int


class CfdStateOut(BaseModel):
    state_id: int
    name: str
    counts: list[int]


class CfdOut(BaseModel):
    days: list[date]
    states: list[CfdStateOut]


class AgingItemOut(BaseModel):
    item_id: int
    key: str
    state_id: int
    age_seconds: float


class AgingOut(BaseModel):
    items: list[AgingItemOut]
    percentiles: Percentiles


class WaitingReasonOut(BaseModel):
    reason: str
    count: int
    blocked_seconds: float


class SnapshotItemOut(BaseModel):
    item_id: int
    key: str
    state_id: int
    stage: str | None
    blocked: bool


class SnapshotOut(BaseModel):
    at: datetime
    items: list[SnapshotItemOut]


class StateFlowOut(BaseModel):
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


class FlowOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: Annotated[datetime, Field(alias="from")]
    to: datetime
    states: list[StateFlowOut]
    bottleneck_state_id: int | None
    flow_efficiency: float | None
    throughput_per_week: float
    avg_wip: float
    avg_cycle_time_seconds: float | None
    summary: str
    class_of_service: str | None


class ForecastOut(BaseModel):
    percentiles: Annotated[
        dict[str, date | int | None],
        Field(description='"50", "85", "95": dates for `items`, counts for `until`.'),
    ]
    history_days: int
    runs: int
    items: int | None = None
    until: date | None = None
    days: dict[str, int | None] | None = None
    start_date: date | None = None
