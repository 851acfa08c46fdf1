"""Item use cases: create, edit, pull, mark ready, take back, send back, discard, criteria.

Each loads what it needs through app.db.queries, asks app.flow.rules, writes the change and
its events, and flushes. The caller (an API or HTML route) commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.db import queries
from app.db.board_queries import CardItem
from app.db.models import Block, Board, Criterion, CriterionCheck, Item, State, User
from app.db.queries import ItemRow
from app.flow import rules
from app.flow.errors import InvalidInput, InvalidMove, NotFound
from app.flow.rules import CriterionFacts, ItemFacts, Override, StateFacts
from app.flow.text import checked_text
from app.services import audit, events
from app.services.access import visible_board, visible_item

TITLE_MAX = 200


@dataclass
class CriterionStatus:
    criterion_id: int
    text: str
    gate: str
    state_id: int
    met: bool
    met_by: int | None
    met_at: datetime | None


@dataclass
class ItemDetail:
    """An item with what every reader needs: its open block, criteria and who acts next."""

    item: Item
    board: Board
    role: str
    open_block: Block | None
    criteria: list[CriterionStatus] = field(default_factory=list)
    waiting_for: str = ""
    owner_name: str | None = None
    block_reason: str | None = None


def state_facts(state: State) -> StateFacts:
    return StateFacts(
        id=state.id,
        name=state.name,
        kind=state.kind,
        position=state.position,
        wip_limit=state.wip_limit,
        pull_role=state.pull_role,
    )


def item_facts(item: CardItem, open_block_id: int | None) -> ItemFacts:
    return ItemFacts(
        id=item.id,
        key=item.key,
        state_id=item.state_id,
        stage=item.stage,
        owner_id=item.owner_id,
        class_of_service=item.class_of_service,
        open_block_id=open_block_id,
        done=item.done_at is not None,
        discarded=item.discarded_at is not None,
    )


def _criterion_facts(criterion: Criterion) -> CriterionFacts:
    return CriterionFacts(
        id=criterion.id, text=criterion.text, gate=criterion.gate, state_id=criterion.state_id
    )


class _Context:
    """An item loaded with its board's states and criteria (and its checks) for one action."""

    def __init__(self, session: Session, row: ItemRow, states: list[State] | None = None) -> None:
        self.session = session
        self.row = row
        self.item = row.item
        self.board = row.board
        self.role: str = row.role or "viewer"
        self.states = states if states is not None else queries.states_of(session, row.board.id)
        self.state_by_id = {state.id: state for state in self.states}
        self.criteria = queries.criteria_with_checks(session, row.board.id, row.item.id)
        self.facts_states = [state_facts(s) for s in self.states]

    @property
    def facts(self) -> ItemFacts:
        block = self.row.open_block
        return item_facts(self.item, block.id if block is not None else None)

    @property
    def state(self) -> State:
        return self.state_by_id[self.item.state_id]

    def following(self) -> State | None:
        after = rules.state_after(self.facts_states, self.item.state_id)
        return self.state_by_id[after.id] if after else None

    def unmet(self, state_id: int, gate: str) -> list[CriterionFacts]:
        return [
            _criterion_facts(c)
            for c, check in self.criteria
            if c.state_id == state_id and c.gate == gate and check is None
        ]


def _build_detail(
    *,
    item: Item,
    board: Board,
    role: str,
    block: Block | None,
    block_reason: str | None,
    states: list[State],
    criteria: list[tuple[Criterion, CriterionCheck | None]],
    owner_name: str | None,
    wip_of: Callable[[int], int],
) -> ItemDetail:
    """The reader's view of one item; `wip_of(state_id)` is asked only when it waits in Ready."""
    facts_states = [state_facts(s) for s in states]
    state_by_id = {s.id: s for s in states}
    closed = item.done_at is not None or item.discarded_at is not None
    after = None if closed else rules.state_after(facts_states, item.state_id)
    following = state_by_id[after.id] if after else None
    statuses = [
        CriterionStatus(
            criterion_id=criterion.id,
            text=criterion.text,
            gate=criterion.gate,
            state_id=criterion.state_id,
            met=check is not None,
            met_by=check.met_by_id if check else None,
            met_at=check.met_at if check else None,
        )
        for criterion, check in criteria
        if not closed
        and (
            (criterion.state_id == item.state_id and criterion.gate == "exit")
            or (
                following is not None
                and criterion.state_id == following.id
                and criterion.gate == "entry"
            )
        )
    ]
    statuses.sort(key=lambda s: (s.gate != "exit", s.state_id))
    following_wip = None
    if following is not None and item.stage == "ready" and block is None:
        following_wip = wip_of(following.id)
    waiting = rules.waiting_for(
        item=item_facts(item, block.id if block is not None else None),
        state=state_facts(state_by_id[item.state_id]),
        following=state_facts(following) if following else None,
        following_wip=following_wip,
        block_waiting_on=block.waiting_on if block is not None else None,
        block_reason=block_reason,
        owner_name=owner_name,
    )
    return ItemDetail(
        item=item,
        board=board,
        role=role,
        open_block=block,
        criteria=statuses,
        waiting_for=waiting,
        owner_name=owner_name,
        block_reason=block_reason,
    )


def _detail(ctx: _Context, *, owner_name: str | None = None) -> ItemDetail:
    block = ctx.row.open_block
    return _build_detail(
        item=ctx.item,
        board=ctx.board,
        role=ctx.role,
        block=block,
        block_reason=block.reason.name if block is not None else None,
        states=ctx.states,
        criteria=ctx.criteria,
        owner_name=owner_name if owner_name is not None else ctx.row.owner_name,
        wip_of=lambda state_id: queries.state_wip(ctx.session, state_id),
    )


def list_items(
    *,
    session: Session,
    board_id: int,
    actor: User,
    state_id: int | None = None,
    blocked: bool | None = None,
    owner_id: int | None = None,
    q: str | None = None,
    include_closed: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[ItemDetail]:
    """A page of items as get_item would show each, in a fixed number of statements."""
    board, role = visible_board(session, board_id=board_id, actor=actor)
    rows = queries.items_of_board(
        session,
        board.id,
        state_id=state_id,
        blocked=blocked,
        owner_id=owner_id,
        q=q,
        include_closed=include_closed,
        limit=limit,
        offset=offset,
    )
    if not rows:
        return []
    states = queries.states_of(session, board.id)
    criteria = queries.criteria_of_board(session, board.id)
    checks = queries.check_rows_for_items(session, [item.id for item, _ in rows])
    wip = queries.wip_by_state(session, board.id)
    names = queries.user_names(session, {i.owner_id for i, _ in rows if i.owner_id is not None})
    reasons = queries.reason_names(session, {b.reason_id for _, b in rows if b is not None})
    return [
        _build_detail(
            item=item,
            board=board,
            role=role,
            block=block,
            block_reason=reasons.get(block.reason_id) if block is not None else None,
            states=states,
            criteria=[(c, checks.get(item.id, {}).get(c.id)) for c in criteria],
            owner_name=names.get(item.owner_id) if item.owner_id is not None else None,
            wip_of=lambda sid: wip.get(sid, 0),
        )
        for item, block in rows
    ]


def _load(session: Session, item_id: int, actor: User, *, lock: bool) -> _Context:
    return _Context(session, visible_item(session, item_id=item_id, actor=actor, lock=lock))


def get_item(*, session: Session, item_id: int, actor: User) -> ItemDetail:
    """Raises NotFound."""
    return _detail(_load(session, item_id, actor, lock=False))


def _clean_title(title: str) -> str:
    cleaned = " ".join(checked_text(title, "title", visible=True).split())
    if not 1 <= len(cleaned) <= TITLE_MAX:
        raise InvalidInput(f"A title needs 1 to {TITLE_MAX} characters.")
    return cleaned


def create_item(
    *,
    session: Session,
    board_id: int,
    actor: User,
    title: str,
    description: str = "",
    class_of_service: str = "standard",
    due_date: date | None = None,
    now: datetime | None = None,
) -> ItemDetail:
    """A new option in the backlog. Raises NotFound, InsufficientRole, WipLimitReached."""
    now = now or queries.now()
    board, role = visible_board(
        session, board_id=board_id, actor=actor, required="member", doing="create items"
    )
    title = _clean_title(title)
    checked_text(description or "", "description", multiline=True)
    states = queries.states_of(session, board.id)
    backlog = states[0]
    if backlog.wip_limit is not None:
        queries.lock_state(session, backlog.id)
        wip = queries.state_wip(session, backlog.id)
        if wip >= backlog.wip_limit:
            raise rules.WipLimitReached(
                f"The backlog is full ({wip}/{backlog.wip_limit}): commit or discard an option "
                "before adding new demand.",
                state_id=backlog.id,
                wip=wip,
                limit=backlog.wip_limit,
            )
    number = session.execute(
        update(Board)
        .where(Board.id == board.id)
        .values(last_item_number=Board.last_item_number + 1)
        .returning(Board.last_item_number)
    ).scalar_one()
    board.last_item_number = number  # keep the loaded object in step with the row
    item = Item(
        board_id=board.id,
        number=number,
        key=f"{board.key}-{number}",
        title=title,
        description=description or "",
        class_of_service=class_of_service,
        due_date=due_date,
        state_id=backlog.id,
        stage=None,
        owner_id=None,
        created_by_id=actor.id,
        created_at=now,
        state_entered_at=now,
    )
    session.add(item)
    session.flush()
    events.record(
        session,
        type="created",
        board_id=board.id,
        actor_id=actor.id,
        at=now,
        item=item,
        to_state_id=backlog.id,
        title=title,
    )
    session.flush()
    row = ItemRow(item=item, board=board, role=role, open_block=None)
    return _detail(_Context(session, row, states))


def _record_override(
    ctx: _Context, override: Override | None, target: State, actor: User, now: datetime, wip: int
) -> None:
    if override is None:
        return
    events.record(
        ctx.session,
        type="wip_override",
        board_id=ctx.board.id,
        actor_id=actor.id,
        at=now,
        item=ctx.item,
        to_state_id=target.id,
        kind=override.kind,
        reason=override.reason,
        wip=wip,
        limit=target.wip_limit,
    )
    _audit_override(ctx, actor, now, override, state_id=target.id, wip=wip, limit=target.wip_limit)


def _audit_override(
    ctx: _Context,
    actor: User,
    now: datetime,
    override: Override,
    *,
    state_id: int,
    wip: int,
    limit: int | None,
    personal: bool = False,
) -> None:
    """The admins' audit trail keeps every WIP override beside the board's event log."""
    data = {
        "item_id": ctx.item.id,
        "item_key": ctx.item.key,
        "state_id": state_id,
        "kind": override.kind,
        "reason": override.reason,
        "wip": wip,
        "limit": limit,
        "personal": personal,
    }
    audit.record(
        ctx.session,
        type="wip_override",
        actor_id=actor.id,
        board_id=ctx.board.id,
        data=data,
        now=now,
    )


def pull_item(
    *,
    session: Session,
    item_id: int,
    actor: User,
    override_reason: str | None = None,
    to_state_id: int | None = None,
    now: datetime | None = None,
) -> ItemDetail:
    """Rule 1. Raises NotFound and the FlowErrors of rules.check_pull."""
    now = now or queries.now()
    checked_text(override_reason or "", "override reason", multiline=True)
    ctx = _load(session, item_id, actor, lock=True)
    after = ctx.following()
    target_wip = actor_doing = 0
    if after is not None and ctx.item.done_at is None and ctx.item.discarded_at is None:
        # Lock the receiving state, then count: racing pulls for its last slot serialise here.
        queries.lock_state(session, after.id)
        if ctx.board.personal_wip_limit is not None and after.kind == "work":
            # The personal limit spans every state: two pulls by one person into different
            # states lock different state rows, so serialise on the person as well.
            queries.lock_user(session, actor.id)
        target_wip, actor_doing = queries.wip_counts(
            session, board_id=ctx.board.id, state_id=after.id, owner_id=actor.id
        )
    target_facts, override = rules.check_pull(
        item=ctx.facts,
        states=ctx.facts_states,
        actor_role=ctx.role,
        target_wip=target_wip,
        actor_doing=actor_doing,
        personal_limit=ctx.board.personal_wip_limit,
        unmet_entry=ctx.unmet(after.id, "entry") if after else [],
        override_reason=override_reason,
        expedite_exceeds_limits=ctx.board.expedite_exceeds_limits,
        requested_state_id=to_state_id,
    )
    target = ctx.state_by_id[target_facts.id]
    source = ctx.state
    item = ctx.item
    item.state_id = target.id
    item.stage = "doing" if target.kind == "work" else None
    item.owner_id = actor.id
    item.state_entered_at = now
    if source.kind == "backlog":
        item.committed_at = now
    if target.kind == "done":
        item.done_at = now
    events.record(
        session,
        type="pulled",
        board_id=ctx.board.id,
        actor_id=actor.id,
        at=now,
        item=item,
        from_state_id=source.id,
        to_state_id=target.id,
        stage=item.stage,
        owner_id=actor.id,
        override=override.kind if override else None,
    )
    _record_override(ctx, override, target, actor, now, target_wip)
    session.flush()
    return _detail(ctx, owner_name=actor.name)


def mark_ready(
    *, session: Session, item_id: int, actor: User, now: datetime | None = None
) -> ItemDetail:
    """Rule 2. Delivers at once when the next state is done. Raises rules.check_mark_ready's."""
    now = now or queries.now()
    ctx = _load(session, item_id, actor, lock=True)
    state = ctx.state
    rules.check_mark_ready(
        item=ctx.facts,
        state=state_facts(state),
        actor_id=actor.id,
        actor_role=ctx.role,
        unmet_exit=ctx.unmet(state.id, "exit"),
    )
    item = ctx.item
    item.stage = "ready"
    events.record(
        session,
        type="marked_ready",
        board_id=ctx.board.id,
        actor_id=actor.id,
        at=now,
        item=item,
        from_state_id=state.id,
        to_state_id=state.id,
        stage="ready",
    )
    following = ctx.following()
    if following is not None and following.kind == "done":
        item.state_id = following.id
        item.stage = None
        item.done_at = now
        item.state_entered_at = now
        events.record(
            session,
            type="completed",
            board_id=ctx.board.id,
            actor_id=actor.id,
            at=now,
            item=item,
            from_state_id=state.id,
            to_state_id=following.id,
            owner_id=item.owner_id,
        )
    session.flush()
    return _detail(ctx)


def unready(
    *, session: Session, item_id: int, actor: User, now: datetime | None = None
) -> ItemDetail:
    """Rule 2's take-back while nobody has pulled. Raises rules.check_unready's."""
    now = now or queries.now()
    ctx = _load(session, item_id, actor, lock=True)
    owner_doing = 0
    limit = ctx.board.personal_wip_limit
    if limit is not None and ctx.item.owner_id is not None and ctx.item.stage == "ready":
        queries.lock_user(session, ctx.item.owner_id)  # as a pull by the owner would
        _, owner_doing = queries.wip_counts(
            session, board_id=ctx.board.id, state_id=ctx.item.state_id, owner_id=ctx.item.owner_id
        )
    rules.check_unready(
        item=ctx.facts,
        state=state_facts(ctx.state),
        actor_id=actor.id,
        actor_role=ctx.role,
        owner_doing=owner_doing,
        personal_limit=limit,
    )
    ctx.item.stage = "doing"
    events.record(
        session,
        type="unready",
        board_id=ctx.board.id,
        actor_id=actor.id,
        at=now,
        item=ctx.item,
        from_state_id=ctx.item.state_id,
        to_state_id=ctx.item.state_id,
        stage="doing",
    )
    session.flush()
    return _detail(ctx)


def send_back(
    *,
    session: Session,
    item_id: int,
    actor: User,
    to_state_id: int,
    reason: str,
    override_reason: str | None = None,
    now: datetime | None = None,
) -> ItemDetail:
    """Rule 3. Raises NotFound and rules.check_send_back's."""
    now = now or queries.now()
    checked_text(reason, "reason", multiline=True)
    checked_text(override_reason or "", "override reason", multiline=True)
    ctx = _load(session, item_id, actor, lock=True)
    if to_state_id not in ctx.state_by_id:
        raise InvalidMove("That state is not on this item's board.")
    target_wip = 0
    if ctx.state_by_id[to_state_id].wip_limit is not None:
        queries.lock_state(session, to_state_id)
        target_wip = queries.state_wip(session, to_state_id)
    target_facts, override = rules.check_send_back(
        item=ctx.facts,
        states=ctx.facts_states,
        to_state_id=to_state_id,
        reason=reason,
        actor_role=ctx.role,
        target_wip=target_wip,
        override_reason=override_reason,
        expedite_exceeds_limits=ctx.board.expedite_exceeds_limits,
    )
    target = ctx.state_by_id[target_facts.id]
    source = ctx.state
    owner_id = queries.last_owner_in_state(session, ctx.item.id, target.id)
    item = ctx.item
    item.state_id = target.id
    item.stage = "doing"
    item.owner_id = owner_id
    item.state_entered_at = now
    events.record(
        session,
        type="sent_back",
        board_id=ctx.board.id,
        actor_id=actor.id,
        at=now,
        item=item,
        from_state_id=source.id,
        to_state_id=target.id,
        stage="doing",
        reason=reason.strip(),
        owner_id=owner_id,
    )
    _record_override(ctx, override, target, actor, now, target_wip)
    session.flush()
    owner_name = queries.user_names(session, {owner_id}).get(owner_id) if owner_id else None
    return _detail(ctx, owner_name=owner_name or "")


def discard_item(
    *, session: Session, item_id: int, actor: User, reason: str, now: datetime | None = None
) -> ItemDetail:
    """Rule 7. Raises rules.check_discard's."""
    now = now or queries.now()
    checked_text(reason, "reason", multiline=True)
    ctx = _load(session, item_id, actor, lock=True)
    rules.check_discard(
        item=ctx.facts, state=state_facts(ctx.state), actor_role=ctx.role, reason=reason
    )
    item = ctx.item
    item.discarded_at = now
    item.discard_reason = reason.strip()
    previous_stage = item.stage
    item.stage = None
    events.record(
        session,
        type="discarded",
        board_id=ctx.board.id,
        actor_id=actor.id,
        at=now,
        item=item,
        from_state_id=item.state_id,
        reason=reason.strip(),
        previous_stage=previous_stage,
    )
    if ctx.row.open_block is not None:
        # A discarded item waits on nothing any more; close its block so delays stay true.
        block = ctx.row.open_block
        block.resolved_at = now
        block.resolved_by_id = actor.id
        block.resolution = "Item discarded"
        ctx.row.open_block = None
    session.flush()
    return _detail(ctx)


EDITABLE = ("title", "description", "class_of_service", "due_date", "owner_id")


def edit_item(
    *,
    session: Session,
    item_id: int,
    actor: User,
    version: int,
    changes: dict[str, object],
    override_reason: str | None = None,
    now: datetime | None = None,
) -> ItemDetail:
    """Rule 6: fields change only from the current version. Raises VersionConflict, and
    rules.check_assignment's when a doing item's new owner is at the personal limit
    (`override_reason`: a manager's reason to go past it)."""
    now = now or queries.now()
    checked_text(override_reason or "", "override reason", multiline=True)
    ctx = _load(session, item_id, actor, lock=True)
    rules.require_role(ctx.role, "member", doing="edit items")
    rules.check_version(given=version, current=ctx.item.version)
    item = ctx.item
    changed: dict[str, list[object]] = {}
    override: Override | None = None
    owner_doing = 0
    for name in EDITABLE:
        if name not in changes:
            continue
        value = changes[name]
        if name == "title":
            value = _clean_title(str(value or ""))
        if name == "description":
            value = checked_text(str(value or ""), "description", multiline=True)
        if name == "owner_id" and value is not None:
            member = queries.membership(session, ctx.board.id, int(str(value)))
            if member is None or not rules.role_at_least(member.role, "member"):
                raise InvalidInput("The owner must be a member of this board.")
            person = session.get(User, member.user_id)
            if person is None or not person.is_active:
                raise InvalidInput(
                    "That account is deactivated; choose someone who can still sign in."
                )
            override, owner_doing = _check_assignment(ctx, member.user_id, actor, override_reason)
        if name == "class_of_service" and value is None:
            raise InvalidInput("class_of_service cannot be empty.")
        old = getattr(item, name)
        if old != value:
            setattr(item, name, value)
            changed[name] = [_jsonable(old), _jsonable(value)]
    if changed:
        owner_change = changed.pop("owner_id", None)
        if changed:
            events.record(
                session,
                type="edited",
                board_id=ctx.board.id,
                actor_id=actor.id,
                at=now,
                item=item,
                changes=changed,
            )
        if owner_change is not None:
            events.record(
                session,
                type="assigned",
                board_id=ctx.board.id,
                actor_id=actor.id,
                at=now,
                item=item,
                owner_id=owner_change[1],
                previous_owner_id=owner_change[0],
            )
        if override is not None:
            events.record(
                session,
                type="wip_override",
                board_id=ctx.board.id,
                actor_id=actor.id,
                at=now,
                item=item,
                to_state_id=item.state_id,
                kind=override.kind,
                reason=override.reason,
                wip=owner_doing,
                limit=ctx.board.personal_wip_limit,
                personal=True,
                owner_id=item.owner_id,
            )
            _audit_override(
                ctx,
                actor,
                now,
                override,
                state_id=item.state_id,
                wip=owner_doing,
                limit=ctx.board.personal_wip_limit,
                personal=True,
            )
        session.flush()
    owner_name = None
    if "owner_id" in changes:
        owner_name = (
            queries.user_names(session, {item.owner_id}).get(item.owner_id) if item.owner_id else ""
        )
    return _detail(ctx, owner_name=owner_name)


def _check_assignment(
    ctx: _Context, owner_id: int, actor: User, override_reason: str | None
) -> tuple[Override | None, int]:
    """The personal limit for a doing item's new owner: (override used, their doing count)."""
    item = ctx.item
    limit = ctx.board.personal_wip_limit
    if limit is None or item.stage != "doing" or owner_id == item.owner_id:
        return None, 0
    # Serialise on the new owner as their pulls do, so racing assignments (and pulls) of
    # different items to one person count each other's writes.
    queries.lock_user(ctx.session, owner_id)
    _, owner_doing = queries.wip_counts(
        ctx.session, board_id=ctx.board.id, state_id=item.state_id, owner_id=owner_id
    )
    name = ""
    if owner_doing >= limit:  # the name is only needed for the refusal's sentence
        name = queries.user_names(ctx.session, {owner_id}).get(owner_id, "That person")
    override = rules.check_assignment(
        item=ctx.facts,
        new_owner_id=owner_id,
        new_owner_name=name,
        actor_id=actor.id,
        actor_role=ctx.role,
        owner_doing=owner_doing,
        personal_limit=limit,
        override_reason=override_reason,
    )
    return override, owner_doing


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


def set_criterion(
    *,
    session: Session,
    item_id: int,
    criterion_id: int,
    met: bool,
    actor: User,
    now: datetime | None = None,
) -> ItemDetail:
    """Rule 5. Raises NotFound (criterion not on the board) and rules.check_criterion's."""
    now = now or queries.now()
    ctx = _load(session, item_id, actor, lock=True)
    found = [(c, check) for c, check in ctx.criteria if c.id == criterion_id]
    if not found:
        raise NotFound("No such criterion on this item's board.")
    criterion, check = found[0]
    rules.check_criterion(
        item=ctx.facts,
        criterion=_criterion_facts(criterion),
        states=ctx.facts_states,
        actor_role=ctx.role,
    )
    if met and check is None:
        new_check = CriterionCheck(
            item_id=ctx.item.id, criterion_id=criterion.id, met_by_id=actor.id, met_at=now
        )
        session.add(new_check)
        event_type = "criterion_met"
        ctx.criteria = [(c, new_check if c.id == criterion.id else k) for c, k in ctx.criteria]
    elif not met and check is not None:
        session.delete(check)
        event_type = "criterion_unmet"
        ctx.criteria = [(c, None if c.id == criterion.id else k) for c, k in ctx.criteria]
    else:
        return _detail(ctx)  # already as asked: nothing changes, nothing is recorded
    events.record(
        session,
        type=event_type,
        board_id=ctx.board.id,
        actor_id=actor.id,
        at=now,
        item=ctx.item,
        criterion_id=criterion.id,
        text=criterion.text,
        gate=criterion.gate,
        state_id=criterion.state_id,
    )
    session.flush()
    return _detail(ctx)
