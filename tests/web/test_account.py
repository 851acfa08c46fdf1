"""The account pages: password change, API tokens, the idle timeout, the one-time reset link,
and deactivation from the admin users page."""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db.models import ApiToken, AuditEvent, PasswordReset, User, WebSession
from app.db.session import Database
from app.services import users
from tests.factories import PASSWORD, Seed, token_headers
from tests.web.helpers import SignedIn, form_token, sign_in

NEW_PASSWORD = "a much longer passphrase"


def post(client: SignedIn, target: str, **data: object) -> httpx.Response:
    return client.post(
        target, data={"csrf_token": client.csrf_token, **data}, follow_redirects=False
    )


def alert_text(html: str) -> str:
    found = re.search(r'<div class="alert" role="alert"[^>]*>([^<]*)</div>', html)
    assert found, "no role=alert message in the page"
    return html_lib.unescape(found.group(1))


def _sessions(database: Database, user_id: int) -> list[WebSession]:
    with database.unit_of_work(write=False) as session:
        return list(
            session.scalars(
                select(WebSession).where(WebSession.user_id == user_id).order_by(WebSession.id)
            )
        )


def _set_sessions(database: Database, user_id: int, **values: Any) -> None:
    with database.unit_of_work() as session:
        for row in session.scalars(select(WebSession).where(WebSession.user_id == user_id)):
            for name, value in values.items():
                setattr(row, name, value)


def _audit_types(database: Database) -> list[str]:
    with database.unit_of_work(write=False) as session:
        return list(session.scalars(select(AuditEvent.type).order_by(AuditEvent.id)))


def _signs_in(client: TestClient, email: str, password: str) -> bool:
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    return response.status_code == 200


@pytest.fixture
def member(client: TestClient, seed: Seed) -> SignedIn:
    return sign_in(client, seed.user("member"))


# ---- My account: password change ----------------------------------------------------------


def test_account_page_has_a_labelled_password_form(member: SignedIn) -> None:
    page = member.get("/account")
    assert page.status_code == 200
    for field, label in (
        ("current-password", "Current password"),
        ("new-password", "New password"),
        ("new-password2", "New password again"),
    ):
        assert f'<label for="{field}">{label}</label>' in page.text
    assert 'href="/account/tokens"' in page.text
    # The header links every page to the account.
    assert 'class="who" href="/account"' in member.get("/me").text


def test_password_change_keeps_this_session_and_ends_the_others(
    member: SignedIn, seed: Seed, app: Any, database: Database
) -> None:
    sam = seed.user("member")
    other_browser = sign_in(TestClient(app), sam)
    api = token_headers(TestClient(app), sam)
    response = post(
        member,
        "/account/password",
        current_password=PASSWORD,
        new_password=NEW_PASSWORD,
        new_password2=NEW_PASSWORD,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/account?changed=1"
    assert "Your password was changed" in member.get("/account?changed=1").text
    assert member.get("/me").status_code == 200
    assert other_browser.get("/me", follow_redirects=False).status_code == 303
    other_browser.close()
    assert member.get("/api/v1/me", headers=api).status_code == 401
    assert _signs_in(member, sam.email, NEW_PASSWORD)
    assert not _signs_in(member, sam.email, PASSWORD)
    assert "password_changed" in _audit_types(database)


@pytest.mark.parametrize(
    ("current", "new", "again", "message"),
    [
        ("wrong password", NEW_PASSWORD, NEW_PASSWORD, "current password is not right"),
        (PASSWORD, "short", "short", "at least 8 characters"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "differ"),
    ],
)
def test_password_change_refusals_are_422_with_an_alert(
    member: SignedIn, seed: Seed, current: str, new: str, again: str, message: str
) -> None:
    response = post(
        member,
        "/account/password",
        current_password=current,
        new_password=new,
        new_password2=again,
    )
    assert response.status_code == 422
    assert message in alert_text(response.text)
    assert _signs_in(member, seed.user("member").email, PASSWORD)


def test_password_change_needs_the_csrf_token(member: SignedIn, seed: Seed) -> None:
    response = member.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert _signs_in(member, seed.user("member").email, PASSWORD)


# ---- API tokens page --------------------------------------------------------------------------


def test_tokens_page_creates_shows_once_lists_and_revokes(
    member: SignedIn, seed: Seed, database: Database
) -> None:
    token_headers(member, seed.user("member"))  # a token from signing in through the API
    page = member.get("/account/tokens")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "Signed in via the API" in page.text

    created = post(member, "/account/tokens", name="Wallboard", scope="read", expires_in_days="30")
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    found = re.search(r'id="new-token-value" readonly value="([^"]+)"', created.text)
    assert found, "the new token is not shown"
    secret = found.group(1)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert member.get("/api/v1/me", headers=bearer).status_code == 200

    listed = member.get("/account/tokens").text
    assert "Wallboard" in listed
    assert "read only" in listed
    assert secret not in listed  # shown once only
    with database.unit_of_work(write=False) as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == "Wallboard")).one()
        assert row.scope == "read"
        assert row.expires_at is not None
        assert timedelta(days=29) < row.expires_at - datetime.now(UTC) <= timedelta(days=30)
        token_id = row.id

    revoked = post(member, f"/account/tokens/{token_id}/revoke")
    assert revoked.status_code == 303
    assert "Wallboard" not in member.get("/account/tokens").text
    assert member.get("/api/v1/me", headers=bearer).status_code == 401
    types = _audit_types(database)
    assert types.count("token_created") == 1
    assert types.count("token_revoked") == 1


def test_tokens_page_refusals(member: SignedIn, seed: Seed, app: Any) -> None:
    for data, message in (
        ({"name": "", "scope": "read"}, "name of 1 to 120"),
        ({"name": "X", "scope": "admin"}, "read or write"),
        ({"name": "X", "scope": "read", "expires_in_days": "5"}, "offered lifetimes"),
    ):
        response = post(member, "/account/tokens", **data)
        assert response.status_code == 422
        assert message in alert_text(response.text)
    # Someone else's token cannot be revoked from here.
    other = sign_in(TestClient(app), seed.user("member2"))
    made = post(other, "/account/tokens", name="Theirs", scope="write")
    assert made.status_code == 201
    other.close()
    assert post(member, "/account/tokens/1/revoke").status_code == 404


# ---- Idle timeout ------------------------------------------------------------------------------


def test_idle_session_is_refused_and_sent_to_login(
    member: SignedIn, seed: Seed, database: Database
) -> None:
    sam = seed.user("member")
    _set_sessions(database, sam.id, last_seen_at=datetime.now(UTC) - timedelta(hours=13))
    response = member.get("/me", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_activity_keeps_the_session_alive_with_one_write_a_minute(
    member: SignedIn, seed: Seed, database: Database
) -> None:
    sam = seed.user("member")
    [first] = _sessions(database, sam.id)
    assert first.last_seen_at is not None
    assert member.get("/me").status_code == 200
    assert _sessions(database, sam.id)[0].last_seen_at == first.last_seen_at  # < a minute
    earlier = datetime.now(UTC) - timedelta(hours=11)
    _set_sessions(database, sam.id, last_seen_at=earlier)
    assert member.get("/me").status_code == 200
    seen = _sessions(database, sam.id)[0].last_seen_at
    assert seen is not None and seen > earlier + timedelta(hours=10)


# ---- Admin: deactivate and reactivate ------------------------------------------------------


@pytest.fixture
def admin(client: TestClient, seed: Seed) -> SignedIn:
    return sign_in(client, seed.user("admin"))


def test_admin_deactivates_and_reactivates_from_the_users_page(
    admin: SignedIn, seed: Seed, app: Any, database: Database
) -> None:
    sam = seed.user("member")
    browser = sign_in(TestClient(app), sam)
    page = admin.get("/admin/users").text
    assert f'action="/admin/users/{sam.id}"' in page
    response = post(admin, f"/admin/users/{sam.id}", action="deactivate")
    assert response.status_code == 303
    assert browser.get("/me", follow_redirects=False).status_code == 303
    browser.close()
    assert "Sam (deactivated)" in admin.get("/admin/users").text
    members = admin.get(f"/boards/{seed.board_id}/settings").text
    assert re.search(r"Sam\s*<span class=\"muted\">\(deactivated\)</span>", members)
    # Their sign-in form answers like a wrong password.
    fresh = TestClient(app)
    login = fresh.get("/login")
    refused = fresh.post(
        "/login",
        data={"email": sam.email, "password": PASSWORD, "csrf_token": form_token(login.text)},
        follow_redirects=False,
    )
    assert refused.status_code == 401
    fresh.close()

    assert post(admin, f"/admin/users/{sam.id}", action="reactivate").status_code == 303
    assert "Sam (deactivated)" not in admin.get("/admin/users").text
    sign_in(TestClient(app), sam).close()
    types = _audit_types(database)
    assert "user_deactivated" in types
    assert "user_reactivated" in types


def test_admin_cannot_deactivate_themselves_and_others_cannot_at_all(
    admin: SignedIn, seed: Seed, app: Any, database: Database
) -> None:
    me = seed.user("admin")
    page = admin.get("/admin/users").text
    assert f'action="/admin/users/{me.id}"' not in page  # no buttons on one's own row
    response = post(admin, f"/admin/users/{me.id}", action="deactivate")
    assert response.status_code == 422
    assert "your own account" in alert_text(response.text)
    assert post(admin, f"/admin/users/{me.id}", action="launch").status_code == 422
    manager = sign_in(TestClient(app), seed.user("manager"))
    sam = seed.user("member")
    assert post(manager, f"/admin/users/{sam.id}", action="deactivate").status_code == 403
    manager.close()
    with database.unit_of_work(write=False) as session:
        assert all(u.is_active for u in session.scalars(select(User)))


def test_admin_changes_the_site_admin_role(admin: SignedIn, seed: Seed, database: Database) -> None:
    sam = seed.user("member")
    assert post(admin, f"/admin/users/{sam.id}", action="make-admin").status_code == 303
    with database.unit_of_work(write=False) as session:
        assert session.get(User, sam.id).is_admin is True  # type: ignore[union-attr]
    assert post(admin, f"/admin/users/{sam.id}", action="remove-admin").status_code == 303
    assert _audit_types(database).count("role_changed") == 2


# ---- The one-time reset link ---------------------------------------------------------------


def _reset_link(database: Database, email: str) -> str:
    with database.unit_of_work() as session:
        _, secret, _ = users.issue_password_reset(session=session, email=email)
    return f"/reset-password/{secret}"


def test_reset_link_sets_a_password_once_and_ends_every_session(
    client: TestClient, seed: Seed, app: Any, database: Database
) -> None:
    sam = seed.user("member")
    browser = sign_in(TestClient(app), sam)
    api = token_headers(TestClient(app), sam)
    link = _reset_link(database, sam.email)

    page = client.get(link)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert sam.email in page.text
    token = form_token(page.text)

    # Without the signed double-submit token nothing happens.
    bare = TestClient(app)
    refused = bare.post(
        link,
        data={"new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD, "csrf_token": "x"},
    )
    assert refused.status_code == 403
    bare.close()
    differ = client.post(
        link,
        data={"new_password": NEW_PASSWORD, "new_password2": "other", "csrf_token": token},
    )
    assert differ.status_code == 422
    token = form_token(differ.text)
    done = client.post(
        link,
        data={"new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD, "csrf_token": token},
    )
    assert done.status_code == 200
    assert "Your new password is set" in done.text

    assert client.get(link).status_code == 404  # used: dead
    assert browser.get("/me", follow_redirects=False).status_code == 303
    browser.close()
    assert client.get("/api/v1/me", headers=api).status_code == 401
    assert _signs_in(client, sam.email, NEW_PASSWORD)
    assert not _signs_in(client, sam.email, PASSWORD)
    types = _audit_types(database)
    assert "password_reset_issued" in types
    assert "password_reset_used" in types


def test_expired_or_unknown_links_are_dead(
    client: TestClient, seed: Seed, database: Database
) -> None:
    link = _reset_link(database, seed.user("member").email)
    with database.unit_of_work() as session:
        for reset in session.scalars(select(PasswordReset)):
            reset.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    page = client.get(link)
    assert page.status_code == 404
    assert "unknown, used or expired" in page.text
    assert client.get("/reset-password/not-a-real-link").status_code == 404
    login = client.get("/login")
    response = client.post(
        link,
        data={
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "csrf_token": form_token(login.text),
        },
    )
    assert response.status_code == 404
    assert _signs_in(client, seed.user("member").email, PASSWORD)
