"""Who may do what: the role x action matrix, and 404 (never 403) for non-members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.helpers import Api, problem

ROLES = ["viewer", "member", "reviewer", "manager", "outsider"]
CAN_PULL_BUILD = {"member", "reviewer", "manager"}


def _create_item(api: Api, role: str) -> httpx.Response:
    return api.post(role, f"/boards/{api.board_id}/items", {"title": "New demand"})


def _pull_into_member_state(api: Api, role: str) -> httpx.Response:
    return api.post(role, f"/items/{api.new_item()['id']}/pull")


def _pull_into_reviewer_state(api: Api, role: str) -> httpx.Response:
    return api.post(role, f"/items/{api.item_in('build-ready', owner='member2')['id']}/pull")


def _mark_ready(api: Api, role: str) -> httpx.Response:
    # Each role marks its own item ready; a viewer (or outsider) cannot own one, so theirs is
    # someone else's.
    owner = role if role in CAN_PULL_BUILD else "member2"
    return api.post(role, f"/items/{api.item_in('build', owner=owner)['id']}/ready")


def _block(api: Api, role: str) -> httpx.Response:
    body = {"reason_id": api.reason_id()}
    return api.post(role, f"/items/{api.item_in('build')['id']}/blocks", body)


def _configure_state(api: Api, role: str) -> httpx.Response:
    return api.patch(role, f"/states/{api.state('Build')}", {"wip_limit": 5})


def _manage_members(api: Api, role: str) -> httpx.Response:
    path = f"/boards/{api.board_id}/members/{api.seed.user('member2').id}"
    return api.put(role, path, {"role": "reviewer"})


Action = Callable[[Api, str], httpx.Response]
ALLOWED: dict[str, tuple[Action, int, set[str]]] = {
    "create item": (_create_item, 201, {"member", "reviewer", "manager"}),
    "pull into member state": (_pull_into_member_state, 200, {"member", "reviewer", "manager"}),
    "pull into reviewer state": (_pull_into_reviewer_state, 200, {"reviewer", "manager"}),
    "mark ready": (_mark_ready, 200, {"member", "reviewer", "manager"}),
    "block": (_block, 201, {"member", "reviewer", "manager"}),
    "configure state": (_configure_state, 200, {"manager"}),
    "manage members": (_manage_members, 200, {"manager"}),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ALLOWED))
def test_role_matrix(api: Api, action: str, role: str) -> None:
    run, success, allowed = ALLOWED[action]
    response = run(api, role)
    if role == "outsider":
        problem(response, 404, "not-found")
    elif role in allowed:
        assert response.status_code == success, response.text
    else:
        assert problem(response, 403, "insufficient-role")["required_role"]


def test_mark_ready_of_someone_elses_item_needs_a_manager(api: Api) -> None:
    item = api.item_in("build", owner="member")
    body = problem(api.post("member2", f"/items/{item['id']}/ready"), 403, "insufficient-role")
    assert body["required_role"] == "manager"
    assert api.ok(api.post("manager", f"/items/{item['id']}/ready"))["stage"] == "ready"


def test_site_admin_acts_as_manager_on_any_board(api: Api) -> None:
    path = f"/boards/{api.board_id}/members/{api.seed.user('admin').id}"
    api.ok(api.delete("admin", path), 204)  # leaves the board: no membership left
    assert api.ok(api.get("admin", f"/boards/{api.board_id}"))["my_role"] == "manager"
    api.ok(api.patch("admin", f"/states/{api.state('Build')}", {"wip_limit": 4}))


# Every route that addresses something on a board by id: (method, path, body).
ID_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/boards/{board}", None),
    ("PATCH", "/boards/{board}", {"name": "Mine now"}),
    ("GET", "/boards/{board}/members", None),
    ("PUT", "/boards/{board}/members/{outsider}", {"role": "manager"}),
    ("DELETE", "/boards/{board}/members/{member}", None),
    ("POST", "/boards/{board}/states", {"name": "Sneaky"}),
    ("PATCH", "/states/{state}", {"wip_limit": 9}),
    ("DELETE", "/states/{state}", None),
    ("POST", "/states/{state}/criteria", {"text": "x", "gate": "exit"}),
    ("DELETE", "/criteria/{criterion}", None),
    ("GET", "/boards/{board}/block-reasons", None),
    ("POST", "/boards/{board}/block-reasons", {"name": "Mine"}),
    ("POST", "/boards/{board}/items", {"title": "Planted"}),
    ("GET", "/boards/{board}/items", None),
    ("GET", "/boards/{board}/events", None),
    ("GET", "/items/{item}", None),
    ("PATCH", "/items/{item}", {"version": 1, "title": "Moved"}),
    ("POST", "/items/{item}/pull", None),
    ("POST", "/items/{item}/ready", None),
    ("POST", "/items/{item}/unready", None),
    ("POST", "/items/{item}/send-back", {"to_state_id": 1, "reason": "x"}),
    ("POST", "/items/{item}/discard", {"reason": "x"}),
    ("POST", "/items/{item}/blocks", {"reason_id": 1}),
    ("GET", "/blocks/{block}", None),
    ("POST", "/blocks/{block}/resolve", None),
    ("PUT", "/items/{item}/criteria/{criterion}", {"met": True}),
    ("GET", "/items/{item}/comments", None),
    ("POST", "/items/{item}/comments", {"body": "hi"}),
    ("GET", "/items/{item}/events", None),
]


@pytest.fixture
def ids(api: Api) -> dict[str, int]:
    criterion = api.ok(
        api.post(
            "manager", f"/states/{api.state('Review')}/criteria", {"text": "c", "gate": "entry"}
        ),
        201,
    )
    item = api.item_in("build-ready")
    block = api.ok(
        api.post("member", f"/items/{item['id']}/blocks", {"reason_id": api.reason_id()}), 201
    )
    return {
        "board": api.board_id,
        "state": api.state("Build"),
        "criterion": criterion["id"],
        "item": item["id"],
        "block": block["id"],
        "member": api.seed.user("member").id,
        "outsider": api.seed.user("outsider").id,
    }


@pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES)
def test_non_members_get_404_and_change_nothing(
    api: Api, ids: dict[str, int], method: str, path: str, body: dict[str, Any] | None
) -> None:
    before = api.ok(api.get("manager", f"/boards/{api.board_id}/events", limit=1000))
    response = api.call("outsider", method, path.format(**ids), body)
    found = problem(response, 404, "not-found")
    # The same answer as for an id that does not exist: existence is not leaked.
    missing = {k: v + 100_000 if k not in ("member", "outsider") else v for k, v in ids.items()}
    unknown = problem(api.call("member", method, path.format(**missing), body), 404, "not-found")
    assert found["detail"] == unknown["detail"]
    assert api.ok(api.get("manager", f"/boards/{api.board_id}/events", limit=1000)) == before
