"""Behind a TLS-terminating reverse proxy (issue 7, point 10), on both databases: the
forwarded scheme, client address and host are believed only from the addresses in
FLOWBOARD_TRUSTED_PROXIES. Then cookies are Secure, HSTS is sent, the Origin check compares
with the public https origin, and sign-ins are recorded with the real client's address.

TestClient's peer address is "testclient", so trusting that name stands for the proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import get_settings
from app.db.models import AuditEvent
from app.db.session import Database
from app.main import create_app
from tests.factories import PASSWORD, Seed
from tests.web.helpers import form_token

PUBLIC = "https://board.example.org"
FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Host": "board.example.org",
}


@pytest.fixture
def app_trusting(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], FastAPI]]:
    """create_app with FLOWBOARD_TRUSTED_PROXIES set to the given value."""

    def make(trusted: str) -> FastAPI:
        monkeypatch.setenv("FLOWBOARD_TRUSTED_PROXIES", trusted)
        get_settings.cache_clear()
        return create_app(database, listen=False)

    yield make
    get_settings.cache_clear()  # the next test reads the environment as it is again


def sign_in_through(
    client: TestClient, email: str, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    """(login page, sign-in answer), sending the pre-auth cookie by hand: once Secure, the
    test client would not send it over its plain-http connection."""
    page = client.get("/login", headers=headers)
    assert page.status_code == 200
    cookie = page.cookies.get("flowboard_preauth")
    assert cookie
    client.cookies.clear()
    answer = client.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": form_token(page.text),
            "next": "/me",
        },
        headers={**headers, "Cookie": f'flowboard_preauth="{cookie}"'},
        follow_redirects=False,
    )
    return page, answer


def sign_in_addresses(database: Database) -> list[str | None]:
    with database.unit_of_work(write=False) as session:
        return list(
            session.scalars(
                select(AuditEvent.ip).where(AuditEvent.type == "signed_in").order_by(AuditEvent.id)
            )
        )


def cookie_is_secure(response: httpx.Response, name: str) -> bool:
    lines = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    [line] = [v for v in lines if v.startswith(f"{name}=")]
    return "secure" in [part.strip().lower() for part in line.split(";")]


def test_a_trusted_proxy_makes_cookies_secure_and_origin_its_public_one(
    app_trusting: Callable[[str], FastAPI], seed: Seed, database: Database
) -> None:
    with TestClient(app_trusting("testclient")) as client:
        page, answer = sign_in_through(
            client, seed.user("member").email, {**FORWARDED, "Origin": PUBLIC}
        )
        assert page.headers["strict-transport-security"].startswith("max-age=31536000")
        assert cookie_is_secure(page, "flowboard_preauth")
        assert answer.status_code == 303, answer.text
        assert cookie_is_secure(answer, "flowboard_session")
    assert sign_in_addresses(database) == ["203.0.113.7"]


def test_the_host_header_as_the_proxy_passes_it_counts_too(
    app_trusting: Callable[[str], FastAPI], seed: Seed
) -> None:
    headers = {"X-Forwarded-Proto": "https", "Host": "board.example.org", "Origin": PUBLIC}
    with TestClient(app_trusting("testclient")) as client:
        _, answer = sign_in_through(client, seed.user("member").email, headers)
        assert answer.status_code == 303, answer.text


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://board.example.org", "https://board.example.org:8443"]
)
def test_another_origin_is_still_refused_behind_a_trusted_proxy(
    app_trusting: Callable[[str], FastAPI], seed: Seed, origin: str
) -> None:
    with TestClient(app_trusting("testclient")) as client:
        _, answer = sign_in_through(
            client, seed.user("member").email, {**FORWARDED, "Origin": origin}
        )
        assert answer.status_code == 403


def test_a_malformed_forwarded_host_is_ignored(
    app_trusting: Callable[[str], FastAPI], seed: Seed
) -> None:
    headers = {**FORWARDED, "X-Forwarded-Host": "board.example.org/evil", "Origin": PUBLIC}
    with TestClient(app_trusting("testclient")) as client:
        _, answer = sign_in_through(client, seed.user("member").email, headers)
        assert answer.status_code == 403  # own origin stays https://testserver


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8, 192.0.2.1"])
def test_forwarded_headers_from_anyone_else_are_ignored(
    app_trusting: Callable[[str], FastAPI], seed: Seed, database: Database, trusted: str
) -> None:
    with TestClient(app_trusting(trusted)) as client:
        page, answer = sign_in_through(
            client, seed.user("member").email, {**FORWARDED, "Origin": PUBLIC}
        )
        assert "strict-transport-security" not in page.headers
        assert not cookie_is_secure(page, "flowboard_preauth")
        assert answer.status_code == 403  # the origin is http://testserver, not PUBLIC
        # Without an Origin header the sign-in works, recorded with the direct peer.
        _, plain = sign_in_through(client, seed.user("member").email, FORWARDED)
        assert plain.status_code == 303, plain.text
        assert not cookie_is_secure(plain, "flowboard_session")
    assert sign_in_addresses(database) == ["testclient"]


def test_hsts_and_secure_cookies_follow_the_forwarded_scheme_only_when_trusted(
    app_trusting: Callable[[str], FastAPI], seed: Seed
) -> None:
    with TestClient(app_trusting("testclient")) as client:
        plain = client.get("/login", headers={"X-Forwarded-Proto": "http"})
        assert "strict-transport-security" not in plain.headers
        assert not cookie_is_secure(plain, "flowboard_preauth")
        api = client.get("/api/v1/me", headers={"X-Forwarded-Proto": "https"})
        assert api.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
