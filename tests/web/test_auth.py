"""Signing in and out, session cookies, first-run setup and safe redirects."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db.models import User, WebSession
from app.db.session import Database
from tests.factories import PASSWORD, Seed
from tests.web.helpers import SESSION_COOKIE, form_token, sign_in


def _login(client: TestClient, email: str, password: str, next_path: str = "/") -> object:
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "next": next_path,
            "csrf_token": form_token(page.text),
        },
        follow_redirects=False,
    )


def test_login_form_has_labelled_fields(client: TestClient, seed: Seed) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert '<label for="email">Email</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert ">Sign in</button>" in page.text
    assert "HX-Request" in page.headers["vary"].split(", ")


def test_sign_in_sets_a_safe_cookie_and_shows_my_name(client: TestClient, seed: Seed) -> None:
    response = _login(client, seed.user("member").email, PASSWORD, "/me")
    assert response.status_code == 303
    assert response.headers["location"] == "/me"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; https adds it (next test)
    assert "Sam" in client.get("/me").text


def test_cookie_is_secure_over_https(database: Database, seed: Seed) -> None:
    from app.main import create_app

    with TestClient(create_app(database, listen=False), base_url="https://testserver") as client:
        response = _login(client, seed.user("member").email, PASSWORD)
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]


def test_wrong_credentials_say_the_same_thing(client: TestClient, seed: Seed) -> None:
    wrong_password = _login(client, seed.user("member").email, "nope nope nope")
    unknown = _login(client, "nobody@example.org", "nope nope nope")
    for response in (wrong_password, unknown):
        assert response.status_code == 401
        assert 'role="alert"' in response.text
        assert "That email and password do not match an account." in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_session_id_is_new_at_every_sign_in(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    first = client.cookies.get(SESSION_COOKIE)
    sign_in(client, seed.user("member"))
    second = client.cookies.get(SESSION_COOKIE)
    assert first and second and first != second
    with seed.database.unit_of_work(write=False) as session:
        rows = session.scalars(select(WebSession).order_by(WebSession.id)).all()
    assert len(rows) == 2
    assert rows[0].ended_at is not None  # the old session is ended, not left usable
    assert rows[1].ended_at is None


def test_sign_out_ends_the_session_server_side(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    old = client.cookies.get(SESSION_COOKIE)
    response = client.post(
        "/logout",
        data={"csrf_token": client.csrf_token},
        follow_redirects=False,  # type: ignore[attr-defined]
    )
    assert response.status_code == 303
    assert (
        f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
        or "Max-Age=0" in (response.headers["set-cookie"])
    )
    with seed.database.unit_of_work(write=False) as session:
        assert session.scalars(select(WebSession)).one().ended_at is not None
    # Replaying the old cookie does not work any more.
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, old)
    page = client.get("/me", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


def test_sign_out_needs_the_csrf_token(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert client.get("/me", follow_redirects=False).status_code == 200


def test_expired_session_is_refused(client: TestClient, seed: Seed) -> None:
    from datetime import timedelta

    from app.db.queries import now

    sign_in(client, seed.user("member"))
    with seed.database.unit_of_work() as session:
        for row in session.scalars(select(WebSession)):
            row.expires_at = now() - timedelta(seconds=1)
    assert client.get("/me", follow_redirects=False).status_code == 303


def test_pages_redirect_to_login_with_next(client: TestClient, seed: Seed) -> None:
    response = client.get(f"/boards/{seed.board_id}?q=x", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/boards/{seed.board_id}%3Fq%3Dx"
    htmx = client.get(f"/boards/{seed.board_id}", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["hx-redirect"].startswith("/login?next=")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "http:/evil",
        "\\\\evil.example",
    ],
)
def test_open_redirect_is_refused(client: TestClient, seed: Seed, target: str) -> None:
    response = _login(client, seed.user("member").email, PASSWORD, target)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    page = client.get("/login", params={"next": target})
    assert 'name="next" value="/"' in page.text


def test_local_next_is_kept(client: TestClient, seed: Seed) -> None:
    response = _login(client, seed.user("member").email, PASSWORD, f"/boards/{seed.board_id}")
    assert response.headers["location"] == f"/boards/{seed.board_id}"


def test_setup_creates_the_first_admin_then_is_refused(
    client: TestClient, database: Database
) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/setup"
    assert client.get("/login", follow_redirects=False).headers["location"] == "/setup"
    page = client.get("/setup")
    assert page.status_code == 200 and "Password again" in page.text
    token = form_token(page.text)
    mismatch = client.post(
        "/setup",
        data={
            "name": "Ann",
            "email": "ann@example.org",
            "password": "long enough pw",
            "password2": "different pw!!",
            "csrf_token": token,
        },
    )
    assert mismatch.status_code == 422 and 'role="alert"' in mismatch.text
    token = form_token(mismatch.text)
    created = client.post(
        "/setup",
        data={
            "name": "Ann",
            "email": "ann@example.org",
            "password": "long enough pw",
            "password2": "long enough pw",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert created.status_code == 303
    assert client.cookies.get(SESSION_COOKIE)
    with database.unit_of_work(write=False) as session:
        users = session.scalars(select(User)).all()
    assert [(u.email, u.is_admin) for u in users] == [("ann@example.org", True)]
    assert "Ann" in client.get("/me").text
    # Once anyone exists, setup is closed.
    assert client.get("/setup", follow_redirects=False).headers["location"] == "/login"
    again = client.post(
        "/setup",
        data={
            "name": "Eve",
            "email": "eve@example.org",
            "password": "long enough pw",
            "password2": "long enough pw",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert again.headers["location"] == "/login"
    with database.unit_of_work(write=False) as session:
        assert len(session.scalars(select(User)).all()) == 1


def test_setup_needs_its_form_token(client: TestClient, database: Database) -> None:
    client.get("/setup")
    response = client.post(
        "/setup",
        data={
            "name": "Ann",
            "email": "ann@example.org",
            "password": "long enough pw",
            "password2": "long enough pw",
            "csrf_token": "forged",
        },
    )
    assert response.status_code == 403
    with database.unit_of_work(write=False) as session:
        assert session.scalars(select(User)).first() is None


def test_login_needs_its_signed_form_token(client: TestClient, seed: Seed) -> None:
    client.get("/login")
    forged = client.post(
        "/login",
        data={"email": seed.user("member").email, "password": PASSWORD, "csrf_token": "x"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    # A value that matches a cookie the attacker planted, but unsigned, fails too.
    client.cookies.set("flowboard_preauth", "abc.def")
    planted = client.post(
        "/login",
        data={"email": seed.user("member").email, "password": PASSWORD, "csrf_token": "abc"},
        follow_redirects=False,
    )
    assert planted.status_code == 403
    assert not client.cookies.get(SESSION_COOKIE)
