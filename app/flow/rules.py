"""Flow rules 1-8 of PRODUCT.md as pure checks over small value objects.

Each check returns quietly when the action is allowed and raises a FlowError subclass (with
the slug from API.md and a sentence that says what would unblock it) when it is not. The
services load the facts, take the locks, call these, then write.

Each check has a twin `*_refusal()` that answers without raising: None when allowed, else a
Refusal, a function that builds the error. The checks call their twin and raise, so there is
one source of truth; pages asking "may this card show Pull?" for hundreds of cards use the
twin and never format a sentence nobody reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from app.flow.errors import (
    AlreadyBlocked,
    CriteriaUnmet,
    FlowError,
    InsufficientRole,
    InvalidInput,
    InvalidMove,
    ItemBlocked,
    NotReady,
    PersonalWipLimitReached,
    StateNotEmpty,
    VersionConflict,
    WipLimitReached,
)

Role = Literal["viewer", "member", "reviewer", "manager"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "member": 1, "reviewer": 2, "manager": 3}
ROLE_PLURAL = {
    "viewer": "viewers",
    "member": "members",
    "reviewer": "reviewers",
    "manager": "managers",
}


@dataclass(frozen=True)
class StateFacts:
    id: int
    name: str
    kind: str  # backlog | work | done
    position: int
    wip_limit: int | None
    pull_role: str = "member"


@dataclass(frozen=True)
class ItemFacts:
    id: int
    key: str
    state_id: int
    stage: str | None
    owner_id: int | None
    class_of_service: str
    open_block_id: int | None
    done: bool
    discarded: bool

    @property
    def closed(self) -> bool:
        return self.done or self.discarded


@dataclass(frozen=True)
class CriterionFacts:
    id: int
    text: str
    gate: str  # entry | exit
    state_id: int


@dataclass(frozen=True)
class Override:
    """Why a pull went past a full state: a manager's written reason, or expedite class."""

    kind: Literal["manager", "expedite"]
    reason: str


Refusal = Callable[[], FlowError]
"""Builds a refused action's error (and its sentence) only when someone reads it."""


def role_at_least(role: str | None, required: str) -> bool:
    return role is not None and ROLE_RANK.get(role, -1) >= ROLE_RANK[required]


def _role_error(role: str | None, required: str, doing: str) -> InsufficientRole:
    return InsufficientRole(
        f"Only {ROLE_PLURAL[required]} and above can {doing}; your role on this board is "
        f"{role or 'none'}. Ask a manager of the board for a higher role.",
        required_role=required,
    )


def role_refusal(role: str | None, required: str, *, doing: str) -> Refusal | None:
    if role_at_least(role, required):
        return None
    return lambda: _role_error(role, required, doing)


def require_role(role: str | None, required: str, *, doing: str) -> None:
    """Raises InsufficientRole unless `role` is at least `required`; `doing` ends the sentence."""
    if not role_at_least(role, required):
        raise _role_error(role, required, doing)


def ordered(states: Sequence[StateFacts]) -> list[StateFacts]:
    return sorted(states, key=lambda s: (s.position, s.id))


def state_after(states: Sequence[StateFacts], state_id: int) -> StateFacts | None:
    flow = ordered(states)
    for index, state in enumerate(flow):
        if state.id == state_id:
            return flow[index + 1] if index + 1 < len(flow) else None
    return None


def _find(states: Sequence[StateFacts], state_id: int) -> StateFacts:
    found = _state(states, state_id)
    if found is None:
        raise _not_on_board()
    return found


def _state(states: Sequence[StateFacts], state_id: int) -> StateFacts | None:
    for state in states:
        if state.id == state_id:
            return state
    return None


def _not_on_board() -> InvalidMove:
    return InvalidMove("That state is not on this item's board.")


def _raise_if(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise refusal()


def _unmet_error(unmet: Sequence[CriterionFacts], *, doing: str) -> CriteriaUnmet:
    listed = "; ".join(f"“{c.text}”" for c in unmet)
    return CriteriaUnmet(
        f"{doing}: check {listed} first.",
        unmet=[{"criterion_id": c.id, "text": c.text} for c in unmet],
    )


def capacity_refusal(
    *,
    item: ItemFacts,
    target: StateFacts,
    target_wip: int,
    actor_role: str | None,
    override_reason: str | None,
    expedite_exceeds_limits: bool,
    verb: str = "pulling",
) -> Override | Refusal | None:
    """WIP limit of the receiving state (rule 1 and 3): None (room), the override that goes
    past the limit, or the refusal."""
    if target.kind == "done" or target.wip_limit is None or target_wip < target.wip_limit:
        return None
    if item.class_of_service == "expedite" and expedite_exceeds_limits:
        return Override("expedite", "expedite items may exceed WIP limits on this board")
    limit = target.wip_limit
    reason = (override_reason or "").strip()
    if reason:
        if not role_at_least(actor_role, "manager"):
            return lambda: InsufficientRole(
                f"{target.name} is at its WIP limit ({target_wip}/{limit}) and only a "
                "manager can override a limit. Finish or hand off an item there first.",
                required_role="manager",
            )
        return Override("manager", reason)
    return lambda: WipLimitReached(
        f"{target.name} is at its WIP limit ({target_wip}/{limit}): finish or hand "
        f"off an item there before {verb} {item.key}.",
        state_id=target.id,
        wip=target_wip,
        limit=limit,
    )


def check_capacity(
    *,
    item: ItemFacts,
    target: StateFacts,
    target_wip: int,
    actor_role: str | None,
    override_reason: str | None,
    expedite_exceeds_limits: bool,
    verb: str = "pulling",
) -> Override | None:
    """WIP limit of the receiving state (rule 1 and 3). Returns the override used, if any."""
    found = capacity_refusal(
        item=item,
        target=target,
        target_wip=target_wip,
        actor_role=actor_role,
        override_reason=override_reason,
        expedite_exceeds_limits=expedite_exceeds_limits,
        verb=verb,
    )
    if found is None or isinstance(found, Override):
        return found
    raise found()


def _pull(
    *,
    item: ItemFacts,
    states: Sequence[StateFacts],
    actor_role: str | None,
    target_wip: int,
    actor_doing: int,
    personal_limit: int | None,
    unmet_entry: Sequence[CriterionFacts],
    override_reason: str | None,
    expedite_exceeds_limits: bool,
    requested_state_id: int | None,
) -> tuple[StateFacts, Override | None] | Refusal:
    """Rule 1: the target state and override, or the refusal."""
    if item.closed:
        return lambda: InvalidMove(
            f"{item.key} is closed ({'done' if item.done else 'discarded'})."
        )
    current = _state(states, item.state_id)
    if current is None:
        return _not_on_board
    target = state_after(states, item.state_id)
    if target is None:
        return lambda: InvalidMove(f"{item.key} is already in the last state.")
    if requested_state_id is not None and requested_state_id != target.id:
        requested = _state(states, requested_state_id)
        if requested is None:
            return _not_on_board
        return lambda: InvalidMove(
            f"{item.key} can only be pulled into {target.name}, the state right after "
            f"{current.name}; it cannot go to {requested.name} from here."
        )
    if not role_at_least(actor_role, target.pull_role):
        return lambda: _role_error(actor_role, target.pull_role, f"pull into {target.name}")
    if item.open_block_id is not None:
        block_id = item.open_block_id
        return lambda: ItemBlocked(
            f"{item.key} is blocked: resolve its block before pulling it.", block_id=block_id
        )
    if current.kind == "work" and item.stage != "ready":
        return lambda: NotReady(
            f"{item.key} is still being worked in {current.name}: its owner must mark it ready "
            "before it can be pulled."
        )
    if unmet_entry:
        return lambda: _unmet_error(
            unmet_entry, doing=f"{item.key} does not meet {target.name}'s entry criteria"
        )
    override = capacity_refusal(
        item=item,
        target=target,
        target_wip=target_wip,
        actor_role=actor_role,
        override_reason=override_reason,
        expedite_exceeds_limits=expedite_exceeds_limits,
    )
    if override is not None and not isinstance(override, Override):
        return override
    if target.kind == "work" and personal_limit is not None and actor_doing >= personal_limit:
        limit = personal_limit
        return lambda: PersonalWipLimitReached(
            f"You are already doing {actor_doing} items on this board (personal limit "
            f"{limit}): finish one before pulling {item.key}.",
            wip=actor_doing,
            limit=limit,
        )
    return target, override


def pull_refusal(
    *,
    item: ItemFacts,
    states: Sequence[StateFacts],
    actor_role: str | None,
    target_wip: int = 0,
    actor_doing: int = 0,
    personal_limit: int | None = None,
    unmet_entry: Sequence[CriterionFacts] = (),
    override_reason: str | None = None,
    expedite_exceeds_limits: bool = True,
    requested_state_id: int | None = None,
) -> Refusal | None:
    """check_pull() without raising: None when the pull is allowed."""
    found = _pull(
        item=item,
        states=states,
        actor_role=actor_role,
        target_wip=target_wip,
        actor_doing=actor_doing,
        personal_limit=personal_limit,
        unmet_entry=unmet_entry,
        override_reason=override_reason,
        expedite_exceeds_limits=expedite_exceeds_limits,
        requested_state_id=requested_state_id,
    )
    return None if isinstance(found, tuple) else found


def check_pull(
    *,
    item: ItemFacts,
    states: Sequence[StateFacts],
    actor_role: str | None,
    target_wip: int,
    actor_doing: int,
    personal_limit: int | None,
    unmet_entry: Sequence[CriterionFacts],
    override_reason: str | None = None,
    expedite_exceeds_limits: bool = True,
    requested_state_id: int | None = None,
) -> tuple[StateFacts, Override | None]:
    """Rule 1. Returns the state the item moves into and the override used, if any.

    Raises InvalidMove, InsufficientRole, ItemBlocked, NotReady, CriteriaUnmet,
    WipLimitReached or PersonalWipLimitReached.
    """
    found = _pull(
        item=item,
        states=states,
        actor_role=actor_role,
        target_wip=target_wip,
        actor_doing=actor_doing,
        personal_limit=personal_limit,
        unmet_entry=unmet_entry,
        override_reason=override_reason,
        expedite_exceeds_limits=expedite_exceeds_limits,
        requested_state_id=requested_state_id,
    )
    if isinstance(found, tuple):
        return found
    raise found()


def check_assignment(
    *,
    item: ItemFacts,
    new_owner_id: int | None,
    new_owner_name: str,
    actor_id: int,
    actor_role: str | None,
    owner_doing: int,
    personal_limit: int | None,
    override_reason: str | None = None,
) -> Override | None:
    """Handing a doing item to someone adds to their doing count exactly as their own pull
    would, so the board's personal limit applies (else assigning to yourself bypasses it).

    `owner_doing` is the new owner's doing items on the board, this one not included. A
    manager's written `override_reason` goes past the limit, as on a full state. Returns the
    override used, if any. Raises PersonalWipLimitReached or InsufficientRole.
    """
    if (
        new_owner_id is None
        or new_owner_id == item.owner_id
        or item.closed
        or item.stage != "doing"
        or personal_limit is None
        or owner_doing < personal_limit
    ):
        return None
    who = "You are" if new_owner_id == actor_id else f"{new_owner_name} is"
    reason = (override_reason or "").strip()
    if reason:
        if not role_at_least(actor_role, "manager"):
            raise InsufficientRole(
                f"{who} already doing {owner_doing} items on this board (personal limit "
                f"{personal_limit}) and only a manager can override a limit. Finish an item "
                "first.",
                required_role="manager",
            )
        return Override("manager", reason)
    raise PersonalWipLimitReached(
        f"{who} already doing {owner_doing} items on this board (personal limit "
        f"{personal_limit}): finish one before taking on {item.key}.",
        wip=owner_doing,
        limit=personal_limit,
    )


def _is_owner_or_manager(item: ItemFacts, actor_id: int, actor_role: str | None) -> bool:
    return item.owner_id == actor_id or role_at_least(actor_role, "manager")


def mark_ready_refusal(
    *,
    item: ItemFacts,
    state: StateFacts,
    actor_id: int,
    actor_role: str | None,
    unmet_exit: Sequence[CriterionFacts] = (),
) -> Refusal | None:
    """check_mark_ready() without raising: None when allowed."""
    refusal = role_refusal(actor_role, "member", doing="mark items ready")
    if refusal is not None:
        return refusal
    if item.closed or state.kind != "work" or item.stage != "doing":
        return lambda: InvalidMove(
            f"Only an item being worked (Doing) in a work state can be marked ready; "
            f"{item.key} is {describe_position(item, state)}."
        )
    if not _is_owner_or_manager(item, actor_id, actor_role):
        return lambda: InsufficientRole(
            f"Only {item.key}'s owner or a manager can mark it ready.", required_role="manager"
        )
    if item.open_block_id is not None:
        block_id = item.open_block_id
        return lambda: ItemBlocked(
            f"{item.key} is blocked: resolve its block before marking it ready.",
            block_id=block_id,
        )
    if unmet_exit:
        return lambda: _unmet_error(
            unmet_exit, doing=f"{item.key} does not meet {state.name}'s exit criteria"
        )
    return None


def check_mark_ready(
    *,
    item: ItemFacts,
    state: StateFacts,
    actor_id: int,
    actor_role: str | None,
    unmet_exit: Sequence[CriterionFacts],
) -> None:
    """Rule 2. Raises InvalidMove, InsufficientRole, ItemBlocked or CriteriaUnmet."""
    _raise_if(
        mark_ready_refusal(
            item=item, state=state, actor_id=actor_id, actor_role=actor_role, unmet_exit=unmet_exit
        )
    )


def check_unready(
    *,
    item: ItemFacts,
    state: StateFacts,
    actor_id: int,
    actor_role: str | None,
    owner_doing: int = 0,
    personal_limit: int | None = None,
) -> None:
    """Rule 2's take-back. The item returns to its owner's doing work, so the board's personal
    limit applies as for a pull (else "ready, pull another, take back" bypasses it);
    `owner_doing` is the owner's doing items on the board now.

    Raises InvalidMove, InsufficientRole or PersonalWipLimitReached.
    """
    require_role(actor_role, "member", doing="take items back")
    if item.closed or state.kind != "work" or item.stage != "ready":
        raise InvalidMove(
            f"Only an item waiting in Ready can be taken back; {item.key} is "
            f"{describe_position(item, state)}."
        )
    if not _is_owner_or_manager(item, actor_id, actor_role):
        raise InsufficientRole(
            f"Only {item.key}'s owner or a manager can take it back.", required_role="manager"
        )
    if item.owner_id is not None and personal_limit is not None and owner_doing >= personal_limit:
        who = "You are" if item.owner_id == actor_id else "Its owner is"
        raise PersonalWipLimitReached(
            f"{who} already doing {owner_doing} items on this board (personal limit "
            f"{personal_limit}): finish one before taking {item.key} back.",
            wip=owner_doing,
            limit=personal_limit,
        )


def _send_back(
    *,
    item: ItemFacts,
    states: Sequence[StateFacts],
    to_state_id: int,
    reason: str,
    actor_role: str | None,
    target_wip: int,
    override_reason: str | None,
    expedite_exceeds_limits: bool,
) -> tuple[StateFacts, Override | None] | Refusal:
    """Rule 3: the target state and override, or the refusal."""
    current = _state(states, item.state_id)
    target = _state(states, to_state_id)
    if current is None or target is None:
        return _not_on_board
    if item.closed or current.kind != "work":
        return lambda: InvalidMove(
            f"Only items in a work state can be sent back; {item.key} is not in one."
        )
    if not role_at_least(actor_role, current.pull_role):
        return lambda: _role_error(
            actor_role, current.pull_role, f"send work back from {current.name}"
        )
    if target.kind != "work" or (target.position, target.id) >= (current.position, current.id):
        return lambda: InvalidMove(
            f"Work can only be sent back to an earlier work state than {current.name}."
        )
    if not reason.strip():
        return lambda: InvalidInput("Say why the work goes back: a reason is required.")
    if item.open_block_id is not None:
        block_id = item.open_block_id
        return lambda: ItemBlocked(
            f"{item.key} is blocked: resolve its block before sending it back.",
            block_id=block_id,
        )
    override = capacity_refusal(
        item=item,
        target=target,
        target_wip=target_wip,
        actor_role=actor_role,
        override_reason=override_reason,
        expedite_exceeds_limits=expedite_exceeds_limits,
        verb="sending back",
    )
    if override is not None and not isinstance(override, Override):
        return override
    return target, override


def send_back_refusal(
    *,
    item: ItemFacts,
    states: Sequence[StateFacts],
    to_state_id: int,
    actor_role: str | None,
    reason: str = "-",
    target_wip: int = 0,
    override_reason: str | None = None,
    expedite_exceeds_limits: bool = True,
) -> Refusal | None:
    """check_send_back() without raising: None when allowed (a reason is assumed given)."""
    found = _send_back(
        item=item,
        states=states,
        to_state_id=to_state_id,
        reason=reason,
        actor_role=actor_role,
        target_wip=target_wip,
        override_reason=override_reason,
        expedite_exceeds_limits=expedite_exceeds_limits,
    )
    return None if isinstance(found, tuple) else found


def check_send_back(
    *,
    item: ItemFacts,
    states: Sequence[StateFacts],
    to_state_id: int,
    reason: str,
    actor_role: str | None,
    target_wip: int,
    override_reason: str | None = None,
    expedite_exceeds_limits: bool = True,
) -> tuple[StateFacts, Override | None]:
    """Rule 3. Raises InvalidInput, InvalidMove, InsufficientRole, ItemBlocked, WipLimitReached."""
    found = _send_back(
        item=item,
        states=states,
        to_state_id=to_state_id,
        reason=reason,
        actor_role=actor_role,
        target_wip=target_wip,
        override_reason=override_reason,
        expedite_exceeds_limits=expedite_exceeds_limits,
    )
    if isinstance(found, tuple):
        return found
    raise found()


def block_refusal(
    *, item: ItemFacts, actor_role: str | None, reason_on_board: bool = True
) -> Refusal | None:
    """check_block() without raising: None when allowed."""
    refusal = role_refusal(actor_role, "member", doing="block items")
    if refusal is not None:
        return refusal
    if item.closed:
        return lambda: InvalidMove(f"{item.key} is closed; closed items cannot be blocked.")
    if item.open_block_id is not None:
        block_id = item.open_block_id
        return lambda: AlreadyBlocked(
            f"{item.key} is already blocked; resolve or edit that block instead of opening "
            "another.",
            block_id=block_id,
        )
    if not reason_on_board:
        return lambda: InvalidInput("Choose one of this board's block reasons.")
    return None


def check_block(*, item: ItemFacts, actor_role: str | None, reason_on_board: bool) -> None:
    """Rule 4. Raises InsufficientRole, InvalidMove, AlreadyBlocked or InvalidInput."""
    _raise_if(block_refusal(item=item, actor_role=actor_role, reason_on_board=reason_on_board))


def unblock_refusal(*, actor_role: str | None, already_resolved: bool = False) -> Refusal | None:
    """check_unblock() without raising: None when allowed."""
    refusal = role_refusal(actor_role, "member", doing="resolve blocks")
    if refusal is not None:
        return refusal
    if already_resolved:
        return lambda: InvalidMove("This block is already resolved.")
    return None


def check_unblock(*, actor_role: str | None, already_resolved: bool) -> None:
    """Rule 4. Raises InsufficientRole or InvalidMove."""
    _raise_if(unblock_refusal(actor_role=actor_role, already_resolved=already_resolved))


def check_criterion(
    *,
    item: ItemFacts,
    criterion: CriterionFacts,
    states: Sequence[StateFacts],
    actor_role: str | None,
) -> None:
    """Rule 5: exit criteria of the current state or entry criteria of the next one."""
    require_role(actor_role, "member", doing="check criteria")
    if item.closed:
        raise InvalidMove(f"{item.key} is closed; its criteria can no longer change.")
    following = state_after(states, item.state_id)
    applies = (criterion.gate == "exit" and criterion.state_id == item.state_id) or (
        criterion.gate == "entry" and following is not None and criterion.state_id == following.id
    )
    if not applies:
        raise InvalidMove(
            f"“{criterion.text}” is not a criterion of {item.key}'s current state (exit) or of "
            "the next state (entry)."
        )


def check_version(*, given: int, current: int) -> None:
    """Rule 6. Raises VersionConflict for a stale version."""
    if given != current:
        raise VersionConflict(
            f"Someone changed this item after you loaded it (you had version {given}, it is now "
            f"{current}). Review the newer values and apply your change again.",
            current_version=current,
        )


def discard_refusal(
    *, item: ItemFacts, state: StateFacts, actor_role: str | None, reason: str = "-"
) -> Refusal | None:
    """check_discard() without raising: None when allowed (a reason is assumed given)."""
    if item.closed:
        return lambda: InvalidMove(f"{item.key} is already closed.")
    if state.kind == "backlog":
        refusal = role_refusal(actor_role, "member", doing="discard options")
    else:
        refusal = role_refusal(actor_role, "manager", doing="discard committed work")
    if refusal is not None:
        return refusal
    if not reason.strip():
        return lambda: InvalidInput("Say why the item is discarded: a reason is required.")
    return None


def check_discard(
    *, item: ItemFacts, state: StateFacts, actor_role: str | None, reason: str
) -> None:
    """Rule 7. Raises InvalidMove, InsufficientRole or InvalidInput."""
    _raise_if(discard_refusal(item=item, state=state, actor_role=actor_role, reason=reason))


def check_delete_state(*, state: StateFacts, item_count: int) -> None:
    """Rule 8. Raises StateNotEmpty or InvalidMove."""
    if state.kind != "work":
        raise InvalidMove(f"{state.name} is the board's {state.kind} state and cannot be deleted.")
    if item_count:
        raise StateNotEmpty(
            f"{state.name} still holds {item_count} item(s): move them on or discard them first.",
            count=item_count,
        )


def check_state_layout(states: Sequence[tuple[str, str]]) -> None:
    """A board's (name, kind) list: one backlog first, one done last, work between, unique names."""
    if len(states) < 3:
        raise InvalidInput("A board needs a backlog, at least one work state and a done state.")
    kinds = [kind for _, kind in states]
    if kinds[0] != "backlog" or kinds.count("backlog") != 1:
        raise InvalidInput("Exactly one backlog state is needed, and it must come first.")
    if kinds[-1] != "done" or kinds.count("done") != 1:
        raise InvalidInput("Exactly one done state is needed, and it must come last.")
    if any(kind != "work" for kind in kinds[1:-1]):
        raise InvalidInput("Every state between the backlog and done must be a work state.")
    names = [name.strip().casefold() for name, _ in states]
    if len(set(names)) != len(names):
        raise InvalidInput("State names must be unique on a board.")


def describe_position(item: ItemFacts, state: StateFacts) -> str:
    if item.discarded:
        return "discarded"
    if state.kind == "backlog":
        return "in the backlog"
    if state.kind == "done":
        return "done"
    return f"{item.stage} in {state.name}"


def waiting_for(
    *,
    item: ItemFacts,
    state: StateFacts,
    following: StateFacts | None,
    following_wip: int | None,
    block_waiting_on: str | None,
    block_reason: str | None,
    owner_name: str | None,
) -> str:
    """Who acts next, in words (PRODUCT.md, "Who acts next")."""
    if item.discarded:
        return "Nobody: discarded"
    if item.done or state.kind == "done":
        return "Nobody: done"
    if item.open_block_id is not None:
        return f"Blocked: waiting on {block_waiting_on or block_reason or 'its block'}"
    if state.kind == "backlog":
        return "Waiting for commitment"
    if item.stage == "ready" and following is not None:
        room = ""
        if following.kind == "work" and following.wip_limit is not None:
            free = following.wip_limit - (following_wip or 0)
            room = f" (room for {free})" if free > 0 else f" ({following.name} has no room)"
        pullers = ROLE_PLURAL[following.pull_role]
        return f"Waiting for {following.name}: {pullers} pull{room}"
    return f"{owner_name or 'Unassigned'} is working on it"
