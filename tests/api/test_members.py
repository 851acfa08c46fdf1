"""Board members without account enumeration (issue 7, point 9), on both databases.

A board manager who is not a site admin learns nothing about accounts that are not on the
board: PUT by id answers an account off the board exactly like an unused id, and
POST by email answers the same whether or not an account uses the email.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.db.models import User
from tests.api.helpers import Api, problem

UNUSED_ID = 999_999


def members_path(api: Api) -> str:
    return f"/boards/{api.board_id}/members"


def roles(api: Api) -> dict[str, str]:
    return {m["email"]: m["role"] for m in api.ok(api.get("admin", members_path(api)))}


def add_by_email(api: Api, by: str, email: str, role: str = "member") -> Any:
    return api.post(by, members_path(api), {"email": email, "role": role})


# --- PUT /boards/{board_id}/members/{user_id} ----------------------------------------------


def test_manager_gets_the_same_404_for_an_account_off_the_board_as_for_an_unused_id(
    api: Api,
) -> None:
    otto = api.seed.user("outsider").id
    unused = api.put("manager", f"{members_path(api)}/{UNUSED_ID}", {"role": "member"})
    off_board = api.put("manager", f"{members_path(api)}/{otto}", {"role": "member"})
    problem(unused, 404, "not-found")
    assert off_board.status_code == unused.status_code
    assert off_board.json() == unused.json()
    assert "otto" not in off_board.text.lower()
    assert "otto@example.org" not in roles(api)


def test_manager_changes_the_role_of_someone_already_on_the_board(api: Api) -> None:
    sam = api.seed.user("member")
    changed = api.ok(api.put("manager", f"{members_path(api)}/{sam.id}", {"role": "reviewer"}))
    assert changed == {"user_id": sam.id, "name": "Sam", "email": sam.email, "role": "reviewer"}


def test_site_admin_still_adds_any_account_by_id(api: Api) -> None:
    otto = api.seed.user("outsider").id
    added = api.ok(api.put("admin", f"{members_path(api)}/{otto}", {"role": "viewer"}))
    assert (added["user_id"], added["email"], added["role"]) == (otto, "otto@example.org", "viewer")
    problem(
        api.put("admin", f"{members_path(api)}/{UNUSED_ID}", {"role": "viewer"}), 404, "not-found"
    )


def test_manager_cannot_change_or_remove_a_site_admins_membership(api: Api) -> None:
    admin = api.seed.user("admin").id  # the board's creator: a manager on it
    path = f"{members_path(api)}/{admin}"
    for response in (api.put("manager", path, {"role": "viewer"}), api.delete("manager", path)):
        body = problem(response, 403, "insufficient-role")
        assert body["required_role"] == "admin"
    assert roles(api)["admin@example.org"] == "manager"
    # The site admin may change their own membership.
    assert api.ok(api.put("admin", path, {"role": "member"}))["role"] == "member"
    api.ok(api.delete("admin", path), 204)


def test_a_site_admin_off_the_board_looks_like_an_unused_id_to_a_manager(api: Api) -> None:
    admin = api.seed.user("admin").id
    api.ok(api.delete("admin", f"{members_path(api)}/{admin}"), 204)
    unused = api.put("manager", f"{members_path(api)}/{UNUSED_ID}", {"role": "member"})
    gone = api.put("manager", f"{members_path(api)}/{admin}", {"role": "member"})
    assert (gone.status_code, gone.json()) == (404, unused.json())
    assert api.delete("manager", f"{members_path(api)}/{admin}").status_code == 404


# --- POST /boards/{board_id}/members {email, role} -----------------------------------------


def test_adding_by_email_answers_the_same_with_or_without_an_account(api: Api) -> None:
    known = add_by_email(api, "manager", " OTTO@Example.org ", "reviewer")
    unknown = add_by_email(api, "manager", "nobody@example.org", "reviewer")
    assert known.status_code == unknown.status_code == 200
    assert known.headers["content-type"] == unknown.headers["content-type"]
    assert known.json() == {
        "email": "otto@example.org",
        "role": "reviewer",
        "status": "added-if-account-exists",
    }
    assert unknown.json() == {**known.json(), "email": "nobody@example.org"}
    after = roles(api)
    assert after["otto@example.org"] == "reviewer"
    assert "nobody@example.org" not in after
    # Otto is now really on the board.
    assert api.ok(api.get("outsider", f"/boards/{api.board_id}"))["my_role"] == "reviewer"


def test_adding_someone_already_on_the_board_keeps_their_role(api: Api) -> None:
    before = roles(api)
    response = add_by_email(api, "manager", "sam@example.org", "viewer")
    assert api.ok(response) == {
        "email": "sam@example.org",
        "role": "viewer",
        "status": "added-if-account-exists",
    }
    # A site admin on the board is not demoted this way either.
    api.ok(add_by_email(api, "manager", "admin@example.org", "viewer"))
    assert roles(api) == before


def test_a_deactivated_account_is_not_added(api: Api) -> None:
    with api.seed.database.unit_of_work() as session:
        otto = session.get(User, api.seed.user("outsider").id)
        assert otto is not None
        otto.is_active = False
    api.ok(add_by_email(api, "manager", "otto@example.org"))
    assert "otto@example.org" not in roles(api)


def test_the_role_defaults_to_member(api: Api) -> None:
    api.ok(api.post("manager", members_path(api), {"email": "otto@example.org"}))
    assert roles(api)["otto@example.org"] == "member"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address", "role": "member"},
        {"email": "otto@example.org", "role": "owner"},
        {"role": "member"},
        {"email": "x" * 300 + "@example.org", "role": "member"},
        {"email": "otto@example.org", "role": "member", "user_id": 1},
    ],
)
def test_bad_input_is_422_and_adds_nobody(api: Api, body: dict[str, Any]) -> None:
    before = roles(api)
    problem(api.post("manager", members_path(api), body), 422, "validation")
    assert roles(api) == before


@pytest.mark.parametrize(("role", "status"), [("member", 403), ("viewer", 403), ("outsider", 404)])
def test_only_managers_add_by_email(api: Api, role: str, status: int) -> None:
    slug = "insufficient-role" if status == 403 else "not-found"
    problem(add_by_email(api, role, "otto@example.org"), status, slug)
    assert "otto@example.org" not in roles(api)


def test_not_signed_in_is_401(api: Api) -> None:
    problem(add_by_email(api, None, "otto@example.org"), 401, "not-authenticated")


def test_adding_by_email_is_in_the_openapi_document(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    operation = document["paths"]["/api/v1/boards/{board_id}/members"]["post"]
    assert "200" in operation["responses"]
