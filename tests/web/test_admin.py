"""Site admin pages: users (list, create) and boards (list, create from the five templates)."""

from __future__ import annotations

import html as html_lib
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db import queries
from app.db.models import Board, Membership, User
from app.services.board_templates import TEMPLATES
from tests.factories import Seed
from tests.web.helpers import SignedIn, sign_in


def post(client: SignedIn, target: str, **data: object) -> httpx.Response:
    return client.post(
        target, data={"csrf_token": client.csrf_token, **data}, follow_redirects=False
    )


def alert_text(html: str) -> str:
    found = re.search(r'<div class="alert" role="alert"[^>]*>([^<]*)</div>', html)
    assert found, "no role=alert message in the page"
    return html_lib.unescape(found.group(1))


def user_count(seed: Seed) -> int:
    with seed.database.unit_of_work(write=False) as session:
        return queries.user_count(session)


def board_count(seed: Seed) -> int:
    with seed.database.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(Board)) or 0


@pytest.fixture
def admin(client: TestClient, seed: Seed) -> SignedIn:
    return sign_in(client, seed.user("admin"))


def test_users_page_lists_accounts_with_a_labelled_form(admin: SignedIn, seed: Seed) -> None:
    page = admin.get("/admin/users")
    assert page.status_code == 200
    for email in ("admin@example.org", "mia@example.org", "otto@example.org"):
        assert email in page.text
    for field, label in (
        ("user-name", "Name"),
        ("user-email", "Email"),
        ("user-password", "Password"),
    ):
        assert f'<label for="{field}">{label}</label>' in page.text
    assert '<label for="user-admin"><input id="user-admin" name="is_admin"' in page.text
    assert 'aria-current="page">Users</a>' in page.text
    assert admin.get("/admin", follow_redirects=False).headers["location"] == "/admin/users"


def test_admin_creates_a_user_who_can_sign_in(admin: SignedIn, seed: Seed, app: object) -> None:
    response = post(
        admin,
        "/admin/users",
        name="Nora New",
        email="Nora@Example.org",
        password="a long enough password",
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/users"
    assert "nora@example.org" in admin.get("/admin/users").text
    with seed.database.unit_of_work(write=False) as session:
        nora = queries.user_by_email(session, "nora@example.org")
        assert nora is not None and nora.name == "Nora New" and nora.is_admin is False
    with TestClient(app) as browser:  # type: ignore[arg-type]
        signed = sign_in(browser, "nora@example.org", "a long enough password")
        assert "Nora New" in signed.get("/me").text


def test_admin_creates_another_admin(admin: SignedIn, seed: Seed) -> None:
    post(
        admin,
        "/admin/users",
        name="Ada",
        email="ada@example.org",
        password="a long enough password",
        is_admin="1",
    )
    with seed.database.unit_of_work(write=False) as session:
        ada = queries.user_by_email(session, "ada@example.org")
        assert ada is not None and ada.is_admin is True


def test_creating_a_user_refusals_keep_the_form_but_not_the_password(
    admin: SignedIn, seed: Seed
) -> None:
    before = user_count(seed)
    taken = post(
        admin,
        "/admin/users",
        name="Sam Two",
        email="sam@example.org",
        password="another long password",
    )
    assert taken.status_code == 409
    assert alert_text(taken.text) == (
        "sam@example.org already has an account; sign in or use another address."
    )
    assert 'value="Sam Two"' in taken.text
    assert "another long password" not in taken.text
    short = post(admin, "/admin/users", name="Shorty", email="shorty@example.org", password="x")
    assert short.status_code == 422
    assert "A password needs at least" in alert_text(short.text)
    bad = post(
        admin, "/admin/users", name="Bad", email="not-an-email", password="a long enough password"
    )
    assert bad.status_code == 422
    assert alert_text(bad.text) == "Give a valid email address, like ann@example.org."
    assert user_count(seed) == before


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_admin_creates_a_board_from_each_template(
    admin: SignedIn, seed: Seed, template: str
) -> None:
    chosen = TEMPLATES[template]
    response = post(admin, "/admin/boards", template=template, name=f"Our {chosen.name}")
    assert response.status_code == 303
    with seed.database.unit_of_work(write=False) as session:
        board = session.scalar(select(Board).where(Board.name == f"Our {chosen.name}"))
        assert board is not None and board.template == template
        assert board.key == chosen.key  # the template's key when none is given and it is free
        assert [s.name for s in queries.states_of(session, board.id)] == [
            s.name for s in chosen.states
        ]
        membership = session.get(Membership, (board.id, seed.user("admin").id))
        assert membership is not None and membership.role == "manager"
        board_id = board.id
    assert response.headers["location"] == f"/admin/boards#board-{board_id}"
    listing = admin.get("/admin/boards").text
    assert f'<tr id="board-{board_id}">' in listing
    assert f'href="/boards/{board_id}/settings"' in listing
    assert admin.get(f"/boards/{board_id}/settings").status_code == 200


def test_board_key_is_optional_and_checked(admin: SignedIn, seed: Seed) -> None:
    page = admin.get("/admin/boards")
    assert page.status_code == 200
    for t in TEMPLATES.values():
        assert f'<label for="template-{t.slug}">' in page.text and t.name in page.text
    assert '<label for="board-key">Key (optional)</label>' in page.text
    assert (
        post(admin, "/admin/boards", template="risk-treatment", name="Risks", key="rk").status_code
        == 303
    )
    with seed.database.unit_of_work(write=False) as session:
        assert session.scalar(select(Board.key).where(Board.name == "Risks")) == "RK"
    before = board_count(seed)
    taken = post(admin, "/admin/boards", template="risk-treatment", name="Again", key="RK")
    assert taken.status_code == 422
    assert alert_text(taken.text) == "The key RK is already used by another board."
    assert 'value="Again"' in taken.text
    bad = post(admin, "/admin/boards", template="risk-treatment", name="Bad", key="R2D2")
    assert bad.status_code == 422
    assert alert_text(bad.text) == "A board key is 2 to 10 capital letters, like DOC."
    unknown = post(admin, "/admin/boards", template="nope", name="Nope")
    assert unknown.status_code == 422
    assert alert_text(unknown.text).startswith("Unknown template 'nope'")
    assert board_count(seed) == before


@pytest.mark.parametrize("role", ["manager", "member", "viewer", "outsider"])
def test_non_admins_are_refused(client: TestClient, seed: Seed, role: str) -> None:
    signed = sign_in(client, seed.user(role))
    users_before, boards_before = user_count(seed), board_count(seed)
    for path in ("/admin/users", "/admin/boards", "/admin"):
        page = signed.get(path, follow_redirects=False)
        assert page.status_code == 403
        assert "Only site admins can open the admin pages" in alert_text(page.text)
    assert (
        post(
            signed,
            "/admin/users",
            name="Eve",
            email="eve@example.org",
            password="a long enough password",
            is_admin="1",
        ).status_code
        == 403
    )
    assert post(signed, "/admin/boards", template="risk-treatment", name="Eve's").status_code == 403
    assert (user_count(seed), board_count(seed)) == (users_before, boards_before)


def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient, seed: Seed) -> None:
    response = client.get("/admin/users", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin/users"
    assert client.post("/admin/users", data={"name": "Eve"}).status_code == 403


def test_admin_forms_need_the_csrf_token(admin: SignedIn, seed: Seed) -> None:
    before = user_count(seed), board_count(seed)
    response = admin.post(
        "/admin/users",
        data={"name": "Eve", "email": "eve@example.org", "password": "a long enough password"},
    )
    assert response.status_code == 403
    response = admin.post(
        "/admin/boards",
        data={"template": "risk-treatment", "name": "Eve's", "csrf_token": "forged"},
    )
    assert response.status_code == 403
    assert (user_count(seed), board_count(seed)) == before


def test_admin_pages_escape_user_text(admin: SignedIn, seed: Seed) -> None:
    evil = "<script>x</script>"
    post(
        admin,
        "/admin/users",
        name=evil,
        email="evil@example.org",
        password="a long enough password",
    )
    post(admin, "/admin/boards", template="document-review", name=evil)
    for path in ("/admin/users", "/admin/boards"):
        text = admin.get(path).text
        assert evil not in text
        assert "&lt;script&gt;x&lt;/script&gt;" in text
    with seed.database.unit_of_work(write=False) as session:
        assert session.scalar(select(User.name).where(User.email == "evil@example.org")) == evil
