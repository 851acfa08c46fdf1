"""Sign-in throttling on POST /api/v1/auth/token, on both databases.

The throttle's clock is frozen and moved by hand (no test waits or measures time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth import passwords
from app.db.models import AuditEvent, SignInThrottle
from app.db.session import Database
from app.flow import throttle as rules
from app.flow.errors import NotAuthenticated, TooManyAttempts
from app.services import throttle
from tests.api.helpers import problem
from tests.factories import PASSWORD, Seed

ATTACKER = ("198.51.100.7", 40000)
TRAVELLER = ("203.0.113.20", 40000)


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
def client_from(app: FastAPI) -> Iterator[Callable[[tuple[str, int]], TestClient]]:
    """TestClients of the same app as seen from other client addresses."""
    opened: list[TestClient] = []

    def make(address: tuple[str, int]) -> TestClient:
        other = TestClient(app, client=address)
        opened.append(other)
        return other

    yield make
    for other in opened:
        other.close()


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each password verification (the real one still runs)."""
    seen: list[str] = []
    real = passwords.verify_password

    def counting(password_hash: str | None, password: str) -> bool:
        seen.append(password)
        return real(password_hash, password)

    monkeypatch.setattr("app.services.users.verify_password", counting)
    return seen


def token(client: TestClient, email: str, password: str) -> httpx.Response:
    return client.post("/api/v1/auth/token", data={"username": email, "password": password})


def rows(database: Database) -> dict[str, SignInThrottle]:
    with database.unit_of_work() as session:
        return {row.key: row for row in session.scalars(select(SignInThrottle))}


def audit_rows(database: Database, type: str) -> list[AuditEvent]:
    with database.unit_of_work() as session:
        query = select(AuditEvent).where(AuditEvent.type == type).order_by(AuditEvent.id)
        return list(session.scalars(query))


def test_fifty_wrong_passwords_then_the_right_one_is_refused(
    client: TestClient, seed: Seed, clock: Clock, verifications: list[str]
) -> None:
    email = seed.user("member").email
    statuses = [token(client, email, f"guess number {n}").status_code for n in range(50)]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 45
    right = token(client, email, PASSWORD)
    body = problem(right, 429, "too-many-attempts")
    assert int(right.headers["retry-after"]) == body["retry_after"] >= 1
    assert "access_token" not in right.text
    # Only the five free failures were checked; the throttled ones never reached argon2.
    assert len(verifications) == 5


def test_retry_after_grows_with_each_failure_past_the_free_ones(
    client: TestClient, seed: Seed, clock: Clock
) -> None:
    email = seed.user("member").email
    for _ in range(5):
        assert token(client, email, "wrong password").status_code == 401
    waits = []
    for _ in range(4):
        refused = token(client, email, "wrong password")
        problem(refused, 429, "too-many-attempts")
        wait = int(refused.headers["retry-after"])
        waits.append(wait)
        clock.advance(wait)  # the block has passed: the next attempt is checked, and fails
        assert token(client, email, "wrong password").status_code == 401
    assert waits == [1, 2, 4, 8]


def test_the_right_password_from_a_new_address_works_after_the_account_delay(
    client_from: Callable[[tuple[str, int]], TestClient], seed: Seed, clock: Clock
) -> None:
    email = seed.user("member").email
    attacker = client_from(ATTACKER)
    for n in range(50):  # a patient attacker: each wait is sat out, so every guess is checked
        refused = token(attacker, email, f"guess {n}")
        if refused.status_code == 429:
            clock.advance(int(refused.headers["retry-after"]))
            assert token(attacker, email, f"guess {n}").status_code == 401
    # The attacker's address waits long; the account's own wait stays short.
    attacker_wait = int(token(attacker, email, PASSWORD).headers["retry-after"])
    traveller = client_from(TRAVELLER)
    refused = token(traveller, email, PASSWORD)
    problem(refused, 429, "too-many-attempts")
    account_wait = int(refused.headers["retry-after"])
    assert 1 <= account_wait <= rules.ACCOUNT_MAX_DELAY.total_seconds() < attacker_wait
    clock.advance(account_wait)
    assert token(traveller, email, PASSWORD).status_code == 200
    # The attacker's address is still blocked, even with the right password.
    problem(token(attacker, email, PASSWORD), 429, "too-many-attempts")


def test_an_address_the_person_signed_in_from_is_not_held_by_the_account_block(
    client: TestClient,
    client_from: Callable[[tuple[str, int]], TestClient],
    seed: Seed,
    clock: Clock,
) -> None:
    email = seed.user("member").email
    assert token(client, email, PASSWORD).status_code == 200  # the person's usual address
    attacker = client_from(ATTACKER)
    for n in range(20):
        token(attacker, email, f"guess {n}")
    problem(token(client_from(TRAVELLER), email, PASSWORD), 429, "too-many-attempts")
    assert token(client, email, PASSWORD).status_code == 200


def test_refused_attempts_do_not_lengthen_the_account_block(
    client_from: Callable[[tuple[str, int]], TestClient], seed: Seed, clock: Clock
) -> None:
    email = seed.user("member").email
    attacker = client_from(ATTACKER)
    for n in range(6):
        token(attacker, email, f"guess {n}")
    before = rows(seed.database)[throttle.account_key(email)]
    for n in range(30):  # from many other addresses, all refused unchecked
        token(client_from((f"192.0.2.{n + 1}", 40000)), email, "another guess")
    after = rows(seed.database)[throttle.account_key(email)]
    assert (after.failures, after.blocked_until) == (before.failures, before.blocked_until)


def test_a_success_resets_the_counters(client: TestClient, seed: Seed, clock: Clock) -> None:
    email = seed.user("member").email
    for _ in range(4):
        assert token(client, email, "wrong password").status_code == 401
    counted = rows(seed.database)
    assert counted[throttle.address_key("testclient")].failures == 4
    assert counted[throttle.account_key(email)].failures == 4
    assert token(client, email, PASSWORD).status_code == 200
    assert rows(seed.database) == {}
    # The free failures are free again.
    statuses = [token(client, email, "wrong password").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


def test_unknown_emails_are_throttled_like_real_ones(
    client_from: Callable[[tuple[str, int]], TestClient], seed: Seed, clock: Clock
) -> None:
    """Otherwise a 429 (or its absence) would tell which accounts exist."""
    for n, email in enumerate(("nobody@example.org", seed.user("member").email)):
        attacker = client_from((f"198.51.100.{n + 1}", 40000))
        statuses = [token(attacker, email, "wrong password").status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        # The account's block meets a new address too.
        other = client_from((f"198.51.100.{n + 101}", 40000))
        problem(token(other, email, "wrong password"), 429, "too-many-attempts")


def test_sign_ins_failures_and_throttling_are_audited(
    client: TestClient,
    client_from: Callable[[tuple[str, int]], TestClient],
    seed: Seed,
    clock: Clock,
) -> None:
    member = seed.user("member")
    token(client_from(ATTACKER), "nobody@example.org", "my secret password")
    for _ in range(5):
        token(client, member.email, "wrong password")
    token(client, member.email, PASSWORD)  # throttled: 429, not recorded one by one
    clock.advance(1)
    assert token(client, member.email, PASSWORD).status_code == 200

    failed = audit_rows(seed.database, "sign_in_failed")
    assert len(failed) == 6
    assert (failed[0].actor_id, failed[0].ip, failed[0].data) == (
        None,
        ATTACKER[0],
        {"account": "unknown"},
    )
    assert "my secret password" not in str([row.data for row in failed])
    assert {(row.actor_id, row.ip, row.data["email"]) for row in failed[1:]} == {
        (member.id, "testclient", member.email)
    }
    throttled = audit_rows(seed.database, "throttled")
    assert [(t.data["scope"], t.data["failures"], t.data["wait_seconds"]) for t in throttled] == [
        ("address", 5, 1),
        ("account", 5, 1),
    ]
    assert all(row.ip == "testclient" and row.actor_id == member.id for row in throttled)
    (signed_in,) = audit_rows(seed.database, "signed_in")
    assert (signed_in.actor_id, signed_in.ip, signed_in.data) == (
        member.id,
        "testclient",
        {"email": member.email},
    )


def test_racing_failures_count_exactly(seed: Seed, clock: Clock) -> None:
    """Twenty wrong passwords at once from one address: exactly the five free ones are
    checked and counted; the rest wait for the row lock, then see the block."""
    database = seed.database
    email = seed.user("member").email
    outcomes: list[str] = []
    start = threading.Barrier(20)

    def attempt() -> None:
        session = database.session(write=True)
        try:
            start.wait()
            throttle.sign_in(
                session=session, email=email, password="wrong", ip="192.0.2.99", now=clock.now
            )
        except NotAuthenticated:
            session.commit()
            outcomes.append("401")
        except TooManyAttempts:
            outcomes.append("429")
        finally:
            session.close()

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["401"] * 5 + ["429"] * 15
    counted = rows(database)
    assert counted[throttle.address_key("192.0.2.99")].failures == 5
    assert counted[throttle.account_key(email)].failures == 5
    assert len(audit_rows(database, "sign_in_failed")) == 5


def test_wrong_current_passwords_on_a_password_change_are_throttled_like_sign_ins(
    client: TestClient, seed: Seed, clock: Clock, database: Database
) -> None:
    """A stolen token or session must not become a way to guess the account's password."""
    email = seed.users["member"].email
    bearer = {"Authorization": f"Bearer {token(client, email, PASSWORD).json()['access_token']}"}
    attempts = [
        client.post(
            "/api/v1/users/me/password",
            json={"current_password": f"guess-{n}", "new_password": "a-new-password"},
            headers=bearer,
        )
        for n in range(12)
    ]
    assert attempts[0].status_code == 422
    assert problem(attempts[0], 422, "validation")["field"] == "current_password"
    refused = [r for r in attempts if r.status_code == 429]
    assert refused, [r.status_code for r in attempts]
    problem(refused[0], 429, "too-many-attempts")
    assert int(refused[0].headers["Retry-After"]) >= 1
    # Even the right current password waits while the block lasts ...
    right = {"current_password": PASSWORD, "new_password": "a-new-password"}
    assert client.post("/api/v1/users/me/password", json=right, headers=bearer).status_code == 429
    with database.unit_of_work() as session:
        failed = session.scalars(
            select(AuditEvent).where(AuditEvent.type == "sign_in_failed")
        ).all()
    assert len(failed) >= 5
    # ... and goes through once it has passed.
    clock.advance(3600)
    assert client.post("/api/v1/users/me/password", json=right, headers=bearer).status_code == 204
