"""Sign-in throttling on the /login form, on both databases (the throttle's clock is frozen
and moved by hand)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.services import throttle
from tests.factories import PASSWORD, Seed
from tests.web.helpers import SESSION_COOKIE, form_token


@dataclass
class Clock:
    now: datetime

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(throttle, "current_time", lambda: frozen.now)
    return frozen


@pytest.fixture
def attacker(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=("198.51.100.7", 40000)) as other:
        yield other


@pytest.fixture
def traveller(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=("203.0.113.20", 40000)) as other:
        yield other


def login(client: TestClient, email: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "next": "/",
            "csrf_token": form_token(page.text),
        },
        follow_redirects=False,
    )


def test_fifty_wrong_passwords_then_the_right_one_is_refused(
    client: TestClient, seed: Seed, clock: Clock
) -> None:
    email = seed.user("member").email
    statuses = [login(client, email, f"guess number {n}").status_code for n in range(50)]
    assert statuses == [401] * 5 + [429] * 45
    right = login(client, email, PASSWORD)
    assert right.status_code == 429
    assert int(right.headers["retry-after"]) >= 1
    assert 'role="alert"' in right.text
    assert "Too many failed sign-ins from this address: wait 1 second, then try again." in (
        right.text
    )
    # The form is offered again (with the email kept), and no session was started.
    assert 'name="csrf_token"' in right.text and f'value="{email}"' in right.text
    assert SESSION_COOKIE not in right.headers.get("set-cookie", "")


def test_the_wait_on_the_form_grows(client: TestClient, seed: Seed, clock: Clock) -> None:
    email = seed.user("member").email
    for _ in range(5):
        login(client, email, "wrong password")
    waits = []
    for _ in range(3):
        refused = login(client, email, "wrong password")
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        clock.advance(waits[-1])
        assert login(client, email, "wrong password").status_code == 401
    assert waits == [1, 2, 4]
    assert "wait 8 seconds" in login(client, email, PASSWORD).text


def test_the_right_password_from_a_new_address_works_after_the_account_delay(
    attacker: TestClient, traveller: TestClient, seed: Seed, clock: Clock
) -> None:
    email = seed.user("member").email
    for n in range(50):
        refused = login(attacker, email, f"guess {n}")
        if refused.status_code == 429:  # a patient attacker sits out every wait
            clock.advance(int(refused.headers["retry-after"]))
            assert login(attacker, email, f"guess {n}").status_code == 401
    held = login(traveller, email, PASSWORD)
    assert held.status_code == 429
    assert "for this account" in held.text
    clock.advance(int(held.headers["retry-after"]))
    signed_in = login(traveller, email, PASSWORD)
    assert signed_in.status_code == 303
    assert traveller.cookies.get(SESSION_COOKIE)
    assert login(attacker, email, PASSWORD).status_code == 429


def test_a_success_on_the_form_resets_the_counters(
    client: TestClient, seed: Seed, clock: Clock
) -> None:
    email = seed.user("member").email
    for _ in range(4):
        assert login(client, email, "wrong password").status_code == 401
    assert login(client, email, PASSWORD).status_code == 303
    statuses = [login(client, email, "wrong password").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
