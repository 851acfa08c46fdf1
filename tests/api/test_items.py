"""Items through the API: shapes, edits, and every flow rule with its refusal slug."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import Api, problem

ITEM_KEYS = {
    "id", "key", "board_id", "title", "description", "class_of_service", "due_date", "state_id",
    "stage", "owner_id", "created_at", "committed_at", "done_at", "discarded_at", "blocked",
    "block", "criteria", "waiting_for", "version",
}  # fmt: skip
BLOCK_KEYS = {
    "id", "item_id", "reason_id", "reason", "note", "waiting_on", "opened_at", "opened_by",
    "resolved_at", "resolved_by", "resolution",
}  # fmt: skip
CRITERION_KEYS = {"criterion_id", "text", "gate", "state_id", "met", "met_by", "met_at"}
EVENT_KEYS = {
    "id", "board_id", "item_id", "type", "actor_id", "at", "from_state_id", "to_state_id", "data",
}  # fmt: skip


def events(api: Api, item_id: int) -> list[dict[str, Any]]:
    return api.ok(api.get("viewer", f"/items/{item_id}/events"))


def uid(api: Api, role: str) -> int:
    return api.seed.user(role).id


def add_criterion(api: Api, state: str, gate: str, text: str) -> int:
    body = {"text": text, "gate": gate}
    return api.ok(api.post("manager", f"/states/{api.state(state)}/criteria", body), 201)["id"]


# --- create, read, list, edit --------------------------------------------------------------


def test_create_item_lands_in_the_backlog(api: Api) -> None:
    body = {"title": "  Write   the policy ", "description": "v2", "due_date": "2026-12-24"}
    response = api.post("member", f"/boards/{api.board_id}/items", body)
    item = api.ok(response, 201)
    assert response.headers["location"] == f"/api/v1/items/{item['id']}"
    assert set(item) == ITEM_KEYS
    assert item == {
        **item,
        "key": "TST-1", "board_id": api.board_id, "title": "Write the policy", "description": "v2",
        "class_of_service": "standard", "due_date": "2026-12-24", "state_id": api.state("Backlog"),
        "stage": None, "owner_id": None, "committed_at": None, "done_at": None,
        "discarded_at": None, "blocked": False, "block": None, "criteria": [],
        "waiting_for": "Waiting for commitment", "version": 1,
    }  # fmt: skip
    assert api.ok(api.get("viewer", f"/items/{item['id']}")) == item
    assert api.new_item(class_of_service="expedite")["key"] == "TST-2"
    assert [e["type"] for e in events(api, item["id"])] == ["created"]


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_title_needs_1_to_200_characters_after_trimming(api: Api, title: str) -> None:
    response = api.post("member", f"/boards/{api.board_id}/items", {"title": title})
    assert problem(response, 422, "validation")["errors"][0]["loc"] == ["body", "title"]


def test_title_of_200_characters_with_spaces_around_is_accepted(api: Api) -> None:
    assert len(api.new_item(title="  " + "x" * 200 + "  ")["title"]) == 200


def test_a_full_backlog_refuses_new_demand(api: Api) -> None:
    api.ok(api.patch("manager", f"/states/{api.state('Backlog')}", {"wip_limit": 1}))
    api.new_item()
    body = problem(
        api.post("member", f"/boards/{api.board_id}/items", {"title": "More"}),
        409,
        "wip-limit-reached",
    )
    assert (body["state_id"], body["wip"], body["limit"]) == (api.state("Backlog"), 1, 1)


def test_list_filters(api: Api) -> None:
    option = api.new_item(title="Budget memo")
    mine = api.item_in("build", owner="member")
    theirs = api.item_in("build", owner="member2")
    done = api.item_in("done")
    api.ok(api.post("member", f"/items/{theirs['id']}/blocks", {"reason_id": api.reason_id()}), 201)
    path = f"/boards/{api.board_id}/items"

    def ids(**params: Any) -> list[int]:
        return [i["id"] for i in api.ok(api.get("viewer", path, **params))]

    assert ids() == [option["id"], mine["id"], theirs["id"]]
    assert ids(include_closed=True) == [option["id"], mine["id"], theirs["id"], done["id"]]
    assert ids(state_id=api.state("Build")) == [mine["id"], theirs["id"]]
    assert ids(owner_id=uid(api, "member2")) == [theirs["id"]]
    assert ids(blocked=True) == [theirs["id"]]
    assert ids(blocked=False) == [option["id"], mine["id"]]
    assert ids(q="budget") == ids(q="TST-1") == [option["id"]]
    listed = api.ok(api.get("viewer", path, blocked=True))[0]
    assert listed == api.ok(api.get("viewer", f"/items/{theirs['id']}"))


def test_edit_changes_only_the_fields_sent(api: Api) -> None:
    item = api.new_item(description="first", due_date="2026-12-24")
    path = f"/items/{item['id']}"
    edited = api.ok(api.patch("member", path, {"version": 1, "title": "Renamed"}))
    assert (edited["title"], edited["description"], edited["due_date"]) == (
        "Renamed",
        "first",
        "2026-12-24",
    )
    assert edited["version"] == 2
    cleared = api.ok(
        api.patch(
            "member", path, {"version": 2, "due_date": None, "class_of_service": "fixed_date"}
        )
    )
    assert (cleared["due_date"], cleared["class_of_service"], cleared["title"]) == (
        None,
        "fixed_date",
        "Renamed",
    )
    assigned = api.ok(api.patch("member", path, {"version": 3, "owner_id": uid(api, "member2")}))
    assert assigned["owner_id"] == uid(api, "member2")
    types = [e["type"] for e in events(api, item["id"])]
    assert types == ["created", "edited", "edited", "assigned"]
    assert events(api, item["id"])[1]["data"]["changes"] == {
        "title": ["Write the policy", "Renamed"]
    }


def test_a_stale_version_is_409_with_the_current_version(api: Api) -> None:
    item = api.new_item()
    api.ok(api.patch("member", f"/items/{item['id']}", {"version": 1, "title": "Mine"}))
    body = problem(
        api.patch("member2", f"/items/{item['id']}", {"version": 1, "title": "Theirs"}),
        409,
        "version-conflict",
    )
    assert body["current_version"] == 2
    assert api.ok(api.get("member", f"/items/{item['id']}"))["title"] == "Mine"


@pytest.mark.parametrize(
    "body",
    [
        {"title": "No version"},
        {"version": 1, "state_id": 1},
        {"version": 1, "stage": "ready"},
        {"version": 1, "board_id": 99},
        {"version": 1, "key": "TST-99"},
        {"version": 1, "title": None},
        {"version": 1, "class_of_service": "urgent"},
        {"version": "1", "title": "x"},
    ],
)
def test_edit_input_that_is_not_allowed_is_422(api: Api, body: dict[str, Any]) -> None:
    item = api.new_item()
    problem(api.patch("member", f"/items/{item['id']}", body), 422, "validation")


def test_owner_must_be_a_member_of_the_board(api: Api) -> None:
    item = api.new_item()
    for role in ("viewer", "outsider"):
        body = {"version": 1, "owner_id": uid(api, role)}
        problem(api.patch("member", f"/items/{item['id']}", body), 422, "validation")


# --- pull, WIP limits, personal limit ---------------------------------------------------


def test_pull_commits_an_option_to_the_puller(api: Api) -> None:
    item = api.new_item()
    pulled = api.ok(api.post("member", f"/items/{item['id']}/pull"))
    assert (pulled["state_id"], pulled["stage"], pulled["owner_id"]) == (
        api.state("Build"),
        "doing",
        uid(api, "member"),
    )
    assert pulled["committed_at"] is not None and pulled["version"] == 2
    assert pulled["waiting_for"] == "Sam is working on it"
    event = events(api, item["id"])[-1]
    assert set(event) == EVENT_KEYS
    assert (event["type"], event["from_state_id"], event["to_state_id"], event["actor_id"]) == (
        "pulled", api.state("Backlog"), api.state("Build"), uid(api, "member"),
    )  # fmt: skip


def test_pull_into_a_full_state_is_refused_with_its_numbers(api: Api) -> None:
    for _ in range(3):
        api.item_in("build")
    option = api.new_item()
    body = problem(api.post("member", f"/items/{option['id']}/pull"), 409, "wip-limit-reached")
    assert (body["state_id"], body["wip"], body["limit"]) == (api.state("Build"), 3, 3)
    refused = problem(
        api.post("member", f"/items/{option['id']}/pull", {"override_reason": "urgent"}),
        403,
        "insufficient-role",
    )
    assert refused["required_role"] == "manager"


def test_manager_override_is_recorded_as_a_wip_override_event(api: Api) -> None:
    for _ in range(3):
        api.item_in("build")
    option = api.new_item()
    pulled = api.ok(
        api.post("manager", f"/items/{option['id']}/pull", {"override_reason": "Audit on Monday"})
    )
    assert pulled["state_id"] == api.state("Build")
    override = events(api, option["id"])[-1]
    assert override["type"] == "wip_override" and override["to_state_id"] == api.state("Build")
    assert override["data"] == {
        "kind": "manager",
        "reason": "Audit on Monday",
        "wip": 3,
        "limit": 3,
    }
    build = api.ok(api.get("viewer", f"/boards/{api.board_id}"))["states"][1]
    assert (build["wip"], build["wip_limit"]) == (4, 3)


@pytest.mark.parametrize("board_allows", [True, False])
def test_expedite_items_exceed_limits_when_the_board_allows(api: Api, board_allows: bool) -> None:
    api.ok(
        api.patch("manager", f"/boards/{api.board_id}", {"expedite_exceeds_limits": board_allows})
    )
    for _ in range(3):
        api.item_in("build")
    urgent = api.new_item(class_of_service="expedite")
    response = api.post("member", f"/items/{urgent['id']}/pull")
    if board_allows:
        assert api.ok(response)["state_id"] == api.state("Build")
        assert events(api, urgent["id"])[-1]["data"]["kind"] == "expedite"
    else:
        problem(response, 409, "wip-limit-reached")


def test_personal_wip_limit(api: Api) -> None:
    api.ok(api.patch("manager", f"/boards/{api.board_id}", {"personal_wip_limit": 1}))
    api.item_in("build", owner="member")
    second = api.new_item()
    body = problem(
        api.post("member", f"/items/{second['id']}/pull"), 409, "personal-wip-limit-reached"
    )
    assert (body["wip"], body["limit"]) == (1, 1)
    api.ok(api.post("member2", f"/items/{second['id']}/pull"))


def test_pull_refusals_not_ready_blocked_and_invalid_moves(api: Api) -> None:
    doing = api.item_in("build")
    problem(api.post("reviewer", f"/items/{doing['id']}/pull"), 409, "not-ready")
    option = api.new_item()
    skip = {"to_state_id": api.state("Review")}
    problem(api.post("member", f"/items/{option['id']}/pull", skip), 409, "invalid-move")
    block = api.ok(
        api.post("member", f"/items/{option['id']}/blocks", {"reason_id": api.reason_id()}), 201
    )
    body = problem(api.post("member", f"/items/{option['id']}/pull"), 409, "item-blocked")
    assert body["block_id"] == block["id"]
    done = api.item_in("done")
    problem(api.post("manager", f"/items/{done['id']}/pull"), 409, "invalid-move")


# --- ready, unready, handoff, delivery -------------------------------------------------------


def test_mark_ready_hand_off_and_deliver(api: Api) -> None:
    item = api.item_in("build")
    problem(api.post("member2", f"/items/{item['id']}/ready"), 403, "insufficient-role")
    ready = api.ok(api.post("member", f"/items/{item['id']}/ready"))
    assert ready["stage"] == "ready"
    assert ready["waiting_for"] == "Waiting for Review: reviewers pull (room for 2)"
    problem(api.post("member", f"/items/{item['id']}/pull"), 403, "insufficient-role")
    review = api.ok(api.post("reviewer", f"/items/{item['id']}/pull"))
    assert (review["state_id"], review["stage"], review["owner_id"]) == (
        api.state("Review"),
        "doing",
        uid(api, "reviewer"),
    )
    done = api.ok(api.post("reviewer", f"/items/{item['id']}/ready"))
    assert (done["state_id"], done["stage"], done["owner_id"]) == (
        api.state("Done"),
        None,
        uid(api, "reviewer"),
    )
    assert done["done_at"] is not None and done["waiting_for"] == "Nobody: done"
    assert [e["type"] for e in events(api, item["id"])] == [
        "created", "pulled", "marked_ready", "pulled", "marked_ready", "completed",
    ]  # fmt: skip


def test_unready_takes_an_unpulled_handoff_back(api: Api) -> None:
    item = api.item_in("build-ready")
    back = api.ok(api.post("member", f"/items/{item['id']}/unready"))
    assert back["stage"] == "doing"
    problem(api.post("member", f"/items/{item['id']}/unready"), 409, "invalid-move")
    problem(api.post("member", f"/items/{api.new_item()['id']}/ready"), 409, "invalid-move")


# --- send back --------------------------------------------------------------------------------


def test_send_back_returns_to_the_previous_owner(api: Api) -> None:
    item = api.item_in("review", owner="member2")
    body = {"to_state_id": api.state("Build"), "reason": "Sources missing"}
    problem(api.post("member2", f"/items/{item['id']}/send-back", body), 403, "insufficient-role")
    back = api.ok(api.post("reviewer", f"/items/{item['id']}/send-back", body))
    assert (back["state_id"], back["stage"], back["owner_id"]) == (
        api.state("Build"),
        "doing",
        uid(api, "member2"),
    )
    event = events(api, item["id"])[-1]
    assert (event["type"], event["from_state_id"], event["to_state_id"]) == (
        "sent_back",
        api.state("Review"),
        api.state("Build"),
    )
    assert event["data"]["reason"] == "Sources missing"


@pytest.mark.parametrize(
    ("to", "reason", "status", "slug"),
    [
        ("Backlog", "again", 409, "invalid-move"),  # not a work state
        ("Review", "again", 409, "invalid-move"),  # not earlier
        ("Build", "", 422, "validation"),  # a reason is required
    ],
)
def test_send_back_refusals(api: Api, to: str, reason: str, status: int, slug: str) -> None:
    item = api.item_in("review")
    body = {"to_state_id": api.state(to), "reason": reason}
    problem(api.post("reviewer", f"/items/{item['id']}/send-back", body), status, slug)


def test_send_back_into_a_full_state_needs_room(api: Api) -> None:
    item = api.item_in("review")
    for _ in range(3):
        api.item_in("build", owner="member2")
    body = {"to_state_id": api.state("Build"), "reason": "Rework"}
    refused = problem(
        api.post("reviewer", f"/items/{item['id']}/send-back", body), 409, "wip-limit-reached"
    )
    assert (refused["wip"], refused["limit"]) == (3, 3)
    override = {**body, "override_reason": "Small fix"}
    assert api.ok(api.post("manager", f"/items/{item['id']}/send-back", override))[
        "state_id"
    ] == api.state("Build")


# --- discard ---------------------------------------------------------------------------------


def test_discard_rules(api: Api) -> None:
    option = api.new_item()
    gone = api.ok(api.post("member", f"/items/{option['id']}/discard", {"reason": "Duplicate"}))
    assert gone["discarded_at"] is not None and gone["waiting_for"] == "Nobody: discarded"
    problem(
        api.post("manager", f"/items/{option['id']}/discard", {"reason": "again"}),
        409,
        "invalid-move",
    )
    committed = api.item_in("build")
    reason_id = api.reason_id()
    api.ok(api.post("member", f"/items/{committed['id']}/blocks", {"reason_id": reason_id}), 201)
    refused = problem(
        api.post("member", f"/items/{committed['id']}/discard", {"reason": "x"}),
        403,
        "insufficient-role",
    )
    assert refused["required_role"] == "manager"
    problem(
        api.post("manager", f"/items/{committed['id']}/discard", {"reason": " "}), 422, "validation"
    )
    closed = api.ok(
        api.post("manager", f"/items/{committed['id']}/discard", {"reason": "Cancelled"})
    )
    assert closed["blocked"] is False and closed["discarded_at"] is not None
    assert api.ok(api.get("viewer", f"/boards/{api.board_id}/items")) == []
    assert len(api.ok(api.get("viewer", f"/boards/{api.board_id}/items", include_closed=True))) == 2


# --- blocks ----------------------------------------------------------------------------------


def test_block_and_resolve(api: Api) -> None:
    item = api.item_in("build")
    body = {
        "reason_id": api.reason_id("Waiting for decision"),
        "note": "Board meets Tuesday",
        "waiting_on": "CFO",
    }
    response = api.post("member", f"/items/{item['id']}/blocks", body)
    block = api.ok(response, 201)
    assert response.headers["location"] == f"/api/v1/blocks/{block['id']}"
    assert set(block) == BLOCK_KEYS
    assert block == {
        **block, "item_id": item["id"], "reason": "Waiting for decision",
        "note": "Board meets Tuesday", "waiting_on": "CFO", "opened_by": uid(api, "member"),
        "resolved_at": None, "resolved_by": None, "resolution": "",
    }  # fmt: skip
    blocked = api.ok(api.get("viewer", f"/items/{item['id']}"))
    assert blocked["blocked"] is True and blocked["block"] == block
    assert blocked["waiting_for"] == "Blocked: waiting on CFO"
    again = problem(
        api.post("member2", f"/items/{item['id']}/blocks", body), 409, "already-blocked"
    )
    assert again["block_id"] == block["id"]
    refused = problem(api.post("member", f"/items/{item['id']}/ready"), 409, "item-blocked")
    assert refused["block_id"] == block["id"]
    resolved = api.ok(api.post("member2", f"/blocks/{block['id']}/resolve", {"note": "Approved"}))
    assert (resolved["resolved_by"], resolved["resolution"]) == (uid(api, "member2"), "Approved")
    assert resolved["resolved_at"] is not None
    assert api.ok(api.get("viewer", f"/blocks/{block['id']}")) == resolved
    problem(api.post("member", f"/blocks/{block['id']}/resolve"), 409, "invalid-move")
    assert api.ok(api.get("viewer", f"/items/{item['id']}"))["block"] is None
    types = [e["type"] for e in events(api, item["id"])]
    assert types[-2:] == ["blocked", "unblocked"]


def test_block_reason_must_belong_to_the_board(api: Api) -> None:
    other = api.ok(api.post("admin", "/boards", {"name": "Other", "key": "OTH"}), 201)
    item = api.new_item()
    body = {"reason_id": other["block_reasons"][0]["id"]}
    problem(api.post("member", f"/items/{item['id']}/blocks", body), 422, "validation")


# --- criteria --------------------------------------------------------------------------------


def test_criteria_gate_pulls_and_handoffs(api: Api) -> None:
    build_entry = add_criterion(api, "Build", "entry", "Owner named")
    build_exit = add_criterion(api, "Build", "exit", "Draft complete")
    review_entry = add_criterion(api, "Review", "entry", "Self-check done")
    item = api.new_item()
    # In the backlog: the entry criteria of Build only.
    assert [c["criterion_id"] for c in item["criteria"]] == [build_entry]
    assert set(item["criteria"][0]) == CRITERION_KEYS
    body = problem(api.post("member", f"/items/{item['id']}/pull"), 409, "criteria-unmet")
    assert body["unmet"] == [{"criterion_id": build_entry, "text": "Owner named"}]
    problem(
        api.put("member", f"/items/{item['id']}/criteria/{build_exit}", {"met": True}),
        409,
        "invalid-move",
    )
    checked = api.ok(
        api.put("member", f"/items/{item['id']}/criteria/{build_entry}", {"met": True})
    )
    assert checked["criteria"][0] == {
        **checked["criteria"][0], "met": True, "met_by": uid(api, "member"), "gate": "entry",
        "state_id": api.state("Build"),
    }  # fmt: skip
    assert checked["criteria"][0]["met_at"] is not None
    pulled = api.ok(api.post("member", f"/items/{item['id']}/pull"))
    # In Build: its exit criteria and Review's entry criteria, no longer Build's entry.
    assert [(c["criterion_id"], c["gate"]) for c in pulled["criteria"]] == [
        (build_exit, "exit"),
        (review_entry, "entry"),
    ]
    problem(
        api.put("member", f"/items/{item['id']}/criteria/{build_entry}", {"met": False}),
        409,
        "invalid-move",
    )
    unmet = problem(api.post("member", f"/items/{item['id']}/ready"), 409, "criteria-unmet")[
        "unmet"
    ]
    assert unmet == [{"criterion_id": build_exit, "text": "Draft complete"}]
    api.ok(api.put("member", f"/items/{item['id']}/criteria/{build_exit}", {"met": True}))
    api.ok(api.put("member", f"/items/{item['id']}/criteria/{build_exit}", {"met": True}))  # no-op
    api.ok(api.put("member", f"/items/{item['id']}/criteria/{build_exit}", {"met": False}))
    problem(api.post("member", f"/items/{item['id']}/ready"), 409, "criteria-unmet")
    api.ok(api.put("member", f"/items/{item['id']}/criteria/{build_exit}", {"met": True}))
    api.ok(api.post("member", f"/items/{item['id']}/ready"))
    types = [e["type"] for e in events(api, item["id"]) if e["type"].startswith("criterion")]
    assert types == ["criterion_met", "criterion_met", "criterion_unmet", "criterion_met"]
    problem(
        api.put("viewer", f"/items/{item['id']}/criteria/{review_entry}", {"met": True}),
        403,
        "insufficient-role",
    )
    problem(
        api.put("member", f"/items/{item['id']}/criteria/{review_entry}", {"met": "yes"}),
        422,
        "validation",
    )


def test_criterion_of_another_board_is_404(api: Api) -> None:
    other = api.ok(
        api.post(
            "admin", "/boards", {"name": "Other", "key": "OTH", "template": "document-review"}
        ),
        201,
    )
    foreign = other["states"][1]["criteria"][0]["id"]
    item = api.new_item()
    problem(
        api.put("member", f"/items/{item['id']}/criteria/{foreign}", {"met": True}),
        404,
        "not-found",
    )


# --- comments and history ---------------------------------------------------------------------


def test_comments(api: Api) -> None:
    item = api.new_item()
    path = f"/items/{item['id']}/comments"
    response = api.post("member", path, {"body": " Looks good "})
    comment = api.ok(response, 201)
    assert response.headers["location"] == f"/api/v1{path}"
    assert comment == {
        **comment, "item_id": item["id"], "author_id": uid(api, "member"), "author_name": "Sam",
        "body": "Looks good",
    }  # fmt: skip
    assert api.ok(api.get("viewer", path)) == [comment]
    problem(api.post("viewer", path, {"body": "hi"}), 403, "insufficient-role")
    problem(api.post("member", path, {"body": "  "}), 422, "validation")
    assert events(api, item["id"])[-1]["type"] == "commented"


def test_board_events_in_id_order_after_an_id(api: Api) -> None:
    item = api.item_in("build-ready")
    path = f"/boards/{api.board_id}/events"
    everything = api.ok(api.get("viewer", path, limit=1000))
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids) and all(set(e) == EVENT_KEYS for e in everything)
    assert everything[0]["type"] == "board_created"
    mine = [e["type"] for e in everything if e["item_id"] == item["id"]]
    assert mine == ["created", "pulled", "marked_ready"]
    assert [e["id"] for e in api.ok(api.get("viewer", path, after_id=ids[2], limit=2))] == ids[3:5]
    assert api.ok(api.get("viewer", path, after_id=ids[-1])) == []
    problem(api.get("viewer", path, limit=1001), 422, "validation")
