"""Bad input on the pages answers a readable 4xx page, never a 500, on both databases: ids in
the address, numbers and text in query strings and form fields (out of range, '²', NUL...)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.inputs import DB_INT_MAX
from app.methods import _routes
from tests.factories import Seed
from tests.web.helpers import SignedIn, add_item, sign_in

BAD_IDS = [str(DB_INT_MAX + 1), str(2**63), str(2**64), "-1", "0", "²", "٣", "1e3", "abc"]
BAD_NUMBERS = [str(DB_INT_MAX + 1), str(2**63), "-5", "²", "٣", "1.5", "x"]
BAD_TEXT = ["a\x00b", "a\x07b", "\x1b[2J"]
PARAM = re.compile(r"\{(\w+)\}")


@pytest.fixture
def admin(app: FastAPI, seed: Seed) -> Iterator[SignedIn]:
    # A 500 must come back as a response, so every failing address can be listed at once.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield sign_in(client, seed.user("admin"))


def page_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every page route with an id in its address."""
    found = []
    for route in _routes(app.router.routes):
        path = getattr(route, "path", "")
        if path.startswith(("/api/", "/static", "/docs", "/openapi")):
            continue
        if not any(name.endswith("_id") for name in PARAM.findall(path)):
            continue
        for method in sorted(getattr(route, "methods", None) or []):
            if method != "HEAD":
                found.append((method, path))
    return found


def fill(path: str, seed: Seed, bad: str | None = None, which: str | None = None) -> str:
    real = {
        "board_id": str(seed.board_id),
        "state_id": str(seed.state_id("Build")),
        "action": "pull",
        "secret": "x",
    }

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == which and bad is not None:
            return bad
        return real.get(name, "1")

    return PARAM.sub(value, path)


def test_every_page_answers_404_for_ids_out_of_range(
    app: FastAPI, admin: SignedIn, seed: Seed
) -> None:
    routes = page_routes(app)
    assert len(routes) >= 20
    failures = []
    for method, path in routes:
        for name in PARAM.findall(path):
            if not name.endswith("_id"):
                continue
            for bad in BAD_IDS:
                url = fill(path, seed, bad, name)
                headers = {"X-CSRF-Token": admin.csrf_token}
                response = admin.request(method, url, headers=headers)
                if response.status_code != 404 or "text/html" not in response.headers.get(
                    "content-type", ""
                ):
                    failures.append(f"{method} {url}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_the_live_stream_of_the_api_answers_404_for_ids_out_of_range(admin: SignedIn) -> None:
    for bad in BAD_IDS:
        response = admin.get(f"/api/v1/boards/{bad}/stream")
        assert response.status_code == 404, (bad, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")


def query_cases(seed: Seed) -> list[str]:
    board, build = seed.board_id, seed.state_id("Build")
    urls = []
    for bad in BAD_NUMBERS:
        urls += [
            f"/boards/{board}?owner={bad}",
            f"/boards/{board}/states/{build}/cards?offset={bad}",
            f"/boards/{board}/flow?items={bad}",
            f"/boards/{board}/history?t={bad}&t0=1",
            f"/admin/users?offset={bad}",
            f"/admin/boards?offset={bad}",
            f"/admin/audit?before={bad}",
        ]
    for bad in map(quote, BAD_TEXT):
        urls += [
            f"/boards/{board}?q={bad}",
            f"/boards/{board}/delays?reason={bad}",
            f"/boards/{board}/delays.csv?reason={bad}",
            f"/boards/{board}/flow?from={bad}",
            f"/boards/{board}/history?at={bad}",
            f"/admin/audit?actor={bad}",
            f"/admin/audit?type={bad}",
        ]
    urls += [
        f"/boards/{board}/history?t=99999999999999999999&t0=1",
        f"/boards/{board}/flow?until=9999-12-31",
        f"/boards/{board}/flow?from=0001-01-01&to=9999-12-31",
    ]
    return urls


def test_query_strings_never_answer_5xx(admin: SignedIn, seed: Seed) -> None:
    failures = []
    for url in query_cases(seed):
        response = admin.get(url)
        if response.status_code >= 500:
            failures.append(f"GET {url}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_owner_filter_with_unicode_digits_shows_the_board(admin: SignedIn, seed: Seed) -> None:
    # '²' passes str.isdigit() but int() refuses it: the filter is simply not applied.
    response = admin.get(f"/boards/{seed.board_id}?owner=²")
    assert response.status_code == 200


def form_cases(seed: Seed, item_id: int) -> list[tuple[str, dict[str, str]]]:
    board, build = seed.board_id, seed.state_id("Build")
    cases: list[tuple[str, dict[str, str]]] = []
    for bad in BAD_NUMBERS:
        cases += [
            (f"/items/{item_id}/block", {"reason_id": bad}),
            (f"/items/{item_id}/pull", {"to_state_id": bad}),
            (f"/items/{item_id}/send-back", {"to_state_id": bad, "reason": "r"}),
            (f"/items/{item_id}/edit", {"version": bad, "title": "t"}),
            (f"/items/{item_id}/edit", {"version": "1", "owner_id": bad}),
            (f"/boards/{board}/settings/board", {"name": "B", "personal_wip_limit": bad}),
            (f"/boards/{board}/settings/states", {"name": "S", "wip_limit": bad}),
            (f"/boards/{board}/settings/states/{build}", {"name": "Build", "wip_limit": bad}),
        ]
    for bad in BAD_TEXT:
        cases += [
            (f"/boards/{board}/items", {"title": bad}),
            (f"/boards/{board}/items", {"title": "t", "idempotency_key": bad}),
            (f"/items/{item_id}/edit", {"version": "1", "title": bad}),
            (f"/items/{item_id}/comments", {"body": bad}),
            (f"/items/{item_id}/discard", {"reason": bad}),
            (f"/boards/{board}/settings/board", {"name": bad}),
            (f"/boards/{board}/settings/states", {"name": bad}),
            (f"/boards/{board}/settings/reasons", {"name": bad}),
            (f"/boards/{board}/settings/states/{build}/criteria", {"text": bad, "gate": "exit"}),
            (f"/boards/{board}/settings/members", {"email": bad, "role": "member"}),
            ("/admin/users", {"email": f"{bad}@example.org", "name": "N", "password": "p" * 9}),
            ("/admin/users", {"email": "n@example.org", "name": bad, "password": "p" * 9}),
            ("/admin/boards", {"name": bad}),
            ("/account/tokens", {"name": bad, "scope": "read"}),
        ]
    return cases


def test_form_fields_answer_4xx_never_5xx(admin: SignedIn, seed: Seed) -> None:
    item_id = add_item(seed)
    failures = []
    for url, form in form_cases(seed, item_id):
        data: dict[str, Any] = {**form, "csrf_token": admin.csrf_token}
        response = admin.post(url, data=data, follow_redirects=False)
        if not 400 <= response.status_code < 500:
            failures.append(f"POST {url} {form}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_a_title_with_nul_is_refused_with_a_readable_page(admin: SignedIn, seed: Seed) -> None:
    response = admin.post(
        f"/boards/{seed.board_id}/items",
        data={"title": "Fix\x00it", "csrf_token": admin.csrf_token},
    )
    assert response.status_code == 422
    assert "text/html" in response.headers["content-type"]
    assert "control character U+0000" in response.text
    blank = admin.post(
        f"/boards/{seed.board_id}/items",
        data={"title": "\u200b\u202e", "csrf_token": admin.csrf_token},
    )
    assert blank.status_code == 422
    assert "visible characters" in blank.text


def test_signing_in_with_control_characters_is_refused_like_a_wrong_password(
    app: FastAPI, seed: Seed
) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        response = client.post(
            "/login",
            data={
                "email": "a\x00b@example.org",
                "password": "x\x00",
                "csrf_token": token.group(1),
                "next": "/",
            },
            follow_redirects=False,
        )
        assert response.status_code == 401
        assert "text/html" in response.headers["content-type"]
