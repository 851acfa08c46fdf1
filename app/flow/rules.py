"""Flow rules 1-8 of PRODUCT.md as pure checks over small value objects.

Each check returns quietly when the action is allowed and raises a FlowError subclass (with
the slug from API.md and a sentence that says what would unblock it) when it is not. The
services load the facts, take the locks, call these, then write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.flow.errors import (
    AlreadyBlocked,
    CriteriaUnmet,
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


def role_at_least(role: str | None, required: str) -> bool:
    return role is not None and ROLE_RANK.get(role, -1) >= ROLE_RANK[required]


def require_role(role: str | None, required: str, *, doing: str) -> None:
    """Raises InsufficientRole unless `role` is at least `required`; `doing` ends the sentence."""
    if not role_at_least(role, required):
        raise InsufficientRole(
            f"Only {ROLE_PLURAL[required]} and above can {doing}; your role on this board is "
            f"{role or 'none'}. Ask a manager of the board for a higher role.",
            required_role=required,
        )


def ordered(states: Sequence[StateFacts]) -> list[StateFacts]:
    return sorted(states, key=lambda s: (s.position, s.id))


def state_after(states: Sequence[StateFacts], state_id: int) -> StateFacts | None:
    flow = ordered(states)
    for index, state in enumerate(flow):
        if state.id == state_id:
            return flow[index + 1] if index + 1 < len(flow) else None
    return None


def _find(states: Sequence[StateFacts], state_id: int) -> StateFacts:
    for state in states:
        if state.id == state_id:
            return state
    raise InvalidMove("That state is not on this item's board.")


def _unmet_error(unmet: Sequence[CriterionFacts], *, doing: str) -> CriteriaUnmet:
    listed = "; ".join(f"“{c.text}”" for c in unmet)
    return CriteriaUnmet(
        f"{doing}: check {listed} first.",
        unmet=[{"criterion_id": c.id, "text": c.text} for c in unmet],
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
    if target.kind == "done" or target.wip_limit is None or target_wip < target.wip_limit:
        return None
    if item.class_of_service == "expedite" and expedite_exceeds_limits:
        return Override("expedite", "expedite items may exceed WIP limits on this board")
    reason = (override_reason or "").strip()
    if reason:
        if not role_at_least(actor_role, "manager"):
            raise InsufficientRole(
                f"{target.name} is at its WIP limit ({target_wip}/{target.wip_limit}) and only a "
                "manager can override a limit. Finish or hand off an item there first.",
                required_role="manager",
            )
        return Override("manager", reason)
    raise WipLimitReached(
        f"{target.name} is at its WIP limit ({target_wip}/{target.wip_limit}): finish or hand "
        f"off an item there before {verb} {item.key}.",
        state_id=target.id,
        wip=target_wip,
        limit=target.wip_limit,
    )


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
    if item.closed:
        raise InvalidMove(f"{item.key} is closed ({'done' if item.done else 'discarded'}).")
    current = _find(states, item.state_id)
    target = state_after(states, item.state_id)
    if target is None:
        raise InvalidMove(f"{item.key} is already in the last state.")
    if requested_state_id is not None and requested_state_id != target.id:
        requested = _find(states, requested_state_id)
        raise InvalidMove(
            f"{item.key} can only be pulled into {target.name}, the state right after "
            f"{current.name}; it cannot go to {requested.name} from here."
        )
    require_role(actor_role, target.pull_role, doing=f"pull into {target.name}")
    if item.open_block_id is not None:
        raise ItemBlocked(
            f"{item.key} is blocked: resolve its block before pulling it.",
            block_id=item.open_block_id,
        )
    if current.kind == "work" and item.stage != "ready":
        raise NotReady(
            f"{item.key} is still being worked in {current.name}: its owner must mark it ready "
            "before it can be pulled."
        )
    if unmet_entry:
        raise _unmet_error(
            unmet_entry, doing=f"{item.key} does not meet {target.name}'s entry criteria"
        )
    override = check_capacity(
        item=item,
        target=target,
        target_wip=target_wip,
        actor_role=actor_role,
        override_reason=override_reason,
        expedite_exceeds_limits=expedite_exceeds_limits,
    )
    if target.kind == "work" and personal_limit is not None and actor_doing >= personal_limit:
        raise PersonalWipLimitReached(
            f"You are already doing {actor_doing} items on this board (personal limit "
            f"{personal_limit}): finish one before pulling {item.key}.",
            wip=actor_doing,
            limit=personal_limit,
        )
    return target, override


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


def check_mark_ready(
    *,
    item: ItemFacts,
    state: StateFacts,
    actor_id: int,
    actor_role: str | None,
    unmet_exit: Sequence[CriterionFacts],
) -> None:
    """Rule 2. Raises InvalidMove, InsufficientRole, ItemBlocked or CriteriaUnmet."""
    require_role(actor_role, "member", doing="mark items ready")
    if item.closed or state.kind != "work" or item.stage != "doing":
        raise InvalidMove(
            f"Only an item being worked (Doing) in a work state can be marked ready; "
            f"{item.key} is {describe_position(item, state)}."
        )
    if not _is_owner_or_manager(item, actor_id, actor_role):
        raise InsufficientRole(
            f"Only {item.key}'s owner or a manager can mark it ready.", required_role="manager"
        )
    if item.open_block_id is not None:
        raise ItemBlocked(
            f"{item.key} is blocked: resolve its block before marking it ready.",
            block_id=item.open_block_id,
        )
    if unmet_exit:
        raise _unmet_error(
            unmet_exit, doing=f"{item.key} does not meet {state.name}'s exit criteria"
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
    current = _find(states, item.state_id)
    target = _find(states, to_state_id)
    if item.closed or current.kind != "work":
        raise InvalidMove(f"Only items in a work state can be sent back; {item.key} is not in one.")
    require_role(actor_role, current.pull_role, doing=f"send work back from {current.name}")
    if target.kind != "work" or (target.position, target.id) >= (current.position, current.id):
        raise InvalidMove(
            f"Work can only be sent back to an earlier work state than {current.name}."
        )
    if not reason.strip():
        raise InvalidInput("Say why the work goes back: a reason is required.")
    if item.open_block_id is not None:
        raise ItemBlocked(
            f"{item.key} is blocked: resolve its block before sending it back.",
            block_id=item.open_block_id,
        )
    override = check_capacity(
        item=item,
        target=target,
        target_wip=target_wip,
        actor_role=actor_role,
        override_reason=override_reason,
        expedite_exceeds_limits=expedite_exceeds_limits,
        verb="sending back",
    )
    return target, override


def check_block(*, item: ItemFacts, actor_role: str | None, reason_on_board: bool) -> None:
    """Rule 4. Raises InsufficientRole, InvalidMove, AlreadyBlocked or InvalidInput."""
    require_role(actor_role, "member", doing="block items")
    if item.closed:
        raise InvalidMove(f"{item.key} is closed; closed items cannot be blocked.")
    if item.open_block_id is not None:
        raise AlreadyBlocked(
            f"{item.key} is already blocked; resolve or edit that block instead of opening "
            "another.",
            block_id=item.open_block_id,
        )
    if not reason_on_board:
        raise InvalidInput("Choose one of this board's block reasons.")


def check_unblock(*, actor_role: str | None, already_resolved: bool) -> None:
    """Rule 4. Raises InsufficientRole or InvalidMove."""
    require_role(actor_role, "member", doing="resolve blocks")
    if already_resolved:
        raise InvalidMove("This block is already resolved.")


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


def check_discard(
    *, item: ItemFacts, state: StateFacts, actor_role: str | None, reason: str
) -> None:
    """Rule 7. Raises InvalidMove, InsufficientRole or InvalidInput."""
    if item.closed:
        raise InvalidMove(f"{item.key} is already closed.")
    if state.kind == "backlog":
        require_role(actor_role, "member", doing="discard options")
    else:
        require_role(actor_role, "manager", doing="discard committed work")
    if not reason.strip():
        raise InvalidInput("Say why the item is discarded: a reason is required.")


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
