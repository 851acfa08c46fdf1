"""Cross-cutting conventions of API.md: 401, 413, 422 problems with `errors`, 404 problems,
paging bounds, ISO 8601 UTC times, strict bodies (no mass assignment)."""

from __future__ import annotations

import re

import pytest

from tests.api.helpers import Api, problem

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")

# One operation per router and method family, all of which need a signed-in user.
SIGNED_IN_ONLY = [
    ("GET", "/me"),
    ("GET", "/users"),
    ("POST", "/users"),
    ("GET", "/boards"),
    ("POST", "/boards"),
    ("GET", "/boards/1"),
    ("PATCH", "/boards/1"),
    ("PUT", "/boards/1/members/1"),
    ("POST", "/boards/1/items"),
    ("GET", "/boards/1/events"),
    ("GET", "/items/1"),
    ("PATCH", "/items/1"),
    ("POST", "/items/1/pull"),
    ("DELETE", "/states/1"),
    ("DELETE", "/criteria/1"),
    ("POST", "/blocks/1/resolve"),
]


@pytest.mark.parametrize(("method", "path"), SIGNED_IN_ONLY)
def test_without_a_token_is_401_problem(api: Api, method: str, path: str) -> None:
    response = api.call(None, method, path, {})
    problem(response, 401, "not-authenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    bad = api.client.request(
        method, "/api/v1" + path, json={}, headers={"Authorization": "Bearer not-a-token"}
    )
    problem(bad, 401, "not-authenticated")


def test_body_over_one_mebibyte_is_413(api: Api) -> None:
    response = api.client.post(
        f"/api/v1/boards/{api.board_id}/items",
        content=b'{"title": "' + b"x" * (1024 * 1024) + b'"}',
        headers={**api.headers("member"), "content-type": "application/json"},
    )
    problem(response, 413, "body-too-large")


def test_validation_problem_lists_errors(api: Api) -> None:
    body = problem(
        api.post(
            "member", f"/boards/{api.board_id}/items", {"title": "  ", "class_of_service": "x"}
        ),
        422,
        "validation",
    )
    where = {tuple(e["loc"]) for e in body["errors"]}
    assert {("body", "title"), ("body", "class_of_service")} <= where
    assert all(e["msg"] and e["type"] for e in body["errors"])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/boards/{board_id}/items", {"title": "x", "board_id": 1}),
        ("/boards/{board_id}/items", {"title": "x", "owner_id": 1}),
        ("/boards/{board_id}/items", {"title": "x", "state_id": 1}),
        ("/boards/{board_id}/items", {"title": 5}),
        ("/boards/{board_id}/items", {"title": "x", "due_date": "tomorrow"}),
        ("/boards/{board_id}/states", {"name": "QA", "wip_limit": 0}),
        ("/boards/{board_id}/states", {"name": "QA", "wip_limit": 10_001}),
        ("/boards/{board_id}/states", {"name": "QA", "pull_role": "manager"}),
        ("/boards/{board_id}/states", {"name": "QA", "wip_limit": "3"}),
        ("/boards/{board_id}/states", {"name": "QA", "board_id": 2}),
        ("/boards/{board_id}/block-reasons", {"name": "Holiday", "board_id": 2}),
    ],
)
def test_strict_bodies_refuse_unknown_fields_and_bad_values(
    api: Api, path: str, body: dict[str, object]
) -> None:
    response = api.post("manager", path.format(board_id=api.board_id), body)
    assert problem(response, 422, "validation")["errors"]


def test_unknown_route_is_404_problem(api: Api) -> None:
    problem(api.get("member", "/no-such-thing"), 404, "not-found")
    problem(api.client.get("/api/v2/boards"), 404, "not-found")


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"offset": -1}])
def test_paging_bounds_are_422(api: Api, params: dict[str, int]) -> None:
    problem(api.get("member", f"/boards/{api.board_id}/items", **params), 422, "validation")


def test_limit_and_offset_page_a_list(api: Api) -> None:
    ids = [api.new_item(title=f"Item {n}")["id"] for n in range(3)]
    page = api.ok(api.get("member", f"/boards/{api.board_id}/items", limit=2, offset=1))
    assert [i["id"] for i in page] == ids[1:3]
    assert len(api.ok(api.get("member", f"/boards/{api.board_id}/items", limit=1000))) == 3


def test_times_are_iso_8601_utc(api: Api) -> None:
    item = api.item_in("build")
    assert ISO_UTC.match(item["created_at"]) and ISO_UTC.match(item["committed_at"])
    event = api.ok(api.get("member", f"/items/{item['id']}/events"))[-1]
    assert ISO_UTC.match(event["at"])
