"""Idempotency-Key on creates (API and the New item form): a repeat with the same key and body
within 24 h answers the first result and creates nothing; another body is 422; racing repeats
create exactly one item, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from app.db import queries
from app.db.models import IdempotencyKey, Item
from app.main import create_app
from tests.api.helpers import Api, problem
from tests.factories import Seed, token_headers
from tests.integration.live_server import live_server
from tests.web.helpers import htmx_headers, sign_in

_FORM_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def items_titled(seed: Seed, title: str) -> list[int]:
    with seed.database.unit_of_work(write=False) as session:
        return list(session.scalars(select(Item.id).where(Item.title == title)))


def stored_keys(seed: Seed) -> int:
    with seed.database.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(IdempotencyKey)) or 0


def create(api: Api, body: dict[str, Any], key: str | None, role: str = "member") -> httpx.Response:
    headers = dict(api.headers(role))
    if key is not None:
        headers["Idempotency-Key"] = key
    return api.client.post(f"/api/v1/boards/{api.board_id}/items", json=body, headers=headers)


def test_a_repeat_answers_the_first_result_and_creates_nothing(api: Api) -> None:
    body = {"title": "Renew the insurance", "class_of_service": "fixed_date"}
    first = create(api, body, "key-1")
    assert first.status_code == 201, first.text
    again = create(api, {"class_of_service": "fixed_date", "title": "Renew the insurance"}, "key-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert items_titled(api.seed, "Renew the insurance") == [first.json()["id"]]
    # Without a key, the same body is a new item, as before.
    assert create(api, body, None).status_code == 201
    assert len(items_titled(api.seed, "Renew the insurance")) == 2


def test_the_same_key_with_another_body_is_422(api: Api) -> None:
    assert create(api, {"title": "First"}, "key-2").status_code == 201
    refused = create(api, {"title": "Second"}, "key-2")
    body = problem(refused, 422, "validation")
    assert "Idempotency-Key" in body["detail"]
    assert items_titled(api.seed, "Second") == []


def test_keys_belong_to_their_user(api: Api) -> None:
    mine = create(api, {"title": "Shared key"}, "same-key", role="member")
    theirs = create(api, {"title": "Shared key"}, "same-key", role="member2")
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_refused_create_stores_no_key_and_may_be_retried(api: Api) -> None:
    refused = create(api, {"title": "Not mine to add"}, "key-3", role="viewer")
    problem(refused, 403, "insufficient-role")
    assert stored_keys(api.seed) == 0
    assert create(api, {"title": "Not mine to add"}, "key-3", role="member").status_code == 201


def test_keys_older_than_a_day_are_forgotten(api: Api) -> None:
    first = create(api, {"title": "Quarterly review"}, "old-key")
    assert first.status_code == 201
    with api.seed.database.unit_of_work() as session:
        session.execute(
            update(IdempotencyKey).values(created_at=queries.now() - timedelta(hours=24, minutes=1))
        )
    later = create(api, {"title": "Quarterly review"}, "old-key")
    assert later.status_code == 201
    assert later.json()["id"] != first.json()["id"]
    assert stored_keys(api.seed) == 1  # the old answer was purged


def test_malformed_keys_are_422(api: Api) -> None:
    for key in (b"x" * 201, b"with space", "caf\u00e9".encode()):
        response = api.client.post(
            f"/api/v1/boards/{api.board_id}/items",
            json={"title": "Malformed key"},
            headers={**api.headers("member"), "Idempotency-Key": key},  # type: ignore[dict-item]
        )
        problem(response, 422, "validation")
    assert items_titled(api.seed, "Malformed key") == []


def test_racing_repeats_create_exactly_one_item(seed: Seed) -> None:
    """Eight clients send the same create with one key at the same moment (real server,
    real threads): one item, and every answer is that item."""
    app = create_app(seed.database, listen=False)
    with TestClient(app) as client:
        headers = token_headers(client, seed.user("member"))
    racers = 8
    barrier = threading.Barrier(racers)
    answers: list[tuple[int, Any]] = []
    lock = threading.Lock()

    with live_server(app) as (host, port):

        def send() -> None:
            with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as http:
                barrier.wait(30)
                response = http.post(
                    f"/api/v1/boards/{seed.board_id}/items",
                    json={"title": "Raced create"},
                    headers={**headers, "Idempotency-Key": "race-key"},
                )
            with lock:
                answers.append((response.status_code, response.json()))

        threads = [threading.Thread(target=send) for _ in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
    assert len(answers) == racers
    assert {status for status, _ in answers} == {201}, answers
    created = items_titled(seed, "Raced create")
    assert len(created) == 1
    assert {body["id"] for _, body in answers} == set(created)


# ---- the New item form -------------------------------------------------------------------


def form_key(html: str) -> str:
    found = _FORM_KEY.search(html)
    assert found, "no idempotency_key field in the page"
    return found.group(1)


def test_the_new_item_form_carries_a_key_per_render(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    first = form_key(client.get(f"/boards/{seed.board_id}").text)
    second = form_key(client.get(f"/boards/{seed.board_id}").text)
    assert first != second


def test_a_resent_new_item_form_creates_once(client: TestClient, seed: Seed) -> None:
    signed = sign_in(client, seed.user("member"))
    key = form_key(client.get(f"/boards/{seed.board_id}").text)
    form = {"csrf_token": signed.csrf_token, "title": "Resent form", "idempotency_key": key}
    for _ in range(2):  # the browser's resend after a timeout, or Back and submit again
        response = client.post(f"/boards/{seed.board_id}/items", data=form, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/boards/{seed.board_id}"
    assert len(items_titled(seed, "Resent form")) == 1
    # The same key for another item is refused on the board, and creates nothing.
    response = client.post(
        f"/boards/{seed.board_id}/items",
        data={**form, "title": "Another item"},
        headers=htmx_headers(client),
    )
    assert response.status_code == 422
    assert 'role="alert"' in response.text and "Idempotency-Key" in response.text
    assert items_titled(seed, "Another item") == []


def test_after_an_htmx_create_the_form_gets_a_fresh_key(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    key = form_key(client.get(f"/boards/{seed.board_id}").text)
    response = client.post(
        f"/boards/{seed.board_id}/items",
        data={"title": "Via htmx"},
        headers=htmx_headers(client, **{"Idempotency-Key": key}),
    )
    assert response.status_code == 200
    fresh = re.search(r'<input[^>]*id="new-item-key"[^>]*hx-swap-oob="true"', response.text)
    assert fresh, "no out-of-band key in the htmx answer"
    assert form_key(fresh.group(0)) != key
    # The header alone works too: resending it answers the board and creates nothing.
    again = client.post(
        f"/boards/{seed.board_id}/items",
        data={"title": "Via htmx"},
        headers=htmx_headers(client, **{"Idempotency-Key": key}),
    )
    assert again.status_code == 200
    assert len(items_titled(seed, "Via htmx")) == 1


CREATES: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    # name: (role, path template, body, another body)
    "board": ("admin", "/boards", {"name": "Audits", "key": "AUD"}, {"name": "Other"}),
    "state": ("manager", "/boards/{board}/states", {"name": "Check"}, {"name": "Check 2"}),
    "criterion": (
        "manager",
        "/states/{build}/criteria",
        {"text": "Peer read", "gate": "exit"},
        {"text": "Peer read", "gate": "entry"},
    ),
    "block reason": (
        "manager",
        "/boards/{board}/block-reasons",
        {"name": "Waiting on legal"},
        {"name": "Waiting on finance"},
    ),
    "block": ("member", "/items/{item}/blocks", {"reason_id": 0}, {"reason_id": 0, "note": "x"}),
    "comment": ("member", "/items/{item}/comments", {"body": "Looks good"}, {"body": "Other"}),
}


def _create_path(api: Api, template: str) -> str:
    item = api.item_in("build", owner="member")
    return template.format(board=api.board_id, build=api.state("Build"), item=item["id"])


def _with_reason(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    if "reason_id" not in body:
        return body
    reasons = api.ok(api.get("member", f"/boards/{api.board_id}/block-reasons"))
    return {**body, "reason_id": reasons[0]["id"]}


@pytest.mark.parametrize("what", list(CREATES))
def test_every_create_route_answers_a_repeat_with_its_first_result(api: Api, what: str) -> None:
    role, template, body, other = CREATES[what]
    path = _create_path(api, template)
    body, other = _with_reason(api, body), _with_reason(api, other)
    headers = {**api.headers(role), "Idempotency-Key": "retry-" + what.replace(" ", "-")}
    first = api.client.post(f"/api/v1{path}", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = api.client.post(f"/api/v1{path}", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    problem(api.client.post(f"/api/v1{path}", json=other, headers=headers), 422, "validation")
    # Exactly one was made: the list (or the resource) shows it once.
    listed = api.client.get(first.headers["location"], headers=api.headers(role))
    assert listed.status_code == 200
    if isinstance(listed.json(), list):
        assert [x["id"] for x in listed.json()].count(first.json()["id"]) == 1
