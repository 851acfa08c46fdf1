"""Assigning a doing item obeys the board's personal WIP limit like a pull (issue 7, point 8):
`PATCH /items/{item_id}` with `owner_id`, and the HTML edit form, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import Api, problem
from tests.web.helpers import htmx_headers, sign_in


def uid(api: Api, role: str) -> int:
    return api.seed.user(role).id


def events(api: Api, item_id: int) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api.ok(api.get("viewer", f"/items/{item_id}/events"))
    return result


def personal_limit(api: Api, limit: int | None) -> None:
    api.ok(api.patch("manager", f"/boards/{api.board_id}", {"personal_wip_limit": limit}))


def assign(api: Api, by: str, item: dict[str, Any], owner: str, **extra: Any) -> Any:
    body = {"version": item["version"], "owner_id": uid(api, owner), **extra}
    return api.patch(by, f"/items/{item['id']}", body)


def test_assigning_a_doing_item_to_yourself_at_the_limit_is_refused(api: Api) -> None:
    personal_limit(api, 1)
    api.item_in("build", owner="member")
    theirs = api.item_in("build", owner="member2")
    body = problem(assign(api, "member", theirs, "member"), 409, "personal-wip-limit-reached")
    assert (body["wip"], body["limit"]) == (1, 1)
    assert "You are already doing 1 items" in body["detail"]
    # Nothing changed: same owner, same version, no `assigned` event.
    after = api.ok(api.get("member", f"/items/{theirs['id']}"))
    assert (after["owner_id"], after["version"]) == (uid(api, "member2"), theirs["version"])
    assert "assigned" not in [e["type"] for e in events(api, theirs["id"])]


def test_assigning_to_someone_else_at_their_limit_is_refused_and_names_them(api: Api) -> None:
    personal_limit(api, 1)
    api.item_in("build", owner="member2")
    mine = api.item_in("build", owner="member")
    body = problem(assign(api, "member", mine, "member2"), 409, "personal-wip-limit-reached")
    assert "Max is already doing 1 items" in body["detail"]


def test_assignment_with_room_left_passes_and_then_fills_the_limit(api: Api) -> None:
    personal_limit(api, 2)
    api.item_in("build", owner="member")
    first, second = api.item_in("build", owner="member2"), api.item_in("build", owner="member2")
    moved = api.ok(assign(api, "member", first, "member"))
    assert moved["owner_id"] == uid(api, "member")
    assert events(api, first["id"])[-1]["type"] == "assigned"
    body = problem(assign(api, "member", second, "member"), 409, "personal-wip-limit-reached")
    assert (body["wip"], body["limit"]) == (2, 2)


@pytest.mark.parametrize("where", ["backlog", "build-ready", "done"])
def test_items_not_being_worked_are_assigned_freely(api: Api, where: str) -> None:
    personal_limit(api, 1)
    api.item_in("build", owner="member")
    item = api.item_in(where, owner="member2")
    assert api.ok(assign(api, "member", item, "member"))["owner_id"] == uid(api, "member")


def test_without_a_personal_limit_assignment_is_free(api: Api) -> None:
    for _ in range(2):
        api.item_in("build", owner="member")
    theirs = api.item_in("build", owner="member2")
    assert api.ok(assign(api, "member", theirs, "member"))["owner_id"] == uid(api, "member")


def test_manager_override_assigns_past_the_limit_and_is_recorded(api: Api) -> None:
    personal_limit(api, 1)
    api.item_in("build", owner="member")
    theirs = api.item_in("build", owner="member2")
    moved = api.ok(assign(api, "manager", theirs, "member", override_reason=" Max is on leave "))
    assert moved["owner_id"] == uid(api, "member")
    assigned, override = events(api, theirs["id"])[-2:]
    assert assigned["type"] == "assigned"
    assert override["type"] == "wip_override"
    assert (override["actor_id"], override["to_state_id"]) == (
        uid(api, "manager"),
        api.state("Build"),
    )
    assert override["data"] == {
        "kind": "manager",
        "reason": "Max is on leave",
        "wip": 1,
        "limit": 1,
        "personal": True,
        "owner_id": uid(api, "member"),
    }


def test_override_by_a_member_is_insufficient_role(api: Api) -> None:
    personal_limit(api, 1)
    api.item_in("build", owner="member")
    theirs = api.item_in("build", owner="member2")
    body = problem(
        assign(api, "member", theirs, "member", override_reason="please"),
        403,
        "insufficient-role",
    )
    assert body["required_role"] == "manager"


def test_override_reason_with_room_left_records_no_override(api: Api) -> None:
    personal_limit(api, 2)
    theirs = api.item_in("build", owner="member2")
    api.ok(assign(api, "manager", theirs, "member", override_reason="just because"))
    assert "wip_override" not in [e["type"] for e in events(api, theirs["id"])]


def test_override_reason_is_validated(api: Api) -> None:
    theirs = api.item_in("build", owner="member2")
    problem(assign(api, "manager", theirs, "member", override_reason="   "), 422, "validation")
    problem(assign(api, "manager", theirs, "member", override_reason="x" * 501), 422, "validation")


def test_html_edit_form_obeys_the_personal_limit(api: Api, client: TestClient) -> None:
    personal_limit(api, 1)
    api.item_in("build", owner="member")
    theirs = api.item_in("build", owner="member2")
    sign_in(client, api.seed.user("member"))
    response = client.post(
        f"/items/{theirs['id']}/edit",
        data={"version": str(theirs["version"]), "owner_id": str(uid(api, "member"))},
        headers=htmx_headers(client),
    )
    assert response.status_code == 409
    assert "You are already doing 1 items on this board (personal limit 1)" in response.text
    after = api.ok(api.get("member", f"/items/{theirs['id']}"))
    assert after["owner_id"] == uid(api, "member2")


def test_taking_back_a_ready_item_obeys_the_personal_limit(api: Api) -> None:
    """Mark ready, pull another, take the first back: that must not exceed the limit."""
    personal_limit(api, 1)
    first = api.item_in("build-ready", owner="member")
    api.item_in("build", owner="member")
    body = problem(
        api.post("member", f"/items/{first['id']}/unready"), 409, "personal-wip-limit-reached"
    )
    assert (body["wip"], body["limit"]) == (1, 1)
    assert api.ok(api.get("member", f"/items/{first['id']}"))["stage"] == "ready"
    personal_limit(api, 2)
    assert api.ok(api.post("member", f"/items/{first['id']}/unready"))["stage"] == "doing"


def test_a_deactivated_account_cannot_be_given_work(api: Api) -> None:
    mine = api.item_in("build", owner="member")
    api.ok(api.patch("admin", f"/users/{uid(api, 'member2')}", {"is_active": False}))
    body = problem(assign(api, "manager", mine, "member2"), 422, "validation")
    assert "deactivated" in body["detail"]
    assert api.ok(api.get("member", f"/items/{mine['id']}"))["owner_id"] == uid(api, "member")


def test_the_timeline_names_a_personal_override_as_such(api: Api, client: TestClient) -> None:
    personal_limit(api, 1)
    api.item_in("build", owner="member")
    theirs = api.item_in("build", owner="member2")
    api.ok(assign(api, "manager", theirs, "member", override_reason="Max is on leave"))
    sign_in(client, api.seed.user("viewer"))
    page = client.get(f"/items/{theirs['id']}")
    assert page.status_code == 200
    name = api.seed.user("member").name
    assert f"went past {name}’s personal WIP limit" in page.text.replace("&#39;", "’").replace(
        "'", "’"
    )
    assert "Build’s WIP limit" not in page.text.replace("&#39;", "’").replace("'", "’")
