"""GET /me, POST /users, GET /users: shapes, admin-only, email-taken, short passwords."""

from __future__ import annotations

from tests.api.helpers import Api, problem
from tests.factories import PASSWORD

NEW_USER = {"email": "Nia@Example.org", "name": "Nia", "password": PASSWORD}


def test_me_is_the_signed_in_user(api: Api) -> None:
    me = api.ok(api.get("member", "/me"))
    user = api.seed.user("member")
    assert me == {
        "id": user.id,
        "email": user.email,
        "name": "Sam",
        "is_admin": False,
        "is_active": True,
        "deactivated_at": None,
    }
    assert api.ok(api.get("admin", "/me"))["is_admin"] is True


def test_admin_creates_a_user_who_can_sign_in(api: Api) -> None:
    response = api.post("admin", "/users", NEW_USER)
    created = api.ok(response, 201)
    assert created == {
        "id": created["id"],
        "email": "nia@example.org",
        "name": "Nia",
        "is_admin": False,
        "is_active": True,
        "deactivated_at": None,
    }
    assert response.headers["location"] == f"/api/v1/users/{created['id']}"
    assert api.ok(api.get("admin", f"/users/{created['id']}")) == created
    login = api.client.post(
        "/api/v1/auth/token", data={"username": "nia@example.org", "password": PASSWORD}
    )
    assert login.status_code == 200


def test_duplicate_email_is_409_email_taken(api: Api) -> None:
    api.ok(api.post("admin", "/users", NEW_USER), 201)
    problem(
        api.post("admin", "/users", {**NEW_USER, "email": "nia@example.org"}), 409, "email-taken"
    )


def test_password_under_eight_characters_is_422(api: Api) -> None:
    problem(api.post("admin", "/users", {**NEW_USER, "password": "short77"}), 422, "validation")


def test_only_admins_create_and_list_users(api: Api) -> None:
    body = problem(api.post("manager", "/users", NEW_USER), 403, "insufficient-role")
    assert body["required_role"] == "manager"  # admins count as managers (services.access)
    problem(api.get("manager", "/users"), 403, "insufficient-role")
    problem(api.get("member", f"/users/{api.seed.user('admin').id}"), 403, "insufficient-role")
    listed = api.ok(api.get("admin", "/users"))
    assert [u["id"] for u in listed] == sorted(u.id for u in api.seed.users.values())
    assert set(listed[0]) == {"id", "email", "name", "is_admin", "is_active", "deactivated_at"}
    assert len(api.ok(api.get("admin", "/users", limit=2, offset=1))) == 2


def test_unknown_user_is_404(api: Api) -> None:
    problem(api.get("admin", "/users/999999"), 404, "not-found")
