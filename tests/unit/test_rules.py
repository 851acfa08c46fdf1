"""Unit tests for app.flow.rules: every branch over plain value objects, no database.

Each refusal is checked for its slug, its HTTP status, its extra fields (API.md) and for a
detail sentence that says what would unblock it (PRODUCT.md: "every rejection names the rule
and tells the user what would unblock it").
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.flow import rules
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
from app.flow.rules import CriterionFacts, ItemFacts, Override, StateFacts

BACKLOG = StateFacts(id=1, name="Backlog", kind="backlog", position=0, wip_limit=None)
BUILD = StateFacts(id=2, name="Build", kind="work", position=1, wip_limit=3)
REVIEW = StateFacts(id=3, name="Review", kind="work", position=2, wip_limit=2, pull_role="reviewer")
# A limit on done must be ignored: done is terminal and never "full".
DONE = StateFacts(id=4, name="Done", kind="done", position=3, wip_limit=1)
# Given out of order on purpose: the flow order comes from position, not from the list.
STATES = [REVIEW, DONE, BACKLOG, BUILD]

OWNER, OTHER = 7, 8
ENTRY = CriterionFacts(id=31, text="Reviewer named", gate="entry", state_id=REVIEW.id)
ENTRY2 = CriterionFacts(id=32, text="Draft attached", gate="entry", state_id=REVIEW.id)
EXIT = CriterionFacts(id=21, text="Spell-checked", gate="exit", state_id=BUILD.id)


def item(**changes: Any) -> ItemFacts:
    base = ItemFacts(
        id=100,
        key="TST-1",
        state_id=BACKLOG.id,
        stage=None,
        owner_id=None,
        class_of_service="standard",
        open_block_id=None,
        done=False,
        discarded=False,
    )
    return replace(base, **changes)


IN_BUILD_DOING = {"state_id": BUILD.id, "stage": "doing", "owner_id": OWNER}
IN_BUILD_READY = {"state_id": BUILD.id, "stage": "ready", "owner_id": OWNER}
IN_REVIEW_DOING = {"state_id": REVIEW.id, "stage": "doing", "owner_id": OWNER}
IN_REVIEW_READY = {"state_id": REVIEW.id, "stage": "ready", "owner_id": OWNER}


def refused(
    error_type: type[FlowError], call: Any, *unblock_words: str, **kwargs: Any
) -> FlowError:
    """Runs `call(**kwargs)`, expects `error_type` and a detail naming every `unblock_words`."""
    with pytest.raises(error_type) as caught:
        call(**kwargs)
    error = caught.value
    assert type(error) is error_type
    assert error.detail and error.detail[-1] in ".!", error.detail
    for word in unblock_words:
        assert word in error.detail, (word, error.detail)
    return error


def pull(**kwargs: Any) -> tuple[StateFacts, Override | None]:
    args: dict[str, Any] = {
        "item": item(),
        "states": STATES,
        "actor_role": "member",
        "target_wip": 0,
        "actor_doing": 0,
        "personal_limit": None,
        "unmet_entry": [],
    }
    args.update(kwargs)
    return rules.check_pull(**args)


# ---------------------------------------------------------------- rule 1: pull


@pytest.mark.parametrize(
    ("facts", "role", "expected"),
    [
        ({}, "member", BUILD),  # from the backlog any option may be pulled: the commitment
        ({"stage": "ready"}, "member", BUILD),  # even odd stage data does not matter there
        (IN_BUILD_READY, "reviewer", REVIEW),
        (IN_BUILD_READY, "manager", REVIEW),
        (IN_REVIEW_READY, "reviewer", DONE),
    ],
)
def test_pull_allowed_moves_to_the_next_state(
    facts: dict[str, Any], role: str, expected: StateFacts
) -> None:
    assert pull(item=item(**facts), actor_role=role) == (expected, None)


def test_pull_names_the_only_state_it_may_go_to() -> None:
    error = refused(
        InvalidMove, pull, "only be pulled into Build", "cannot go to Review", requested_state_id=3
    )
    assert error.slug == "invalid-move" and error.status == 409
    assert pull(requested_state_id=BUILD.id) == (BUILD, None)


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        ({"done": True, "state_id": DONE.id}, "closed (done)"),
        ({"discarded": True}, "closed (discarded)"),
        ({"state_id": DONE.id}, "already in the last state"),
        ({"state_id": 99}, "not on this item's board"),
    ],
)
def test_pull_of_closed_or_last_or_foreign_item_is_invalid(
    facts: dict[str, Any], words: str
) -> None:
    refused(InvalidMove, pull, words, item=item(**facts), actor_role="manager")


@pytest.mark.parametrize(
    ("facts", "role", "required"),
    [
        ({}, "viewer", "member"),
        ({}, None, "member"),
        (IN_BUILD_READY, "member", "reviewer"),
        (IN_BUILD_READY, "viewer", "reviewer"),
    ],
)
def test_pull_needs_the_target_pull_role(
    facts: dict[str, Any], role: str | None, required: str
) -> None:
    error = refused(
        InsufficientRole, pull, "Ask a manager", f"{required}s", item=item(**facts), actor_role=role
    )
    assert (error.slug, error.status) == ("insufficient-role", 403)
    assert error.fields == {"required_role": required}


@pytest.mark.parametrize("facts", [{}, IN_BUILD_READY, IN_BUILD_DOING])
def test_pull_of_blocked_item_is_refused_with_its_block(facts: dict[str, Any]) -> None:
    error = refused(
        ItemBlocked,
        pull,
        "resolve its block",
        item=item(**facts, open_block_id=55),
        actor_role="manager",
    )
    assert error.slug == "item-blocked"
    assert error.fields == {"block_id": 55}


@pytest.mark.parametrize("stage", ["doing", None])
def test_pull_from_work_needs_the_sender_to_mark_it_ready(stage: str | None) -> None:
    error = refused(
        NotReady,
        pull,
        "still being worked in Build",
        "mark it ready",
        item=item(state_id=BUILD.id, stage=stage, owner_id=OWNER),
        actor_role="reviewer",
    )
    assert error.slug == "not-ready" and error.fields == {}


def test_pull_lists_every_unmet_entry_criterion() -> None:
    error = refused(
        CriteriaUnmet,
        pull,
        "Review's entry criteria",
        "check “Reviewer named”; “Draft attached” first",
        item=item(**IN_BUILD_READY),
        actor_role="reviewer",
        unmet_entry=[ENTRY, ENTRY2],
    )
    assert error.slug == "criteria-unmet"
    assert error.fields == {
        "unmet": [
            {"criterion_id": 31, "text": "Reviewer named"},
            {"criterion_id": 32, "text": "Draft attached"},
        ]
    }


@pytest.mark.parametrize("wip", [3, 4])  # at the limit and already over it (limit lowered)
def test_pull_into_full_state_is_refused(wip: int) -> None:
    error = refused(
        WipLimitReached,
        pull,
        f"Build is at its WIP limit ({wip}/3)",
        "finish or hand off an item there before pulling TST-1",
        target_wip=wip,
    )
    assert error.slug == "wip-limit-reached"
    assert error.fields == {"state_id": BUILD.id, "wip": wip, "limit": 3}


def test_pull_with_room_left_needs_no_override() -> None:
    assert pull(target_wip=2, override_reason="just because") == (BUILD, None)


def test_pull_into_state_without_limit_is_never_full() -> None:
    unlimited = [BACKLOG, replace(BUILD, wip_limit=None), REVIEW, DONE]
    assert pull(states=unlimited, target_wip=10_000) == (unlimited[1], None)


def test_manager_override_goes_past_the_limit_with_the_reason() -> None:
    target, override = pull(actor_role="manager", target_wip=3, override_reason="  audit  ")
    assert target == BUILD
    assert override == Override("manager", "audit")


def test_blank_override_reason_is_no_override() -> None:
    refused(
        WipLimitReached,
        pull,
        "finish or hand off",
        actor_role="manager",
        target_wip=3,
        override_reason="   ",
    )


@pytest.mark.parametrize("role", ["member", "reviewer"])
def test_override_by_non_manager_is_insufficient_role(role: str) -> None:
    error = refused(
        InsufficientRole,
        pull,
        "only a manager can override",
        "Finish or hand off an item there first",
        item=item(**IN_BUILD_READY),
        actor_role=role,
        states=[BACKLOG, BUILD, replace(REVIEW, pull_role="member"), DONE],
        target_wip=2,
        override_reason="urgent",
    )
    assert error.fields == {"required_role": "manager"}


def test_expedite_exceeds_limits_when_the_board_allows_it() -> None:
    target, override = pull(item=item(class_of_service="expedite"), target_wip=3)
    assert target == BUILD
    assert override is not None and override.kind == "expedite"
    # Below the limit an expedite pull is an ordinary pull: nothing to record.
    assert pull(item=item(class_of_service="expedite"), target_wip=1) == (BUILD, None)


def test_expedite_respects_limits_when_the_board_says_so() -> None:
    error = refused(
        WipLimitReached,
        pull,
        "finish or hand off",
        item=item(class_of_service="expedite"),
        target_wip=3,
        expedite_exceeds_limits=False,
    )
    assert error.fields["wip"] == 3


@pytest.mark.parametrize(("doing", "limit"), [(2, 2), (5, 2)])
def test_personal_limit_reached(doing: int, limit: int) -> None:
    error = refused(
        PersonalWipLimitReached,
        pull,
        f"already doing {doing} items",
        f"personal limit {limit}",
        "finish one before pulling TST-1",
        actor_doing=doing,
        personal_limit=limit,
    )
    assert error.slug == "personal-wip-limit-reached"
    assert error.fields == {"wip": doing, "limit": limit}


@pytest.mark.parametrize(("doing", "limit"), [(1, 2), (50, None)])
def test_personal_limit_with_room_or_unset(doing: int, limit: int | None) -> None:
    assert pull(actor_doing=doing, personal_limit=limit) == (BUILD, None)


def test_pull_into_done_ignores_wip_and_personal_limit() -> None:
    target, override = pull(
        item=item(**IN_REVIEW_READY),
        actor_role="reviewer",
        target_wip=500,
        actor_doing=9,
        personal_limit=1,
    )
    assert (target, override) == (DONE, None)


def test_pull_checks_run_in_the_documented_order() -> None:
    # Blocked beats not-ready, not-ready beats criteria, criteria beat a full state.
    everything_wrong = item(state_id=BUILD.id, stage="doing", open_block_id=1)
    refused(
        ItemBlocked,
        pull,
        item=everything_wrong,
        actor_role="reviewer",
        target_wip=9,
        unmet_entry=[ENTRY],
    )
    refused(
        NotReady,
        pull,
        item=replace(everything_wrong, open_block_id=None),
        actor_role="reviewer",
        target_wip=9,
        unmet_entry=[ENTRY],
    )
    refused(
        CriteriaUnmet,
        pull,
        item=item(**IN_BUILD_READY),
        actor_role="reviewer",
        target_wip=9,
        unmet_entry=[ENTRY],
    )
    refused(WipLimitReached, pull, target_wip=3, actor_doing=9, personal_limit=1)


# ---------------------------------------------------------------- assignment: the personal limit


def assign(**kwargs: Any) -> Override | None:
    args: dict[str, Any] = {
        "item": item(**IN_BUILD_DOING),
        "new_owner_id": OTHER,
        "new_owner_name": "Olga",
        "actor_id": OTHER,
        "actor_role": "member",
        "owner_doing": 0,
        "personal_limit": 2,
    }
    args.update(kwargs)
    return rules.check_assignment(**args)


@pytest.mark.parametrize(("doing", "limit"), [(2, 2), (5, 2)])
def test_assigning_a_doing_item_to_yourself_obeys_the_personal_limit(
    doing: int, limit: int
) -> None:
    error = refused(
        PersonalWipLimitReached,
        assign,
        f"You are already doing {doing} items",
        f"personal limit {limit}",
        "finish one before taking on TST-1",
        owner_doing=doing,
        personal_limit=limit,
    )
    assert (error.slug, error.status) == ("personal-wip-limit-reached", 409)
    assert error.fields == {"wip": doing, "limit": limit}


def test_assigning_to_someone_else_names_them() -> None:
    error = refused(
        PersonalWipLimitReached,
        assign,
        "Olga is already doing 2 items",
        actor_id=OWNER,
        owner_doing=2,
    )
    assert error.fields == {"wip": 2, "limit": 2}


@pytest.mark.parametrize(
    "changes",
    [
        {"owner_doing": 1},  # room left
        {"owner_doing": 9, "personal_limit": None},  # no personal limit on the board
        {"owner_doing": 9, "item": item(**IN_BUILD_READY)},  # ready is not doing
        {"owner_doing": 9, "item": item()},  # an option in the backlog
        {"owner_doing": 9, "item": item(**IN_BUILD_DOING, done=True)},
        {"owner_doing": 9, "item": item(**IN_BUILD_DOING, discarded=True)},
        {"owner_doing": 9, "new_owner_id": None},  # unassigning frees a slot
        {"owner_doing": 9, "new_owner_id": OWNER},  # already theirs: nothing changes
    ],
)
def test_assignment_that_adds_nothing_to_a_full_limit_passes(changes: dict[str, Any]) -> None:
    assert assign(**changes) is None


def test_manager_override_assigns_past_the_personal_limit_with_the_reason() -> None:
    override = assign(actor_role="manager", owner_doing=2, override_reason="  audit week  ")
    assert override == Override("manager", "audit week")


def test_blank_override_reason_on_assignment_is_no_override() -> None:
    refused(
        PersonalWipLimitReached, assign, actor_role="manager", owner_doing=2, override_reason=" "
    )


@pytest.mark.parametrize("role", ["member", "reviewer"])
def test_assignment_override_by_non_manager_is_insufficient_role(role: str) -> None:
    error = refused(
        InsufficientRole,
        assign,
        "only a manager can override",
        actor_role=role,
        owner_doing=2,
        override_reason="urgent",
    )
    assert error.fields == {"required_role": "manager"}


def test_assignment_override_is_not_used_when_there_is_room() -> None:
    assert assign(actor_role="manager", owner_doing=1, override_reason="just because") is None


# ---------------------------------------------------------------- rule 2: mark ready / unready


def ready(**kwargs: Any) -> None:
    args: dict[str, Any] = {
        "item": item(**IN_BUILD_DOING),
        "state": BUILD,
        "actor_id": OWNER,
        "actor_role": "member",
        "unmet_exit": [],
    }
    args.update(kwargs)
    rules.check_mark_ready(**args)


@pytest.mark.parametrize(("actor_id", "role"), [(OWNER, "member"), (OTHER, "manager")])
def test_mark_ready_by_owner_or_manager(actor_id: int, role: str) -> None:
    ready(actor_id=actor_id, actor_role=role)


def test_mark_ready_by_someone_else_is_insufficient_role() -> None:
    error = refused(
        InsufficientRole, ready, "TST-1's owner or a manager", actor_id=OTHER, actor_role="reviewer"
    )
    assert error.fields == {"required_role": "manager"}


def test_mark_ready_by_viewer_needs_member() -> None:
    error = refused(InsufficientRole, ready, "Ask a manager", actor_role="viewer")
    assert error.fields == {"required_role": "member"}


@pytest.mark.parametrize(
    ("facts", "state", "where"),
    [
        (IN_BUILD_READY, BUILD, "ready in Build"),
        ({}, BACKLOG, "in the backlog"),
        ({"state_id": DONE.id, "done": True}, DONE, "done"),
        ({**IN_BUILD_DOING, "discarded": True}, BUILD, "discarded"),
    ],
)
def test_mark_ready_needs_an_item_being_worked(
    facts: dict[str, Any], state: StateFacts, where: str
) -> None:
    refused(
        InvalidMove,
        ready,
        "Only an item being worked (Doing)",
        f"TST-1 is {where}.",
        item=item(**facts),
        state=state,
        actor_role="manager",
    )


def test_mark_ready_of_blocked_item() -> None:
    error = refused(
        ItemBlocked, ready, "resolve its block", item=item(**IN_BUILD_DOING, open_block_id=9)
    )
    assert error.fields == {"block_id": 9}


def test_mark_ready_lists_unmet_exit_criteria() -> None:
    error = refused(
        CriteriaUnmet,
        ready,
        "Build's exit criteria",
        "check “Spell-checked” first",
        unmet_exit=[EXIT],
    )
    assert error.fields == {"unmet": [{"criterion_id": 21, "text": "Spell-checked"}]}


def unready(**kwargs: Any) -> None:
    args: dict[str, Any] = {
        "item": item(**IN_BUILD_READY),
        "state": BUILD,
        "actor_id": OWNER,
        "actor_role": "member",
    }
    args.update(kwargs)
    rules.check_unready(**args)


@pytest.mark.parametrize(("actor_id", "role"), [(OWNER, "member"), (OTHER, "manager")])
def test_unready_by_owner_or_manager(actor_id: int, role: str) -> None:
    unready(actor_id=actor_id, actor_role=role)


def test_unready_refusals() -> None:
    refused(
        InvalidMove,
        unready,
        "Only an item waiting in Ready",
        "doing in Build",
        item=item(**IN_BUILD_DOING),
    )
    refused(InvalidMove, unready, "in the backlog", item=item(), state=BACKLOG)
    other = refused(InsufficientRole, unready, "owner or a manager", actor_id=OTHER)
    assert other.fields == {"required_role": "manager"}
    viewer = refused(InsufficientRole, unready, "Ask a manager", actor_role="viewer")
    assert viewer.fields == {"required_role": "member"}


def test_unready_obeys_the_owners_personal_limit() -> None:
    """Taking back adds to the owner's doing work, as a pull would."""
    unready(owner_doing=1, personal_limit=2)
    unready(owner_doing=5, personal_limit=None)
    mine = refused(
        PersonalWipLimitReached, unready, "You are already doing 2", owner_doing=2, personal_limit=2
    )
    assert mine.fields == {"wip": 2, "limit": 2}
    refused(
        PersonalWipLimitReached,
        unready,
        "Its owner is already doing 3",
        actor_id=OTHER,
        actor_role="manager",
        owner_doing=3,
        personal_limit=3,
    )


# ---------------------------------------------------------------- rule 3: send back


def send_back(**kwargs: Any) -> tuple[StateFacts, Override | None]:
    args: dict[str, Any] = {
        "item": item(**IN_REVIEW_DOING),
        "states": STATES,
        "to_state_id": BUILD.id,
        "reason": "Figures do not add up",
        "actor_role": "reviewer",
        "target_wip": 0,
    }
    args.update(kwargs)
    return rules.check_send_back(**args)


@pytest.mark.parametrize("facts", [IN_REVIEW_DOING, IN_REVIEW_READY])
def test_send_back_to_an_earlier_work_state(facts: dict[str, Any]) -> None:
    assert send_back(item=item(**facts)) == (BUILD, None)


@pytest.mark.parametrize(
    ("facts", "to", "words"),
    [
        (IN_REVIEW_DOING, REVIEW.id, "earlier work state than Review"),  # same state
        (IN_REVIEW_DOING, BACKLOG.id, "earlier work state than Review"),  # not a work state
        (IN_BUILD_DOING, REVIEW.id, "earlier work state than Build"),  # later
        (IN_BUILD_DOING, BACKLOG.id, "earlier work state than Build"),
        ({}, BACKLOG.id, "not in one"),  # from the backlog
        ({"state_id": DONE.id, "done": True}, BUILD.id, "not in one"),
        ({**IN_REVIEW_DOING, "discarded": True}, BUILD.id, "not in one"),
        (IN_REVIEW_DOING, 99, "not on this item's board"),
    ],
)
def test_send_back_only_to_an_earlier_work_state(
    facts: dict[str, Any], to: int, words: str
) -> None:
    refused(InvalidMove, send_back, words, item=item(**facts), to_state_id=to, actor_role="manager")


@pytest.mark.parametrize("reason", ["", "   "])
def test_send_back_needs_a_reason(reason: str) -> None:
    error = refused(InvalidInput, send_back, "a reason is required", reason=reason)
    assert (error.slug, error.status) == ("validation", 422)


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_send_back_needs_the_current_state_pull_role(role: str) -> None:
    error = refused(InsufficientRole, send_back, "send work back from Review", actor_role=role)
    assert error.fields == {"required_role": "reviewer"}


def test_send_back_of_blocked_item() -> None:
    error = refused(
        ItemBlocked, send_back, "resolve its block", item=item(**IN_REVIEW_DOING, open_block_id=4)
    )
    assert error.fields == {"block_id": 4}


def test_send_back_respects_the_target_wip_limit() -> None:
    error = refused(
        WipLimitReached,
        send_back,
        "Build is at its WIP limit (3/3)",
        "before sending back TST-1",
        target_wip=3,
    )
    assert error.fields == {"state_id": BUILD.id, "wip": 3, "limit": 3}
    assert send_back(target_wip=3, actor_role="manager", override_reason="rework first") == (
        BUILD,
        Override("manager", "rework first"),
    )
    over = refused(
        InsufficientRole, send_back, "only a manager", target_wip=3, override_reason="please"
    )
    assert over.fields == {"required_role": "manager"}


# ---------------------------------------------------------------- rule 4: block / unblock


@pytest.mark.parametrize("facts", [{}, IN_BUILD_DOING, IN_REVIEW_READY])
def test_block_allowed(facts: dict[str, Any]) -> None:
    rules.check_block(item=item(**facts), actor_role="member", reason_on_board=True)


def test_block_refusals() -> None:
    check = rules.check_block
    viewer = refused(
        InsufficientRole,
        check,
        "Ask a manager",
        item=item(),
        actor_role="viewer",
        reason_on_board=True,
    )
    assert viewer.fields == {"required_role": "member"}
    refused(
        InvalidMove,
        check,
        "closed items cannot be blocked",
        item=item(done=True),
        actor_role="member",
        reason_on_board=True,
    )
    again = refused(
        AlreadyBlocked,
        check,
        "resolve or edit that block",
        item=item(open_block_id=12),
        actor_role="member",
        reason_on_board=True,
    )
    assert (again.slug, again.fields) == ("already-blocked", {"block_id": 12})
    refused(
        InvalidInput,
        check,
        "Choose one of this board's block reasons",
        item=item(),
        actor_role="member",
        reason_on_board=False,
    )


def test_unblock() -> None:
    rules.check_unblock(actor_role="member", already_resolved=False)
    viewer = refused(
        InsufficientRole,
        rules.check_unblock,
        "Ask a manager",
        actor_role="viewer",
        already_resolved=False,
    )
    assert viewer.fields == {"required_role": "member"}
    refused(
        InvalidMove,
        rules.check_unblock,
        "already resolved",
        actor_role="member",
        already_resolved=True,
    )


# ---------------------------------------------------------------- rule 5: criteria


@pytest.mark.parametrize(
    ("facts", "criterion"),
    [
        (IN_BUILD_DOING, EXIT),  # exit of the current state
        (IN_BUILD_READY, ENTRY),  # entry of the next state
        ({}, replace(EXIT, gate="entry")),  # from the backlog, Build's entry criteria
    ],
)
def test_criterion_of_current_exit_or_next_entry(
    facts: dict[str, Any], criterion: CriterionFacts
) -> None:
    rules.check_criterion(
        item=item(**facts), criterion=criterion, states=STATES, actor_role="member"
    )


@pytest.mark.parametrize(
    ("facts", "criterion"),
    [
        (IN_BUILD_DOING, replace(EXIT, gate="entry")),  # entry of the current state
        (IN_BUILD_DOING, replace(ENTRY, gate="exit")),  # exit of the next state
        ({}, ENTRY),  # entry of a state two steps ahead
        (IN_REVIEW_DOING, EXIT),  # exit of an earlier state
        ({"state_id": DONE.id}, replace(ENTRY, state_id=DONE.id)),  # no next state after done
    ],
)
def test_criterion_of_another_state_is_invalid(
    facts: dict[str, Any], criterion: CriterionFacts
) -> None:
    refused(
        InvalidMove,
        rules.check_criterion,
        f"“{criterion.text}” is not a criterion",
        item=item(**facts),
        criterion=criterion,
        states=STATES,
        actor_role="member",
    )


def test_criterion_refusals_for_viewer_and_closed_item() -> None:
    viewer = refused(
        InsufficientRole,
        rules.check_criterion,
        "Ask a manager",
        item=item(**IN_BUILD_DOING),
        criterion=EXIT,
        states=STATES,
        actor_role="viewer",
    )
    assert viewer.fields == {"required_role": "member"}
    refused(
        InvalidMove,
        rules.check_criterion,
        "closed",
        item=item(**IN_BUILD_DOING, done=True),
        criterion=EXIT,
        states=STATES,
        actor_role="manager",
    )


# ---------------------------------------------------------------- rule 6: version


def test_version() -> None:
    rules.check_version(given=4, current=4)
    error = refused(
        VersionConflict,
        rules.check_version,
        "you had version 3, it is now 4",
        "apply your change again",
        given=3,
        current=4,
    )
    assert (error.slug, error.status) == ("version-conflict", 409)
    assert error.fields == {"current_version": 4}


# ---------------------------------------------------------------- rule 7: discard


@pytest.mark.parametrize(
    ("facts", "state", "role"),
    [
        ({}, BACKLOG, "member"),
        (IN_BUILD_DOING, BUILD, "manager"),
        (IN_REVIEW_READY, REVIEW, "manager"),
    ],
)
def test_discard_allowed(facts: dict[str, Any], state: StateFacts, role: str) -> None:
    rules.check_discard(item=item(**facts), state=state, actor_role=role, reason="no longer needed")


@pytest.mark.parametrize(
    ("facts", "state", "role", "required"),
    [
        ({}, BACKLOG, "viewer", "member"),
        (IN_BUILD_DOING, BUILD, "member", "manager"),
        (IN_REVIEW_DOING, REVIEW, "reviewer", "manager"),
    ],
)
def test_discard_role(facts: dict[str, Any], state: StateFacts, role: str, required: str) -> None:
    error = refused(
        InsufficientRole,
        rules.check_discard,
        "Ask a manager",
        item=item(**facts),
        state=state,
        actor_role=role,
        reason="x",
    )
    assert error.fields == {"required_role": required}


def test_discard_refusals() -> None:
    refused(
        InvalidMove,
        rules.check_discard,
        "already closed",
        item=item(discarded=True),
        state=BACKLOG,
        actor_role="manager",
        reason="x",
    )
    error = refused(
        InvalidInput,
        rules.check_discard,
        "a reason is required",
        item=item(),
        state=BACKLOG,
        actor_role="member",
        reason="  ",
    )
    assert error.status == 422


# ---------------------------------------------------------------- rule 8: configuration


def test_delete_state() -> None:
    rules.check_delete_state(state=BUILD, item_count=0)
    error = refused(
        StateNotEmpty,
        rules.check_delete_state,
        "still holds 2 item(s)",
        "move them on or discard them first",
        state=BUILD,
        item_count=2,
    )
    assert (error.slug, error.fields) == ("state-not-empty", {"count": 2})
    for fixed in (BACKLOG, DONE):
        refused(
            InvalidMove, rules.check_delete_state, "cannot be deleted", state=fixed, item_count=0
        )


@pytest.mark.parametrize(
    "layout",
    [
        [("Backlog", "backlog"), ("Build", "work"), ("Done", "done")],
        [("Options", "backlog"), ("A", "work"), ("B", "work"), ("Shipped", "done")],
    ],
)
def test_state_layout_allowed(layout: list[tuple[str, str]]) -> None:
    rules.check_state_layout(layout)


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ([("Backlog", "backlog"), ("Done", "done")], "at least one work state"),
        ([("Build", "work"), ("Backlog", "backlog"), ("Done", "done")], "backlog state"),
        ([("B", "backlog"), ("B2", "backlog"), ("W", "work"), ("D", "done")], "backlog state"),
        ([("Backlog", "backlog"), ("Done", "done"), ("Build", "work")], "done state"),
        ([("B", "backlog"), ("D1", "done"), ("W", "work"), ("D", "done")], "done state"),
        ([("B", "backlog"), ("W", "work"), ("X", "other"), ("D", "done")], "must be a work state"),
        ([("B", "backlog"), ("Build", "work"), (" build ", "work"), ("D", "done")], "unique"),
    ],
)
def test_state_layout_refused(layout: list[tuple[str, str]], words: str) -> None:
    error = refused(InvalidInput, rules.check_state_layout, words, states=layout)
    assert error.status == 422


# ---------------------------------------------------------------- who acts next


def waiting(**kwargs: Any) -> str:
    args: dict[str, Any] = {
        "item": item(**IN_BUILD_DOING),
        "state": BUILD,
        "following": REVIEW,
        "following_wip": 0,
        "block_waiting_on": None,
        "block_reason": None,
        "owner_name": "Sam",
    }
    args.update(kwargs)
    return rules.waiting_for(**args)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"item": item(discarded=True)}, "Nobody: discarded"),
        ({"item": item(state_id=DONE.id, done=True), "state": DONE}, "Nobody: done"),
        (
            {
                "item": item(open_block_id=1, **IN_BUILD_DOING),
                "block_waiting_on": "Legal",
                "block_reason": "Dependency",
            },
            "Blocked: waiting on Legal",
        ),
        (
            {"item": item(open_block_id=1, **IN_BUILD_DOING), "block_reason": "Dependency"},
            "Blocked: waiting on Dependency",
        ),
        ({"item": item(open_block_id=1, **IN_BUILD_DOING)}, "Blocked: waiting on its block"),
        ({"item": item(), "state": BACKLOG, "following": BUILD}, "Waiting for commitment"),
        (
            {"item": item(**IN_BUILD_READY), "following_wip": 1},
            "Waiting for Review: reviewers pull (room for 1)",
        ),
        (
            {"item": item(**IN_BUILD_READY), "following_wip": 2},
            "Waiting for Review: reviewers pull (Review has no room)",
        ),
        (
            {"item": item(**IN_BUILD_READY), "following": replace(REVIEW, wip_limit=None)},
            "Waiting for Review: reviewers pull",
        ),
        (
            {
                "item": item(**IN_REVIEW_READY),
                "state": REVIEW,
                "following": DONE,
                "following_wip": 50,
            },
            "Waiting for Done: members pull",
        ),
        ({}, "Sam is working on it"),
        ({"owner_name": None}, "Unassigned is working on it"),
    ],
)
def test_waiting_for(kwargs: dict[str, Any], expected: str) -> None:
    assert waiting(**kwargs) == expected


# ---------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("role", "required", "expected"),
    [
        ("manager", "reviewer", True),
        ("reviewer", "reviewer", True),
        ("member", "reviewer", False),
        ("viewer", "member", False),
        (None, "viewer", False),
        ("owner", "viewer", False),  # an unknown role is no role
    ],
)
def test_role_at_least(role: str | None, required: str, expected: bool) -> None:
    assert rules.role_at_least(role, required) is expected


# ---------------- The non-raising twins (refusal functions) ----------------

ROLES = [None, "viewer", "member", "reviewer", "manager"]
ITEMS = [
    item(),
    item(**IN_BUILD_DOING),
    item(**IN_BUILD_READY),
    item(**IN_REVIEW_DOING),
    item(**IN_REVIEW_READY),
    item(**IN_BUILD_DOING, open_block_id=5),
    item(**IN_BUILD_READY, open_block_id=5),
    item(**IN_REVIEW_DOING, class_of_service="expedite"),
    item(state_id=DONE.id, done=True),
    item(**IN_BUILD_DOING, discarded=True),
    item(state_id=99),  # a state not on the board
]


def same_answer(check: Any, twin: Any, **kwargs: Any) -> bool:
    """The twin says None exactly when the check passes, else builds the very error it raises.
    Returns whether the action was allowed."""
    try:
        check(**kwargs)
    except FlowError as error:
        refusal = twin(**kwargs)
        assert refusal is not None, (check.__name__, kwargs)
        built = refusal()
        assert type(built) is type(error)
        assert built.detail == error.detail
        assert built.fields == error.fields
        return False
    assert twin(**kwargs) is None, (twin.__name__, kwargs)
    return True


@pytest.mark.parametrize("role", ROLES)
def test_pull_refusal_agrees_with_check_pull(role: str | None) -> None:
    allowed = 0
    for facts in ITEMS:
        for wip, doing, limit, unmet, override in [
            (0, 0, None, [], None),
            (3, 0, None, [], None),
            (3, 0, None, [], "urgent"),
            (0, 2, 2, [], None),
            (0, 0, None, [ENTRY], None),
        ]:
            for requested in (None, BUILD.id, REVIEW.id, 99):
                allowed += same_answer(
                    rules.check_pull,
                    rules.pull_refusal,
                    item=facts,
                    states=STATES,
                    actor_role=role,
                    target_wip=wip,
                    actor_doing=doing,
                    personal_limit=limit,
                    unmet_entry=unmet,
                    override_reason=override,
                    requested_state_id=requested,
                )
    if role in ("member", "reviewer", "manager"):
        assert allowed  # the cases cover both answers


def test_pull_refusal_defaults_ask_only_what_a_card_can_know() -> None:
    assert rules.pull_refusal(item=item(), states=STATES, actor_role="member") is None
    refusal = rules.pull_refusal(item=item(**IN_BUILD_DOING), states=STATES, actor_role="reviewer")
    assert refusal is not None and isinstance(refusal(), NotReady)


@pytest.mark.parametrize("role", ROLES)
def test_mark_ready_refusal_agrees(role: str | None) -> None:
    for facts in ITEMS:
        for state in (BACKLOG, BUILD, REVIEW, DONE):
            for actor in (OWNER, OTHER):
                for unmet in ([], [EXIT]):
                    same_answer(
                        rules.check_mark_ready,
                        rules.mark_ready_refusal,
                        item=facts,
                        state=state,
                        actor_id=actor,
                        actor_role=role,
                        unmet_exit=unmet,
                    )


@pytest.mark.parametrize("role", ROLES)
def test_send_back_refusal_agrees(role: str | None) -> None:
    for facts in ITEMS:
        for to in (BACKLOG.id, BUILD.id, REVIEW.id, DONE.id, 99):
            for reason in ("", "sums wrong"):
                for wip, override in [(0, None), (3, None), (3, "urgent")]:
                    same_answer(
                        rules.check_send_back,
                        rules.send_back_refusal,
                        item=facts,
                        states=STATES,
                        to_state_id=to,
                        reason=reason,
                        actor_role=role,
                        target_wip=wip,
                        override_reason=override,
                    )


@pytest.mark.parametrize("role", ROLES)
def test_block_unblock_and_discard_refusals_agree(role: str | None) -> None:
    for facts in ITEMS:
        for on_board in (True, False):
            same_answer(
                rules.check_block,
                rules.block_refusal,
                item=facts,
                actor_role=role,
                reason_on_board=on_board,
            )
        for state in (BACKLOG, BUILD, DONE):
            for reason in ("", "duplicate"):
                same_answer(
                    rules.check_discard,
                    rules.discard_refusal,
                    item=facts,
                    state=state,
                    actor_role=role,
                    reason=reason,
                )
    for resolved in (True, False):
        same_answer(
            rules.check_unblock,
            rules.unblock_refusal,
            actor_role=role,
            already_resolved=resolved,
        )


def test_capacity_refusal_returns_the_override_or_the_refusal() -> None:
    args: dict[str, Any] = {"target": BUILD, "expedite_exceeds_limits": True}
    assert (
        rules.capacity_refusal(
            item=item(), target_wip=2, actor_role="member", override_reason=None, **args
        )
        is None
    )
    found = rules.capacity_refusal(
        item=item(class_of_service="expedite"),
        target_wip=3,
        actor_role="member",
        override_reason=None,
        **args,
    )
    assert isinstance(found, Override) and found.kind == "expedite"
    found = rules.capacity_refusal(
        item=item(), target_wip=3, actor_role="manager", override_reason=" urgent ", **args
    )
    assert found == Override("manager", "urgent")
    found = rules.capacity_refusal(
        item=item(), target_wip=3, actor_role="member", override_reason="urgent", **args
    )
    assert callable(found) and isinstance(found(), InsufficientRole)
    found = rules.capacity_refusal(
        item=item(), target_wip=3, actor_role="manager", override_reason=None, **args
    )
    assert callable(found) and isinstance(found(), WipLimitReached)


def test_a_refusal_formats_nothing_until_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking "may I?" for a card builds no error (and no sentence) for a refused action."""
    built: list[str] = []
    original = FlowError.__init__

    def counting(self: FlowError, *args: Any, **kwargs: Any) -> None:
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(FlowError, "__init__", counting)
    blocked = item(**IN_BUILD_DOING, open_block_id=5)
    assert rules.pull_refusal(item=blocked, states=STATES, actor_role="viewer") is not None
    assert rules.block_refusal(item=blocked, actor_role="member") is not None
    assert (
        rules.send_back_refusal(
            item=blocked, states=STATES, to_state_id=BUILD.id, actor_role="member"
        )
        is not None
    )
    assert (
        rules.mark_ready_refusal(item=blocked, state=BUILD, actor_id=OTHER, actor_role="member")
        is not None
    )
    assert built == []
