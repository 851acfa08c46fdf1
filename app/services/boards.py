"""Board configuration use cases: boards, members, states, criteria, block reasons.

Every configuration change is recorded as a `state_changed` (or board/member) event, so the
history of the process itself can be read back like the history of its work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db import queries
from app.db.models import ROLES, BlockReason, Board, Criterion, Item, Membership, State, User
from app.flow import rules
from app.flow.errors import InsufficientRole, InvalidInput, NotFound
from app.flow.text import checked_text
from app.services import audit, events
from app.services.access import visible_board
from app.services.board_templates import DEFAULT_BLOCK_REASONS, TEMPLATES, StateTemplate
from app.services.users import _clean_email as clean_email

KEY_PATTERN = re.compile(r"^[A-Z]{2,10}$")
WIP_MAX = 10_000


@dataclass
class StateSpec:
    name: str
    kind: str
    wip_limit: int | None = None
    pull_role: str = "member"


def _check_limit(limit: int | None, what: str = "wip_limit") -> None:
    if limit is not None and not 1 <= limit <= WIP_MAX:
        raise InvalidInput(f"{what} must be empty or between 1 and {WIP_MAX}.")


def _clean_name(name: str, what: str, max_length: int = 80) -> str:
    cleaned = " ".join(checked_text(name or "", what, visible=True).split())
    if not 1 <= len(cleaned) <= max_length:
        raise InvalidInput(f"A {what} needs 1 to {max_length} characters.")
    return cleaned


def _key_taken(session: Session, key: str) -> bool:
    return session.scalar(select(func.count()).select_from(Board).where(Board.key == key)) != 0


def _derive_key(session: Session, name: str, preferred: str | None) -> str:
    letters = re.sub(r"[^A-Z]", "", name.upper()) or "BOARD"
    candidates = [preferred] if preferred else []
    candidates += [letters[:n] for n in range(3, min(len(letters), 10) + 1)]
    if len(letters) < 3:
        candidates.append((letters + "XX")[:3])
    for candidate in candidates:
        if candidate and KEY_PATTERN.match(candidate) and not _key_taken(session, candidate):
            return candidate
    base = letters[:8] if len(letters) >= 2 else "BD"
    for suffix in (
        a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ):
        if not _key_taken(session, base + suffix):
            return base + suffix
    raise InvalidInput("Could not derive a free key; give one explicitly.")


def create_board(
    *,
    session: Session,
    actor: User,
    name: str,
    key: str | None = None,
    template: str | None = None,
    states: list[StateSpec] | None = None,
    personal_wip_limit: int | None = None,
    expedite_exceeds_limits: bool = True,
    now: datetime | None = None,
) -> Board:
    """Admins only. The creator becomes the board's manager. Raises InvalidInput."""
    now = now or queries.now()
    rules.require_role("manager" if actor.is_admin else None, "manager", doing="create boards")
    name = _clean_name(name, "board name", 120)
    if key is not None:
        if not KEY_PATTERN.match(key):
            raise InvalidInput("A board key is 2 to 10 capital letters, like DOC.")
        if _key_taken(session, key):
            raise InvalidInput(f"The key {key} is already used by another board.")
    _check_limit(personal_wip_limit, "personal_wip_limit")
    chosen = TEMPLATES.get(template) if template else None
    if template and chosen is None:
        raise InvalidInput(f"Unknown template {template!r}; choose one of {', '.join(TEMPLATES)}.")
    if states:
        layout: list[StateTemplate] = [
            StateTemplate(s.name, s.kind, s.wip_limit, s.pull_role) for s in states
        ]
    elif chosen:
        layout = list(chosen.states)
    else:
        layout = [
            StateTemplate("Backlog", "backlog"),
            StateTemplate("Doing", "work", 3),
            StateTemplate("Done", "done"),
        ]
    cleaned = [(_clean_name(s.name, "state name"), s.kind) for s in layout]
    rules.check_state_layout(cleaned)
    for spec in layout:
        _check_limit(spec.wip_limit)
        if spec.pull_role not in ("member", "reviewer"):
            raise InvalidInput("pull_role is member or reviewer.")
    board = Board(
        name=name,
        key=key or _derive_key(session, name, chosen.key if chosen else None),
        template=chosen.slug if chosen else None,
        personal_wip_limit=personal_wip_limit,
        expedite_exceeds_limits=expedite_exceeds_limits,
        created_at=now,
    )
    session.add(board)
    session.flush()
    session.add(Membership(board_id=board.id, user_id=actor.id, role="manager"))
    for position, (spec, (state_name, _)) in enumerate(zip(layout, cleaned, strict=True)):
        state = State(
            board_id=board.id,
            name=state_name,
            kind=spec.kind,
            position=position,
            wip_limit=spec.wip_limit if spec.kind != "done" else None,
            pull_role=spec.pull_role,
        )
        session.add(state)
        session.flush()
        for index, text in enumerate(spec.entry):
            session.add(Criterion(state_id=state.id, text=text, gate="entry", position=index))
        for index, text in enumerate(spec.exit):
            session.add(Criterion(state_id=state.id, text=text, gate="exit", position=index))
    for reason in DEFAULT_BLOCK_REASONS:
        session.add(BlockReason(board_id=board.id, name=reason))
    events.record(
        session,
        type="board_created",
        board_id=board.id,
        actor_id=actor.id,
        at=now,
        name=name,
        template=board.template,
    )
    session.flush()
    return board


def update_board(
    *,
    session: Session,
    board_id: int,
    actor: User,
    changes: dict[str, object],
    now: datetime | None = None,
) -> Board:
    """Managers only. Raises NotFound, InsufficientRole, InvalidInput."""
    board, _ = visible_board(
        session, board_id=board_id, actor=actor, required="manager", doing="change board settings"
    )
    changed: dict[str, list[object]] = {}
    if "name" in changes:
        new_name = _clean_name(str(changes["name"] or ""), "board name", 120)
        if new_name != board.name:
            changed["name"] = [board.name, new_name]
            board.name = new_name
    if "personal_wip_limit" in changes:
        limit = changes["personal_wip_limit"]
        _check_limit(limit, "personal_wip_limit")  # type: ignore[arg-type]
        if limit != board.personal_wip_limit:
            changed["personal_wip_limit"] = [board.personal_wip_limit, limit]
            board.personal_wip_limit = limit  # type: ignore[assignment]
    if "expedite_exceeds_limits" in changes:
        value = bool(changes["expedite_exceeds_limits"])
        if value != board.expedite_exceeds_limits:
            changed["expedite_exceeds_limits"] = [board.expedite_exceeds_limits, value]
            board.expedite_exceeds_limits = value
    if changed:
        events.record(
            session,
            type="board_changed",
            board_id=board.id,
            actor_id=actor.id,
            at=now or queries.now(),
            changes=changed,
        )
        session.flush()
    return board


def set_member(
    *,
    session: Session,
    board_id: int,
    user_id: int,
    role: str,
    actor: User,
    now: datetime | None = None,
) -> Membership:
    """Adds or changes a member. Managers only.

    A manager who is not a site admin may only change people already on the board: any
    other id, used or not, answers NotFound("No such user.") alike, so ids cannot be walked
    to list every account (they add people by email, add_member_by_email). Raises NotFound,
    InsufficientRole (a site admin's membership, for managers who are not one), InvalidInput.
    """
    board, _ = visible_board(
        session, board_id=board_id, actor=actor, required="manager", doing="manage members"
    )
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}.")
    person = session.get(User, user_id)
    membership = queries.membership(session, board.id, user_id) if person else None
    if person is None or (membership is None and not actor.is_admin):
        raise NotFound("No such user.")
    _protect_site_admin(person, actor)
    previous = membership.role if membership else None
    if membership is None:
        membership = Membership(board_id=board.id, user_id=user_id, role=role)
        session.add(membership)
    else:
        if (
            previous == "manager"
            and role != "manager"
            and queries.manager_count(session, board.id) <= 1
        ):
            raise InvalidInput("A board needs at least one manager; appoint another one first.")
        membership.role = role
    if previous != role:
        events.record(
            session,
            type="member_changed",
            board_id=board.id,
            actor_id=actor.id,
            at=now or queries.now(),
            user_id=user_id,
            role=role,
            previous_role=previous,
        )
        _audit_membership(session, board.id, actor, user_id, role, previous, now)
    session.flush()
    return membership


def add_member_by_email(
    *,
    session: Session,
    board_id: int,
    email: str,
    role: str,
    actor: User,
    now: datetime | None = None,
) -> str:
    """Adds the active account that uses `email` with `role`, if there is one and it is not on
    the board yet (people already on it keep their role). Managers only.

    Returns the cleaned email and nothing else: the caller cannot tell whether an account
    uses it until that person shows up among the members. Raises NotFound, InsufficientRole,
    InvalidInput (role, malformed email).
    """
    board, _ = visible_board(
        session, board_id=board_id, actor=actor, required="manager", doing="manage members"
    )
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}.")
    email = clean_email(email)
    person = queries.user_by_email(session, email)
    if person is None or not person.is_active:
        return email
    if queries.membership(session, board.id, person.id) is not None:
        return email
    session.add(Membership(board_id=board.id, user_id=person.id, role=role))
    events.record(
        session,
        type="member_changed",
        board_id=board.id,
        actor_id=actor.id,
        at=now or queries.now(),
        user_id=person.id,
        role=role,
        previous_role=None,
    )
    _audit_membership(session, board.id, actor, person.id, role, None, now)
    session.flush()
    return email


def _protect_site_admin(person: User, actor: User) -> None:
    # A board manager must not be able to demote or remove the site admins who oversee them.
    if person.is_admin and not actor.is_admin:
        raise InsufficientRole(
            f"{person.name} is a site admin; only a site admin can change their membership.",
            required_role="admin",
        )


def remove_member(
    *, session: Session, board_id: int, user_id: int, actor: User, now: datetime | None = None
) -> None:
    """Managers only. Raises NotFound, InvalidInput (last manager)."""
    board, _ = visible_board(
        session, board_id=board_id, actor=actor, required="manager", doing="manage members"
    )
    membership = queries.membership(session, board.id, user_id)
    person = session.get(User, user_id) if membership else None
    if membership is None or person is None:
        raise NotFound("That user is not a member of this board.")
    _protect_site_admin(person, actor)
    if membership.role == "manager" and queries.manager_count(session, board.id) <= 1:
        raise InvalidInput("A board needs at least one manager; appoint another one first.")
    session.delete(membership)
    events.record(
        session,
        type="member_changed",
        board_id=board.id,
        actor_id=actor.id,
        at=now or queries.now(),
        user_id=user_id,
        role=None,
        previous_role=membership.role,
    )
    _audit_membership(session, board.id, actor, user_id, None, membership.role, now)
    session.flush()


def _audit_membership(
    session: Session,
    board_id: int,
    actor: User,
    user_id: int,
    role: str | None,
    previous: str | None,
    now: datetime | None,
) -> None:
    """member_added, role_changed or member_removed in the admins' audit trail."""
    kind = (
        "member_added" if previous is None else "member_removed" if role is None else "role_changed"
    )
    data = {"user_id": user_id, "role": role, "previous_role": previous}
    audit.record(session, type=kind, actor_id=actor.id, board_id=board_id, data=data, now=now)


def _state_on_visible_board(
    session: Session, state_id: int, actor: User, *, required: str, doing: str
) -> tuple[State, Board]:
    state = session.get(State, state_id)
    if state is None:
        raise NotFound("No such state, or you are not a member of its board.")
    try:
        board, _ = visible_board(
            session, board_id=state.board_id, actor=actor, required=required, doing=doing
        )
    except NotFound:
        raise NotFound("No such state, or you are not a member of its board.") from None
    return state, board


def get_state(*, session: Session, state_id: int, actor: User) -> State:
    """A state of a board the actor can see. Raises NotFound (also for non-members)."""
    state, _ = _state_on_visible_board(session, state_id, actor, required="viewer", doing="")
    return state


def get_criterion(*, session: Session, criterion_id: int, actor: User) -> Criterion:
    """A criterion of a board the actor can see. Raises NotFound (also for non-members)."""
    criterion = session.get(Criterion, criterion_id)
    try:
        if criterion is None:
            raise NotFound("")
        get_state(session=session, state_id=criterion.state_id, actor=actor)
    except NotFound:
        raise NotFound("No such criterion, or you are not a member of its board.") from None
    return criterion


def _renumber(states: list[State]) -> None:
    for position, state in enumerate(states):
        state.position = position


def _record_state_change(
    session: Session,
    board: Board,
    actor: User,
    state: State,
    action: str,
    now: datetime | None,
    **data: Any,
) -> None:
    events.record(
        session,
        type="state_changed",
        board_id=board.id,
        actor_id=actor.id,
        at=now or queries.now(),
        to_state_id=state.id,
        action=action,
        name=state.name,
        **data,
    )


def add_state(
    *,
    session: Session,
    board_id: int,
    actor: User,
    name: str,
    wip_limit: int | None = None,
    pull_role: str = "member",
    position: int | None = None,
    now: datetime | None = None,
) -> State:
    """Adds a work state (default: just before done). Managers only. Raises InvalidInput."""
    board, _ = visible_board(
        session, board_id=board_id, actor=actor, required="manager", doing="change states"
    )
    name = _clean_name(name, "state name")
    _check_limit(wip_limit)
    if pull_role not in ("member", "reviewer"):
        raise InvalidInput("pull_role is member or reviewer.")
    states = queries.states_of(session, board.id)
    if any(s.name.casefold() == name.casefold() for s in states):
        raise InvalidInput(f"This board already has a state named {name}.")
    index = len(states) - 1 if position is None else position
    if not 1 <= index <= len(states) - 1:
        raise InvalidInput(
            f"A work state goes between the backlog and done: position 1 to {len(states) - 1}."
        )
    state = State(
        board_id=board.id,
        name=name,
        kind="work",
        position=index,
        wip_limit=wip_limit,
        pull_role=pull_role,
    )
    session.add(state)
    states.insert(index, state)
    _renumber(states)
    session.flush()
    _record_state_change(
        session,
        board,
        actor,
        state,
        "added",
        now,
        wip_limit=wip_limit,
        pull_role=pull_role,
        position=index,
    )
    session.flush()
    return state


def update_state(
    *,
    session: Session,
    state_id: int,
    actor: User,
    changes: dict[str, object],
    now: datetime | None = None,
) -> State:
    """Rename, limit, pull role, reorder. Managers only. Raises InvalidInput."""
    state, board = _state_on_visible_board(
        session, state_id, actor, required="manager", doing="change states"
    )
    states = queries.states_of(session, board.id)
    changed: dict[str, list[object]] = {}
    if "name" in changes:
        name = _clean_name(str(changes["name"] or ""), "state name")
        if any(s.id != state.id and s.name.casefold() == name.casefold() for s in states):
            raise InvalidInput(f"This board already has a state named {name}.")
        if name != state.name:
            changed["name"] = [state.name, name]
            state.name = name
    if "wip_limit" in changes:
        limit = changes["wip_limit"]
        _check_limit(limit)  # type: ignore[arg-type]
        if state.kind == "done" and limit is not None:
            raise InvalidInput("The done state has no WIP limit: finished work is not in process.")
        if limit != state.wip_limit:
            changed["wip_limit"] = [state.wip_limit, limit]
            state.wip_limit = limit  # type: ignore[assignment]
    if "pull_role" in changes and changes["pull_role"] is not None:
        role = str(changes["pull_role"])
        if role not in ("member", "reviewer"):
            raise InvalidInput("pull_role is member or reviewer.")
        if role != state.pull_role:
            changed["pull_role"] = [state.pull_role, role]
            state.pull_role = role
    if "position" in changes and changes["position"] is not None:
        position = int(str(changes["position"]))
        if state.kind != "work":
            raise InvalidInput("Only work states can be moved; the backlog and done stay put.")
        if not 1 <= position <= len(states) - 2:
            raise InvalidInput(f"A work state's position is 1 to {len(states) - 2}.")
        if position != state.position:
            changed["position"] = [state.position, position]
            ordered = [s for s in states if s.id != state.id]
            ordered.insert(position, state)
            _renumber(ordered)
    if changed:
        _record_state_change(session, board, actor, state, "changed", now, changes=changed)
        session.flush()
    return state


def delete_state(
    *, session: Session, state_id: int, actor: User, now: datetime | None = None
) -> None:
    """Rule 8. Raises StateNotEmpty, InvalidMove (backlog/done)."""
    state, board = _state_on_visible_board(
        session, state_id, actor, required="manager", doing="delete states"
    )
    queries.lock_state(session, state.id)
    count = queries.state_item_count(session, state.id)
    rules.check_delete_state(
        state=rules.StateFacts(
            id=state.id,
            name=state.name,
            kind=state.kind,
            position=state.position,
            wip_limit=state.wip_limit,
        ),
        item_count=count,
    )
    states = queries.states_of(session, board.id)
    # Discarded items keep their last state for history; point them at the backlog instead.
    session.execute(
        update(Item)
        .where(Item.state_id == state.id)
        .values(state_id=states[0].id)
        .execution_options(synchronize_session=False)
    )
    _record_state_change(session, board, actor, state, "deleted", now)
    session.delete(state)
    _renumber([s for s in states if s.id != state.id])
    session.flush()


def add_criterion(
    *,
    session: Session,
    state_id: int,
    actor: User,
    text: str,
    gate: str,
    now: datetime | None = None,
) -> Criterion:
    """Managers only. Raises InvalidInput."""
    state, board = _state_on_visible_board(
        session, state_id, actor, required="manager", doing="change criteria"
    )
    text = _clean_name(text, "criterion", 300)
    if gate not in ("entry", "exit"):
        raise InvalidInput("gate is entry or exit.")
    if state.kind == "backlog" and gate == "entry":
        raise InvalidInput("Nothing is pulled into the backlog, so it has no entry criteria.")
    if state.kind == "done" and gate == "exit":
        raise InvalidInput("Nothing leaves done, so it has no exit criteria.")
    position = session.scalar(
        select(func.coalesce(func.max(Criterion.position) + 1, 0)).where(
            Criterion.state_id == state.id, Criterion.gate == gate
        )
    )
    criterion = Criterion(state_id=state.id, text=text, gate=gate, position=position or 0)
    session.add(criterion)
    session.flush()
    _record_state_change(
        session,
        board,
        actor,
        state,
        "criterion_added",
        now,
        criterion_id=criterion.id,
        text=text,
        gate=gate,
    )
    session.flush()
    return criterion


def delete_criterion(
    *, session: Session, criterion_id: int, actor: User, now: datetime | None = None
) -> None:
    criterion = session.get(Criterion, criterion_id)
    if criterion is None:
        raise NotFound("No such criterion, or you are not a member of its board.")
    try:
        state, board = _state_on_visible_board(
            session, criterion.state_id, actor, required="manager", doing="change criteria"
        )
    except NotFound:
        # Answer a non-member exactly as for an unknown id: the state's existence is not news.
        raise NotFound("No such criterion, or you are not a member of its board.") from None
    _record_state_change(
        session,
        board,
        actor,
        state,
        "criterion_deleted",
        now,
        criterion_id=criterion.id,
        text=criterion.text,
        gate=criterion.gate,
    )
    session.delete(criterion)
    session.flush()


def add_block_reason(
    *, session: Session, board_id: int, actor: User, name: str, now: datetime | None = None
) -> BlockReason:
    board, _ = visible_board(
        session, board_id=board_id, actor=actor, required="manager", doing="change block reasons"
    )
    name = _clean_name(name, "block reason")
    if any(r.name.casefold() == name.casefold() for r in queries.block_reasons(session, board.id)):
        raise InvalidInput(f"This board already has the block reason {name}.")
    reason = BlockReason(board_id=board.id, name=name)
    session.add(reason)
    session.flush()
    events.record(
        session,
        type="board_changed",
        board_id=board.id,
        actor_id=actor.id,
        at=now or queries.now(),
        block_reason_added=name,
    )
    session.flush()
    return reason
