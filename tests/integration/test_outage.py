"""PostgreSQL stopped, frozen (SIGSTOP) or holding a lock, against a real uvicorn server on a
private cluster (tests/pgcluster.py; the shared server is never touched): the API answers 503
`unavailable` with Retry-After, pages a readable 503 page, /healthz 503 without hanging; after
the cluster comes back everything works without a restart; a create whose client gave up is
not duplicated when retried with its Idempotency-Key.

The elapsed-time bounds below are generous hang checks (the configured waits are 1-3 s), not
performance assertions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select

from app.db.migrate import upgrade
from app.db.models import Item
from app.db.session import Database, Timeouts
from app.main import create_app
from tests.factories import PASSWORD, Seed, seed_board
from tests.integration.live_server import live_server
from tests.pgcluster import PgCluster, pg_cluster  # noqa: F401  (the fixture)

# Short waits so the test sees them: the client gives up on a silent server after
# statement 1 s + 2 s grace; libpq's connect timeout cannot go below 2 s.
SHORT = Timeouts(connect_seconds=2, statement_ms=1000, lock_ms=500, pool_seconds=2)
HANG_BOUND_S = 5.0  # /healthz must answer well within this
WRITE_BOUND_S = 20.0  # a write must fail within this, not wait for the database to return


@dataclass
class Stack:
    cluster: PgCluster
    database: Database
    seed: Seed
    base_url: str

    def api(self, role: str = "member", **kwargs: Any) -> httpx.Client:
        client = httpx.Client(base_url=self.base_url, timeout=60, **kwargs)
        response = client.post(
            "/api/v1/auth/token",
            data={"username": self.seed.user(role).email, "password": PASSWORD},
        )
        assert response.status_code == 200, response.text
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return client

    def browser(self, role: str = "member") -> httpx.Client:
        from tests.web.helpers import sign_in

        client = httpx.Client(base_url=self.base_url, timeout=60)
        sign_in(client, self.seed.user(role))  # type: ignore[arg-type]
        return client

    def titled(self, title: str) -> list[int]:
        with self.database.unit_of_work(write=False) as session:
            return list(session.scalars(select(Item.id).where(Item.title == title)))


@pytest.fixture
def stack(pg_cluster: PgCluster) -> Iterator[Stack]:  # noqa: F811
    if not pg_cluster.is_running():
        pg_cluster.start()
    url = pg_cluster.create_database(f"flowboard_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    database = Database(url, timeouts=SHORT)
    seed = seed_board(database)
    try:
        with live_server(create_app(database, listen=False)) as (host, port):
            yield Stack(pg_cluster, database, seed, f"http://{host}:{port}")
    finally:
        pg_cluster.thaw()
        database.dispose()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/problems/unavailable")
    assert body["status"] == 503 and body["detail"]
    assert int(response.headers["retry-after"]) > 0


def assert_unavailable_page(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Temporarily unavailable" in response.text
    assert "reload" in response.text.lower()
    assert int(response.headers["retry-after"]) > 0


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_everything_works(stack: Stack, api: httpx.Client, browser: httpx.Client) -> None:
    board = f"/api/v1/boards/{stack.seed.board_id}"
    assert api.get("/healthz").status_code == 200
    assert api.get(board).status_code == 200
    created = api.post(f"{board}/items", json={"title": f"After {uuid.uuid4().hex[:6]}"})
    assert created.status_code == 201, created.text
    page = browser.get(f"/boards/{stack.seed.board_id}")
    assert page.status_code == 200
    assert created.json()["key"] in page.text


def test_sessions_use_the_configured_timeouts(stack: Stack) -> None:
    with stack.database.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1s"
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "500ms"


def test_database_stopped_then_started(stack: Stack) -> None:
    api, browser = stack.api(), stack.browser()
    board = f"/api/v1/boards/{stack.seed.board_id}"
    assert_everything_works(stack, api, browser)

    stack.cluster.stop()
    try:
        assert_unavailable(api.get(board))
        assert_unavailable(api.post(f"{board}/items", json={"title": "While stopped"}))
        assert_unavailable_page(browser.get(f"/boards/{stack.seed.board_id}"))
        assert_unavailable_page(
            browser.post(
                f"/boards/{stack.seed.board_id}/items",
                data={"title": "While stopped", "csrf_token": browser.csrf_token},  # type: ignore[attr-defined]
            )
        )
        health, elapsed = timed(lambda: api.get("/healthz"))
        assert health.status_code == 503
        assert health.json() == {"status": "degraded", "database": "unavailable"}
        assert elapsed < HANG_BOUND_S
    finally:
        stack.cluster.start()

    # Recovery without a restart: the same server, the same pool, the same sessions.
    assert_everything_works(stack, api, browser)
    assert stack.titled("While stopped") == []


def test_database_frozen_then_thawed(stack: Stack) -> None:
    api, browser = stack.api(), stack.browser()
    board = f"/api/v1/boards/{stack.seed.board_id}"
    assert_everything_works(stack, api, browser)

    stack.cluster.freeze()
    try:
        health, elapsed = timed(lambda: api.get("/healthz"))
        assert health.status_code == 503
        assert health.json()["database"] == "unavailable"
        assert elapsed < HANG_BOUND_S
        write, elapsed = timed(lambda: api.post(f"{board}/items", json={"title": "While frozen"}))
        assert_unavailable(write)
        assert elapsed < WRITE_BOUND_S
        assert_unavailable(api.get(board))
        assert_unavailable_page(browser.get(f"/boards/{stack.seed.board_id}"))
        # Still bounded while the earlier probes' connections hang.
        health, elapsed = timed(lambda: api.get("/healthz"))
        assert health.status_code == 503
        assert elapsed < HANG_BOUND_S
    finally:
        stack.cluster.thaw()

    assert_everything_works(stack, api, browser)
    assert stack.titled("While frozen") == []


def test_a_held_lock_is_503_after_the_lock_timeout(stack: Stack) -> None:
    api = stack.api()
    item = api.post(f"/api/v1/boards/{stack.seed.board_id}/items", json={"title": "Locked out"})
    assert item.status_code == 201
    build = stack.seed.state_id("Build")
    name = stack.database.engine.url.database
    dsn = f"host=127.0.0.1 port={stack.cluster.port} user=postgres dbname={name}"
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT id FROM state WHERE id = %s FOR UPDATE", (build,))
        pull, elapsed = timed(lambda: api.post(f"/api/v1/items/{item.json()['id']}/pull"))
        assert_unavailable(pull)
        assert elapsed < WRITE_BOUND_S
        holder.rollback()
    pulled = api.post(f"/api/v1/items/{item.json()['id']}/pull")
    assert pulled.status_code == 200, pulled.text
    assert pulled.json()["state_id"] == build


def test_a_create_whose_client_gave_up_is_not_duplicated_on_retry(stack: Stack) -> None:
    api = stack.api()
    items = f"/api/v1/boards/{stack.seed.board_id}/items"
    assert api.get("/healthz").status_code == 200
    body = {"title": "Given up on"}
    key = {"Idempotency-Key": str(uuid.uuid4())}

    stack.cluster.freeze()
    try:
        with pytest.raises(httpx.TimeoutException):
            api.post(items, json=body, headers=key, timeout=0.5)  # the client gives up
    finally:
        stack.cluster.thaw()

    # The server carries on with the create its client gave up on and commits it; the retry
    # with the same key gets that answer (waiting for it if it is still running).
    retry = api.post(items, json=body, headers=key)
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("idempotent-replayed") == "true"
    assert stack.titled("Given up on") == [retry.json()["id"]]
    assert api.post(items, json=body, headers=key).json() == retry.json()
