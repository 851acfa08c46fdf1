"""The settings members panel without account enumeration (issue 7, point 9), on both
databases: people are added by email with one answer whether or not an account uses it, no
page lists accounts that are not on the board, and a board manager who is not a site admin
cannot change or remove a site admin's membership."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from app.db import queries
from tests.factories import Seed
from tests.web.helpers import SignedIn, htmx_headers, sign_in

NOTICE = "If an account uses that email, it is now on this board"


def url(seed: Seed, path: str = "") -> str:
    return f"/boards/{seed.board_id}/settings{path}"


def post(client: SignedIn, target: str, htmx: bool = False, **data: str) -> httpx.Response:
    return client.post(
        target,
        data={"csrf_token": client.csrf_token, **data},
        headers=htmx_headers(client) if htmx else None,
        follow_redirects=False,
    )


def roles(seed: Seed) -> dict[str, str]:
    with seed.database.unit_of_work(write=False) as session:
        return {u.email: m.role for m, u in queries.members(session, seed.board_id)}


def members_panel(html: str) -> str:
    found = re.search(r'<section id="settings-members".*?</section>', html, re.S)
    assert found, "no members panel"
    return found.group(0)


@pytest.fixture
def manager(client: TestClient, seed: Seed) -> SignedIn:
    return sign_in(client, seed.user("manager"))


def test_the_panel_lists_members_only_and_offers_no_account_picker(
    manager: SignedIn, seed: Seed
) -> None:
    panel = members_panel(manager.get(url(seed)).text)
    assert "sam@example.org" in panel
    assert "otto@example.org" not in panel and "Otto" not in panel  # an account off the board
    assert 'name="email" type="email"' in panel
    assert 'name="user_id"' not in panel and "<datalist" not in panel


@pytest.mark.parametrize("htmx", [False, True])
def test_adding_by_email_answers_the_same_with_or_without_an_account(
    manager: SignedIn, seed: Seed, htmx: bool
) -> None:
    unknown = post(manager, url(seed, "/members"), htmx, email="nobody@example.org", role="viewer")
    known = post(manager, url(seed, "/members"), htmx, email="Otto@example.org", role="viewer")
    assert known.status_code == unknown.status_code == (200 if htmx else 303)
    if htmx:
        for response in (known, unknown):
            assert NOTICE in response.text
            assert 'role="alert"' not in response.text
            assert "nobody@example.org" not in response.text  # the field is emptied either way
            assert "X-Flowboard-Refusal" not in response.headers
    else:
        assert known.headers["location"] == unknown.headers["location"]
        page = manager.get(known.headers["location"])
        assert NOTICE in members_panel(page.text)
    after = roles(seed)
    assert after["otto@example.org"] == "viewer"
    assert "nobody@example.org" not in after


def test_notice_comes_from_a_fixed_list_not_from_the_url(manager: SignedIn, seed: Seed) -> None:
    page = manager.get(url(seed) + "?notice=<b>you+won</b>")
    assert page.status_code == 200
    assert "you won" not in page.text and NOTICE not in page.text


def test_adding_someone_already_on_the_board_keeps_their_role(
    manager: SignedIn, seed: Seed
) -> None:
    before = roles(seed)
    response = post(manager, url(seed, "/members"), email="sam@example.org", role="viewer")
    assert response.status_code == 303
    assert roles(seed) == before


def test_a_malformed_email_is_refused_next_to_the_form(manager: SignedIn, seed: Seed) -> None:
    response = post(manager, url(seed, "/members"), email="nobody", role="member")
    assert response.status_code == 422
    assert "Give a valid email address" in members_panel(response.text)


def test_changing_the_role_of_an_account_off_the_board_is_404(
    manager: SignedIn, seed: Seed
) -> None:
    otto = seed.user("outsider").id
    for path in (f"/members/{otto}", f"/members/{otto}/remove", "/members/999999"):
        assert post(manager, url(seed, path), role="manager").status_code == 404
    assert "otto@example.org" not in roles(seed)


def test_a_site_admins_row_offers_no_change_to_a_board_manager(
    manager: SignedIn, seed: Seed
) -> None:
    admin = seed.user("admin").id
    panel = members_panel(manager.get(url(seed)).text)
    row = panel.split(f'<tr id="member-{admin}">', 1)[1].split("</tr>", 1)[0]
    assert "(site admin)" in row and "<form" not in row
    for path in (f"/members/{admin}", f"/members/{admin}/remove"):
        response = post(manager, url(seed, path), role="viewer")
        assert response.status_code == 403
        assert "only a site admin can change their membership" in response.text
    assert roles(seed)["admin@example.org"] == "manager"


def test_a_site_admin_may_change_their_own_membership(client: TestClient, seed: Seed) -> None:
    admin = sign_in(client, seed.user("admin"))
    admin_id = seed.user("admin").id
    row = members_panel(admin.get(url(seed)).text).split(f'<tr id="member-{admin_id}">', 1)[1]
    assert "<form" in row.split("</tr>", 1)[0]
    assert post(admin, url(seed, f"/members/{admin_id}"), role="member").status_code == 303
    assert roles(seed)["admin@example.org"] == "member"
