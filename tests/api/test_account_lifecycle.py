"""Account lifecycle over the API: password change, deactivation and reactivation, roles."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db.models import AuditEvent, Item, User, WebSession
from app.db.session import Database
from tests.api.helpers import Api, problem
from tests.factories import PASSWORD
from tests.web.helpers import sign_in

NEW_PASSWORD = "a much longer passphrase"


def _sign_in(client: TestClient, email: str, password: str) -> int:
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    return response.status_code


def _audit(database: Database, type_: str) -> list[AuditEvent]:
    with database.unit_of_work(write=False) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.type == type_).order_by(AuditEvent.id)
            )
        )


def _user(database: Database, user_id: int) -> User:
    with database.unit_of_work(write=False) as session:
        user = session.get(User, user_id)
        assert user is not None
        return user


def _open_sessions(database: Database, user_id: int) -> int:
    with database.unit_of_work(write=False) as session:
        return len(
            session.scalars(
                select(WebSession).where(
                    WebSession.user_id == user_id, WebSession.ended_at.is_(None)
                )
            ).all()
        )


# ---- password change ----------------------------------------------------------------------


def test_password_change_keeps_this_token_and_ends_the_others(
    api: Api, app: Any, database: Database
) -> None:
    member = api.seed.user("member")
    this = api.headers("member")
    other = api.ok(api.post("member", "/tokens", {"name": "Script", "scope": "read"}), 201)
    browser = sign_in(TestClient(app), member)
    assert _open_sessions(database, member.id) == 1

    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    response = api.client.post("/api/v1/users/me/password", json=body, headers=this)
    assert response.status_code == 204, response.text

    assert api.client.get("/api/v1/me", headers=this).status_code == 200
    other_headers = {"Authorization": f"Bearer {other['token']}"}
    problem(api.client.get("/api/v1/me", headers=other_headers), 401, "not-authenticated")
    assert _open_sessions(database, member.id) == 0
    page = browser.get("/me", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")
    browser.close()

    assert _sign_in(api.client, member.email, PASSWORD) == 401
    assert _sign_in(api.client, member.email, NEW_PASSWORD) == 200
    assert _user(database, member.id).password_changed_at is not None
    [event] = _audit(database, "password_changed")
    assert event.actor_id == member.id


def test_wrong_current_password_is_422_and_changes_nothing(api: Api, database: Database) -> None:
    member = api.seed.user("member")
    body = {"current_password": "not my password", "new_password": NEW_PASSWORD}
    found = problem(api.post("member", "/users/me/password", body), 422, "validation")
    assert found["field"] == "current_password"
    short = {"current_password": PASSWORD, "new_password": "short"}
    problem(api.post("member", "/users/me/password", short), 422, "validation")
    problem(
        api.post("member", "/users/me/password", {"new_password": NEW_PASSWORD}), 422, "validation"
    )
    assert api.get("member", "/me").status_code == 200
    assert _sign_in(api.client, member.email, PASSWORD) == 200
    assert _user(database, member.id).password_changed_at is None
    assert _audit(database, "password_changed") == []


def test_password_change_needs_a_token(api: Api) -> None:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    problem(api.post(None, "/users/me/password", body), 401, "not-authenticated")


# ---- deactivation -------------------------------------------------------------------------


def test_deactivation_ends_access_at_once_and_keeps_the_history(
    api: Api, app: Any, database: Database
) -> None:
    member = api.seed.user("member")
    item = api.item_in("build", owner="member")
    member_headers = api.headers("member")
    browser = sign_in(TestClient(app), member)

    out = api.ok(api.patch("admin", f"/users/{member.id}", {"is_active": False}))
    assert out["is_active"] is False
    assert out["deactivated_at"] is not None
    assert out["name"] == "Sam"

    problem(api.client.get("/api/v1/me", headers=member_headers), 401, "not-authenticated")
    assert browser.get("/me", follow_redirects=False).status_code == 303
    browser.close()
    assert _open_sessions(database, member.id) == 0
    # Signing in answers exactly like a wrong password.
    refused = api.client.post(
        "/api/v1/auth/token", data={"username": member.email, "password": PASSWORD}
    )
    wrong = api.client.post(
        "/api/v1/auth/token", data={"username": "sam@example.org", "password": "wrong one!"}
    )
    assert refused.status_code == wrong.status_code == 401
    assert refused.json()["detail"] == wrong.json()["detail"]
    # Their work stays theirs, and the admin list shows them as deactivated.
    kept = api.ok(api.get("manager", f"/items/{item['id']}"))
    assert kept["owner_id"] == member.id
    with database.unit_of_work(write=False) as session:
        assert session.get(Item, item["id"]).owner_id == member.id  # type: ignore[union-attr]
    listed = {u["id"]: u for u in api.ok(api.get("admin", "/users"))}
    assert listed[member.id]["is_active"] is False
    [event] = _audit(database, "user_deactivated")
    assert event.actor_id == api.seed.user("admin").id
    assert event.data == {"user_id": member.id}


def test_reactivation_lets_them_sign_in_again_but_old_tokens_stay_dead(
    api: Api, database: Database
) -> None:
    member = api.seed.user("member")
    old = api.headers("member")
    api.ok(api.patch("admin", f"/users/{member.id}", {"is_active": False}))
    out = api.ok(api.patch("admin", f"/users/{member.id}", {"is_active": True}))
    assert out["is_active"] is True
    assert out["deactivated_at"] is None
    problem(api.client.get("/api/v1/me", headers=old), 401, "not-authenticated")
    assert _sign_in(api.client, member.email, PASSWORD) == 200
    assert len(_audit(database, "user_reactivated")) == 1


def test_only_admins_change_accounts_and_not_their_own_access(api: Api, database: Database) -> None:
    admin = api.seed.user("admin")
    member = api.seed.user("member")
    problem(
        api.patch("manager", f"/users/{member.id}", {"is_active": False}), 403, "insufficient-role"
    )
    problem(api.patch("member", f"/users/{member.id}", {"name": "Me"}), 403, "insufficient-role")
    problem(api.patch("admin", f"/users/{admin.id}", {"is_active": False}), 422, "validation")
    problem(api.patch("admin", f"/users/{admin.id}", {"is_admin": False}), 422, "validation")
    problem(api.patch("admin", "/users/999999", {"is_active": False}), 404, "not-found")
    problem(api.patch("admin", "/users/2147483648", {"is_active": False}), 422, "validation")
    problem(api.patch("admin", f"/users/{member.id}", {"is_active": None}), 422, "validation")
    problem(api.patch("admin", f"/users/{member.id}", {"email": "x@y.org"}), 422, "validation")
    assert _user(database, admin.id).is_active is True
    assert _user(database, member.id).is_active is True
    # Renaming oneself is fine.
    assert api.ok(api.patch("admin", f"/users/{admin.id}", {"name": "Ada"}))["name"] == "Ada"


def test_role_change_is_audited(api: Api, database: Database) -> None:
    member = api.seed.user("member")
    out = api.ok(api.patch("admin", f"/users/{member.id}", {"is_admin": True}))
    assert out["is_admin"] is True
    # Unchanged values record nothing.
    api.ok(api.patch("admin", f"/users/{member.id}", {"is_admin": True}))
    [event] = _audit(database, "role_changed")
    assert event.data == {"user_id": member.id, "is_admin": True}
    assert api.ok(api.get("member", "/users"))  # now an admin: may list users
