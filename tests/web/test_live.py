"""Live updates: the SSE stream (bearer token or session cookie) and end-to-end delivery."""

from __future__ import annotations

import asyncio
import threading
import time

from fastapi.testclient import TestClient

from app.db.session import Database
from app.live.hub import hub
from app.live.notify import PostgresListener
from app.main import create_app
from app.services import items
from tests.factories import Seed, token_headers
from tests.web.helpers import sign_in


def _change_when_subscribed(seed: Seed, board_id: int, done: list[int]) -> threading.Thread:
    """Creates an item (a real committed change) once a stream listens on the board."""

    def run() -> None:
        deadline = time.monotonic() + 5
        while hub.subscriber_count(board_id) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # PostgreSQL: let the LISTEN thread settle
        with seed.database.unit_of_work() as session:
            detail = items.create_item(
                session=session, board_id=board_id, actor=seed.user("member"), title="Live!"
            )
            done.append(detail.item.id)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _app(database: Database, seconds: float):  # type: ignore[no-untyped-def]
    app = create_app(database, listen=True)
    app.state.live_max_seconds = seconds  # the stream ends by itself: tests never hang
    return app


def test_api_stream_with_bearer_token(database: Database, seed: Seed) -> None:
    with TestClient(_app(database, 2.5)) as client:
        if not database.is_sqlite:
            assert client.app.state.listener.connected.wait(5)  # type: ignore[attr-defined]
        headers = token_headers(client, seed.user("viewer"))
        created: list[int] = []
        thread = _change_when_subscribed(seed, seed.board_id, created)
        response = client.get(f"/api/v1/boards/{seed.board_id}/stream", headers=headers)
        thread.join(5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.text
    assert "retry: 2000" in body
    assert created
    assert 'data: {"event_id": ' in body
    assert "event:" not in body  # unnamed messages: EventSource "message"


def test_page_stream_with_session_cookie(database: Database, seed: Seed) -> None:
    with TestClient(_app(database, 2.5)) as client:
        if not database.is_sqlite:
            assert client.app.state.listener.connected.wait(5)  # type: ignore[attr-defined]
        sign_in(client, seed.user("member"))
        created: list[int] = []
        thread = _change_when_subscribed(seed, seed.board_id, created)
        response = client.get("/me/live")
        thread.join(5)
    assert response.status_code == 200
    assert 'data: {"event_id": ' in response.text


def test_stream_refuses_strangers(client: TestClient, seed: Seed) -> None:
    assert client.get(f"/api/v1/boards/{seed.board_id}/stream").status_code == 401
    headers = token_headers(client, seed.user("outsider"))
    assert client.get(f"/api/v1/boards/{seed.board_id}/stream", headers=headers).status_code == 404
    sign_in(client, seed.user("outsider"))
    assert client.get(f"/boards/{seed.board_id}/live").status_code == 404


def test_change_reaches_the_hub_within_two_seconds(database: Database, seed: Seed) -> None:
    """A committed change by another user arrives at a board subscriber (NOTIFY on PostgreSQL)."""
    listener = None
    if not database.is_sqlite:
        listener = PostgresListener(database.url)
        listener.start()
        assert listener.connected.wait(5)

    async def scenario() -> float:
        async with hub.subscribe(seed.board_id) as subscription:
            started = time.monotonic()
            created: list[int] = []
            thread = _change_when_subscribed(seed, seed.board_id, created)
            await asyncio.wait_for(subscription.queue.get(), timeout=2.5)
            thread.join(2)
            return time.monotonic() - started - 0.2

    try:
        assert asyncio.run(scenario()) < 2.0
    finally:
        if listener is not None:
            listener.stop()


def test_board_page_points_at_the_stream(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    html = client.get(f"/boards/{seed.board_id}").text
    assert f'data-live-url="/boards/{seed.board_id}/live"' in html
