"""A live stream ends within seconds once its access goes: sign-out, token revoked, account
deactivated, removed from the board (the hub's signal: in-process on SQLite, NOTIFY on
PostgreSQL), and by the periodic re-check when no signal comes at all.

Each stream's app may stream for 60 s at most and (except in the re-check test) re-checks only
every 60 s, so a stream that ends with `: access ended` was ended by the signal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.db.models import WebSession
from app.db.session import Database
from app.live.hub import hub
from app.main import create_app
from tests.factories import PASSWORD, Seed, token_headers
from tests.integration.live_server import live_server
from tests.web.helpers import SESSION_COOKIE, sign_in

ENDED = ": access ended"


def _app(database: Database, *, max_seconds: float = 60, recheck: float = 60) -> FastAPI:
    app = create_app(database, listen=True)
    app.state.live_max_seconds = max_seconds  # a stream that is never ended cannot hang a test
    app.state.live_recheck_seconds = recheck
    return app


def _when_watching(user_id: int, action: Callable[[], None]) -> threading.Thread:
    """Runs `action` once a stream of that user listens (and has made its first check)."""
    errors: list[BaseException] = []

    def run() -> None:
        deadline = time.monotonic() + 10
        while hub.watch_count(user_id) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # past the stream's first check; PostgreSQL: LISTEN has settled
        try:
            action()
        except BaseException as error:  # reported by the test through `errors`
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def _stream(
    client: TestClient, url: str, user_id: int, action: Callable[[], None], **kwargs: object
) -> str:
    thread = _when_watching(user_id, action)
    response = client.get(url, **kwargs)  # type: ignore[arg-type]
    thread.join(10)
    assert not thread.errors, thread.errors  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    return response.text


def _listening(client: TestClient, database: Database) -> None:
    if not database.is_sqlite:
        assert client.app.state.listener.connected.wait(5)  # type: ignore[attr-defined]


def test_stream_ends_after_sign_out(database: Database, seed: Seed) -> None:
    member = seed.user("member")
    app = _app(database)
    with TestClient(app) as client:
        _listening(client, database)
        browser = sign_in(client, member)
        other = TestClient(app)
        other.cookies.set(SESSION_COOKIE, browser.cookies[SESSION_COOKIE])

        def sign_out() -> None:
            response = other.post(
                "/logout", data={"csrf_token": browser.csrf_token}, follow_redirects=False
            )
            assert response.status_code == 303

        body = _stream(browser, f"/boards/{seed.board_id}/live", member.id, sign_out)
        other.close()
        assert ENDED in body
        # The browser's reconnect is refused.
        again = TestClient(app)
        again.cookies.set(SESSION_COOKIE, browser.cookies.get(SESSION_COOKIE) or "x")
        assert again.get(f"/api/v1/boards/{seed.board_id}/stream").status_code == 401
        again.close()


def test_stream_ends_after_token_revocation(database: Database, seed: Seed) -> None:
    viewer = seed.user("viewer")
    app = _app(database)
    with TestClient(app) as client:
        _listening(client, database)
        headers = token_headers(client, viewer)
        other = TestClient(app)

        def revoke() -> None:
            assert other.delete("/api/v1/auth/token", headers=headers).status_code == 204

        url = f"/api/v1/boards/{seed.board_id}/stream"
        body = _stream(client, url, viewer.id, revoke, headers=headers)
        other.close()
        assert ENDED in body
        assert client.get(url, headers=headers).status_code == 401


def test_stream_ends_when_a_named_token_is_revoked(database: Database, seed: Seed) -> None:
    viewer = seed.user("viewer")
    app = _app(database)
    with TestClient(app) as client:
        _listening(client, database)
        signed_in = token_headers(client, viewer)
        created = client.post(
            "/api/v1/tokens", json={"name": "Wallboard", "scope": "read"}, headers=signed_in
        ).json()
        headers = {"Authorization": f"Bearer {created['token']}"}
        other = TestClient(app)

        def revoke() -> None:
            response = other.delete(f"/api/v1/tokens/{created['id']}", headers=signed_in)
            assert response.status_code == 204

        body = _stream(client, "/me/live", viewer.id, revoke, headers=headers)
        other.close()
        assert ENDED in body


def test_stream_ends_when_the_account_is_deactivated(database: Database, seed: Seed) -> None:
    member = seed.user("member")
    app = _app(database)
    with TestClient(app) as client:
        _listening(client, database)
        admin = token_headers(client, seed.user("admin"))
        sign_in(client, member)
        other = TestClient(app)

        def deactivate() -> None:
            response = other.patch(
                f"/api/v1/users/{member.id}", json={"is_active": False}, headers=admin
            )
            assert response.status_code == 200

        body = _stream(client, f"/boards/{seed.board_id}/live", member.id, deactivate)
        other.close()
        assert ENDED in body


def test_stream_ends_when_the_member_is_removed(database: Database, seed: Seed) -> None:
    member = seed.user("member2")
    app = _app(database)
    with TestClient(app) as client:
        _listening(client, database)
        manager = token_headers(client, seed.user("manager"))
        headers = token_headers(client, member)
        other = TestClient(app)

        def remove() -> None:
            response = other.delete(
                f"/api/v1/boards/{seed.board_id}/members/{member.id}", headers=manager
            )
            assert response.status_code == 204

        url = f"/api/v1/boards/{seed.board_id}/stream"
        body = _stream(client, url, member.id, remove, headers=headers)
        other.close()
        assert ENDED in body
        assert client.get(url, headers=headers).status_code == 404


def test_my_work_stream_ends_when_a_board_is_taken_away(database: Database, seed: Seed) -> None:
    member = seed.user("member2")
    app = _app(database)
    with TestClient(app) as client:
        _listening(client, database)
        manager = token_headers(client, seed.user("manager"))
        sign_in(client, member)
        other = TestClient(app)

        def remove() -> None:
            response = other.delete(
                f"/api/v1/boards/{seed.board_id}/members/{member.id}", headers=manager
            )
            assert response.status_code == 204

        body = _stream(client, "/me/live", member.id, remove)
        other.close()
        assert ENDED in body


def test_periodic_recheck_ends_a_stream_without_any_signal(database: Database, seed: Seed) -> None:
    """A session ended behind the app's back (no hook, no NOTIFY) still ends the stream."""
    member = seed.user("member")
    app = _app(database, recheck=1)
    with TestClient(app) as client:
        _listening(client, database)
        sign_in(client, member)

        def end_quietly() -> None:
            with database.engine.begin() as conn:
                conn.execute(
                    update(WebSession)
                    .where(WebSession.user_id == member.id)
                    .values(ended_at=datetime.now(UTC))
                )

        body = _stream(client, f"/boards/{seed.board_id}/live", member.id, end_quietly)
        assert ENDED in body


def test_others_losing_access_leave_my_stream_alone(database: Database, seed: Seed) -> None:
    member, viewer = seed.user("member"), seed.user("viewer")
    app = _app(database, max_seconds=3, recheck=1)
    with TestClient(app) as client:
        _listening(client, database)
        admin = token_headers(client, seed.user("admin"))
        sign_in(client, member)
        other = TestClient(app)

        def deactivate_someone_else() -> None:
            response = other.patch(
                f"/api/v1/users/{viewer.id}", json={"is_active": False}, headers=admin
            )
            assert response.status_code == 200

        body = _stream(client, f"/boards/{seed.board_id}/live", member.id, deactivate_someone_else)
        other.close()
        assert ENDED not in body
        assert ": connected" in body


def test_stream_over_a_real_socket_ends_when_its_token_is_revoked(
    database: Database, seed: Seed
) -> None:
    """Served by uvicorn: the client reads `connected`, the token is revoked from another
    connection, and the open stream then closes by itself."""
    app = _app(database)
    with live_server(app) as (host, port):
        base = f"http://{host}:{port}"
        with httpx.Client(base_url=base, timeout=httpx.Timeout(30.0)) as http:
            signed_in = http.post(
                "/api/v1/auth/token",
                data={"username": seed.user("viewer").email, "password": PASSWORD},
            )
            headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
            if not database.is_sqlite:
                assert app.state.listener.connected.wait(5)
            url = f"/api/v1/boards/{seed.board_id}/stream"
            seen: list[str] = []
            streamer = httpx.Client(base_url=base, timeout=httpx.Timeout(30.0))
            with streamer, streamer.stream("GET", url, headers=headers) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                for line in lines:
                    seen.append(line)
                    if line.startswith(": connected"):
                        break
                time.sleep(0.5)  # past the stream's first check
                assert http.delete("/api/v1/auth/token", headers=headers).status_code == 204
                seen.extend(lines)  # returns only when the server closes the stream
            assert ENDED in seen
            assert http.get(url, headers=headers).status_code == 401
