"""GET /api/v1/audit (site admins) and the events the rest of the app records into it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import Api, problem
from tests.factories import PASSWORD

FIELDS = {"id", "at", "type", "actor_id", "ip", "board_id", "data"}


def trail(api: Api, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.ok(api.get("admin", "/audit", **params))
    return found


def of_type(api: Api, type: str) -> list[dict[str, Any]]:
    return trail(api, type=type, limit=1000)


def test_admins_read_the_trail_in_id_order_with_every_field(api: Api) -> None:
    api.client.post("/api/v1/auth/token", data={"username": "x@example.org", "password": "nope"})
    events = trail(api)
    assert events, "the seed's memberships and the admin's sign-in are recorded"
    assert all(set(event) == FIELDS for event in events)
    ids = [event["id"] for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    signed_in = [e for e in events if e["type"] == "signed_in"]
    assert signed_in[0]["actor_id"] == api.seed.user("admin").id
    assert signed_in[0]["ip"] == "testclient"
    assert signed_in[0]["data"] == {"email": api.seed.user("admin").email}
    assert signed_in[0]["at"].endswith(("Z", "+00:00"))


def test_paging_with_after_id_and_limit(api: Api) -> None:
    everything = trail(api, limit=1000)
    assert len(everything) >= 4
    first = trail(api, limit=2)
    assert first == everything[:2]
    rest = trail(api, after_id=first[-1]["id"], limit=1000)
    assert rest == everything[2:]
    assert trail(api, after_id=everything[-1]["id"]) == []


def test_type_narrows_the_trail(api: Api) -> None:
    added = of_type(api, "member_added")
    assert added and {e["type"] for e in added} == {"member_added"}
    assert of_type(api, "token_revoked") == []


@pytest.mark.parametrize(
    "params",
    [
        {"type": "no_such_type"},
        {"limit": 0},
        {"limit": 1001},
        {"after_id": -1},
        {"after_id": 2**31},
        {"type": "x" * 41},
    ],
)
def test_bad_parameters_are_422(api: Api, params: dict[str, Any]) -> None:
    problem(api.get("admin", "/audit", **params), 422, "validation")


@pytest.mark.parametrize("role", ["manager", "member", "viewer", "outsider"])
def test_others_are_refused_and_the_refusal_is_recorded(api: Api, role: str) -> None:
    body = problem(api.get(role, "/audit"), 403, "insufficient-role")
    assert body["required_role"] == "admin"
    (refusal,) = of_type(api, "permission_refused")
    assert refusal["actor_id"] == api.seed.user(role).id
    assert refusal["ip"] == "testclient"
    assert refusal["board_id"] is None
    assert refusal["data"]["method"] == "GET"
    assert refusal["data"]["path"] == "/api/v1/audit"
    assert refusal["data"]["detail"] == body["detail"]


def test_without_a_token_it_is_401(api: Api) -> None:
    problem(api.get(None, "/audit"), 401, "not-authenticated")
    assert of_type(api, "permission_refused") == []


def test_a_refusal_on_a_board_names_the_board(api: Api) -> None:
    problem(
        api.post("viewer", f"/boards/{api.board_id}/items", {"title": "Not mine to add"}),
        403,
        "insufficient-role",
    )
    item = api.new_item()
    problem(api.post("viewer", f"/items/{item['id']}/pull"), 403, "insufficient-role")
    refusals = of_type(api, "permission_refused")
    assert [(r["actor_id"], r["board_id"], r["data"]["path"]) for r in refusals] == [
        (api.seed.user("viewer").id, api.board_id, f"/api/v1/boards/{api.board_id}/items"),
        (api.seed.user("viewer").id, api.board_id, f"/api/v1/items/{item['id']}/pull"),
    ]
    assert all(r["data"]["method"] == "POST" for r in refusals)


def test_other_refusals_are_not_permission_refusals(api: Api) -> None:
    for _ in range(3):
        api.item_in("build")
    option = api.new_item()
    problem(api.post("member", f"/items/{option['id']}/pull"), 409, "wip-limit-reached")
    problem(api.get("member", "/items/999999"), 404, "not-found")
    assert of_type(api, "permission_refused") == []


def test_membership_changes_are_recorded(api: Api) -> None:
    board, outsider = api.board_id, api.seed.user("outsider")
    before = {t: len(of_type(api, t)) for t in ("member_added", "role_changed", "member_removed")}
    # A manager who is not a site admin adds by email; by id is for site admins.
    api.ok(api.put("admin", f"/boards/{board}/members/{outsider.id}", {"role": "member"}))
    api.ok(api.put("manager", f"/boards/{board}/members/{outsider.id}", {"role": "reviewer"}))
    api.ok(api.delete("manager", f"/boards/{board}/members/{outsider.id}"), 204)
    admin_id, manager_id = api.seed.user("admin").id, api.seed.user("manager").id
    added, changed, removed = (
        of_type(api, t)[before[t] :] for t in ("member_added", "role_changed", "member_removed")
    )
    assert [(e["actor_id"], e["board_id"], e["data"]) for e in added] == [
        (admin_id, board, {"user_id": outsider.id, "role": "member", "previous_role": None})
    ]
    assert [(e["actor_id"], e["board_id"], e["data"]) for e in changed] == [
        (manager_id, board, {"user_id": outsider.id, "role": "reviewer", "previous_role": "member"})
    ]
    assert [(e["actor_id"], e["board_id"], e["data"]) for e in removed] == [
        (manager_id, board, {"user_id": outsider.id, "role": None, "previous_role": "reviewer"})
    ]


def test_adding_by_email_is_recorded(api: Api) -> None:
    outsider = api.seed.user("outsider")
    before = len(of_type(api, "member_added"))
    response = api.post(
        "manager", f"/boards/{api.board_id}/members", {"email": outsider.email, "role": "member"}
    )
    assert response.status_code == 200, response.text
    added = of_type(api, "member_added")[before:]
    assert [(e["board_id"], e["data"]["user_id"]) for e in added] == [(api.board_id, outsider.id)]


def test_a_wip_override_is_recorded(api: Api) -> None:
    for _ in range(3):
        api.item_in("build")
    option = api.new_item()
    api.ok(
        api.post("manager", f"/items/{option['id']}/pull", {"override_reason": "Audit on Monday"})
    )
    (override,) = of_type(api, "wip_override")
    assert (override["actor_id"], override["board_id"]) == (
        api.seed.user("manager").id,
        api.board_id,
    )
    assert override["data"] == {
        "item_id": option["id"],
        "item_key": option["key"],
        "state_id": api.state("Build"),
        "kind": "manager",
        "reason": "Audit on Monday",
        "wip": 3,
        "limit": 3,
        "personal": False,
    }


def test_a_refused_override_records_nothing(api: Api) -> None:
    for _ in range(3):
        api.item_in("build")
    option = api.new_item()
    problem(
        api.post("member", f"/items/{option['id']}/pull", {"override_reason": "urgent"}),
        403,
        "insufficient-role",
    )
    assert of_type(api, "wip_override") == []
    assert len(of_type(api, "permission_refused")) == 1


def test_sign_ins_appear_in_the_trail(api: Api) -> None:
    member = api.seed.user("member")
    api.client.post("/api/v1/auth/token", data={"username": member.email, "password": "wrong"})
    api.client.post("/api/v1/auth/token", data={"username": member.email, "password": PASSWORD})
    (failed,) = of_type(api, "sign_in_failed")
    assert (failed["actor_id"], failed["ip"], failed["data"]) == (
        member.id,
        "testclient",
        {"email": member.email},
    )
    assert member.id in {e["actor_id"] for e in of_type(api, "signed_in")}


def test_the_openapi_document_declares_the_refusals(api: Api) -> None:
    operation = api.client.get("/openapi.json").json()["paths"]["/api/v1/audit"]["get"]
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert names == {"after_id", "limit", "type"}
