"""CSRF: every state change carries the session's token and comes from our own origin."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.factories import Seed
from tests.web.helpers import add_item, event_count, item_state, sign_in


@pytest.fixture
def member(client: TestClient, seed: Seed) -> TestClient:
    return sign_in(client, seed.user("member"))


def _pull_url(seed: Seed, item_id: int) -> str:
    return f"/boards/{seed.board_id}/items/{item_id}/pull"


@pytest.mark.parametrize(
    "data, headers",
    [
        ({}, {}),  # no token at all
        ({"csrf_token": "wrong"}, {}),
        ({}, {"X-CSRF-Token": "wrong"}),
    ],
    ids=["missing", "wrong-field", "wrong-header"],
)
def test_bad_token_is_refused_and_changes_nothing(
    member: TestClient, seed: Seed, data: dict[str, str], headers: dict[str, str]
) -> None:
    item_id = add_item(seed)
    before, events = item_state(seed, item_id), event_count(seed)
    response = member.post(_pull_url(seed, item_id), data=data, headers=headers)
    assert response.status_code == 403
    assert 'role="alert"' in response.text
    assert item_state(seed, item_id) == before
    assert event_count(seed) == events


@pytest.mark.parametrize("header", ["Origin", "Referer"])
def test_foreign_origin_is_refused_even_with_the_token(
    member: TestClient, seed: Seed, header: str
) -> None:
    item_id = add_item(seed)
    before = item_state(seed, item_id)
    value = "https://evil.example" if header == "Origin" else "https://evil.example/page"
    response = member.post(
        _pull_url(seed, item_id),
        data={"csrf_token": member.csrf_token},  # type: ignore[attr-defined]
        headers={header: value},
    )
    assert response.status_code == 403
    assert item_state(seed, item_id) == before


def test_own_origin_with_token_works(member: TestClient, seed: Seed) -> None:
    item_id = add_item(seed)
    response = member.post(
        _pull_url(seed, item_id),
        data={"csrf_token": member.csrf_token},  # type: ignore[attr-defined]
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert item_state(seed, item_id)[0] == seed.state_id("Build")


def test_header_token_works_like_board_js(member: TestClient, seed: Seed) -> None:
    item_id = add_item(seed)
    response = member.post(
        _pull_url(seed, item_id),
        headers={"X-CSRF-Token": member.csrf_token, "HX-Request": "true"},  # type: ignore[attr-defined]
    )
    assert response.status_code == 200
    assert item_state(seed, item_id)[0] == seed.state_id("Build")


def test_another_sessions_token_is_refused(client: TestClient, seed: Seed, app: object) -> None:
    other = TestClient(app)  # type: ignore[arg-type]
    try:
        sign_in(other, seed.user("member2"))
        sign_in(client, seed.user("member"))
        item_id = add_item(seed)
        response = client.post(
            _pull_url(seed, item_id),
            data={"csrf_token": other.csrf_token},  # type: ignore[attr-defined]
        )
        assert response.status_code == 403
    finally:
        other.close()


def test_no_session_post_is_refused(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed)
    response = client.post(_pull_url(seed, item_id), data={"csrf_token": "x"})
    assert response.status_code == 403
    assert item_state(seed, item_id)[1] is None


@pytest.mark.parametrize("action", ["pull", "ready", "block", "unblock", "send-back", "discard"])
def test_get_never_changes_state(member: TestClient, seed: Seed, action: str) -> None:
    item_id = add_item(seed)
    events = event_count(seed)
    response = member.get(f"/boards/{seed.board_id}/items/{item_id}/{action}")
    assert response.status_code == 405
    response = member.get(f"/items/{item_id}/{action}")
    assert response.status_code in (404, 405)
    assert event_count(seed) == events


def test_every_form_carries_the_token(member: TestClient, seed: Seed) -> None:
    add_item(seed)
    page = member.get(f"/boards/{seed.board_id}").text
    token = member.csrf_token  # type: ignore[attr-defined]
    assert f'<meta name="csrf-token" content="{token}">' in page
    forms = page.count('method="post"')
    assert forms > 0
    assert page.count(f'name="csrf_token" value="{token}"') == forms
