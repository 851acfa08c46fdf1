"""Signing in through the real form, for web, settings and browser tests.

client = sign_in(client, seed.user("member"))      # same TestClient, now with the cookie
client.post(url, data={"csrf_token": client.csrf_token, ...})
client.post(url, headers=htmx_headers(client))    # as board.js sends it
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db import queries
from app.db.models import Event, Item, User
from app.services import blocks, boards, items
from tests.factories import PASSWORD, Seed

SESSION_COOKIE = "flowboard_session"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


class SignedIn(TestClient):
    """A TestClient with a `csrf_token` attribute (set by sign_in)."""

    csrf_token: str


def form_token(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no csrf_token field in the page"
    return found.group(1)


def meta_token(html: str) -> str:
    found = _META.search(html)
    assert found, "no csrf-token meta in the page"
    return found.group(1)


def sign_in(client: TestClient, user: User | str, password: str = PASSWORD) -> SignedIn:
    """Signs in through GET/POST /login; returns the same client with `.csrf_token` set."""
    email = user if isinstance(user, str) else user.email
    page = client.get("/login")
    assert page.status_code == 200, page.text
    response = client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": form_token(page.text),
            "next": "/me",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert client.cookies.get(SESSION_COOKIE)
    me = client.get("/me")
    assert me.status_code == 200, me.text
    client.csrf_token = meta_token(me.text)  # type: ignore[attr-defined]
    return client  # type: ignore[return-value]


def htmx_headers(client: TestClient, **extra: str) -> dict[str, str]:
    """Headers like board.js sends: HX-Request and X-CSRF-Token."""
    return {"HX-Request": "true", "X-CSRF-Token": client.csrf_token, **extra}  # type: ignore[attr-defined]


def new_client(app: object) -> TestClient:
    """A second, independent browser on the same app (remember to close it)."""
    return TestClient(app)  # type: ignore[arg-type]


# ---------------- Building board situations through the real services ----------------


def add_item(
    seed: Seed,
    title: str = "Item",
    *,
    by: str = "member",
    cos: str = "standard",
    into: str | None = None,
    ready: bool = False,
    puller: str | None = None,
) -> int:
    """A new item, optionally pulled along the flow into state `into` (and marked ready).

    Each pull is done by `puller` or, for reviewer states, the reviewer; the item's owner marks
    it ready before the next pull.
    """
    with seed.database.unit_of_work() as session:
        detail = items.create_item(
            session=session,
            board_id=seed.board_id,
            actor=seed.user(by),
            title=title,
            class_of_service=cos,
        )
        item_id = detail.item.id
    if into is not None:
        names = list(seed.states)
        for name in names[1 : names.index(into) + 1]:
            state = seed.states[name]
            who = puller or ("reviewer" if state.pull_role == "reviewer" else by)
            with seed.database.unit_of_work() as session:
                items.pull_item(session=session, item_id=item_id, actor=seed.user(who))
            if (name != into or ready) and state.kind == "work":
                with seed.database.unit_of_work() as session:
                    items.mark_ready(session=session, item_id=item_id, actor=seed.user(who))
    return item_id


def block(seed: Seed, item_id: int, *, by: str = "member", waiting_on: str = "CFO") -> int:
    with seed.database.unit_of_work() as session:
        reason = queries.block_reasons(session, seed.board_id)[0]
        found = blocks.block_item(
            session=session,
            item_id=item_id,
            actor=seed.user(by),
            reason_id=reason.id,
            note="why",
            waiting_on=waiting_on,
        )
        return found.id


def add_criterion(seed: Seed, state: str, text: str, gate: str = "exit") -> int:
    with seed.database.unit_of_work() as session:
        criterion = boards.add_criterion(
            session=session,
            state_id=seed.state_id(state),
            actor=seed.user("admin"),
            text=text,
            gate=gate,
        )
        return criterion.id


def item_state(seed: Seed, item_id: int) -> tuple[int, str | None, int]:
    """(state id, stage, version) read straight from the database."""
    with seed.database.unit_of_work(write=False) as session:
        item = session.get(Item, item_id)
        assert item is not None
        return item.state_id, item.stage, item.version


def event_count(seed: Seed) -> int:
    with seed.database.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def key(seed: Seed, item_id: int) -> str:
    """The item's key (like TST-3): numbers are per board, ids are not."""
    with seed.database.unit_of_work(write=False) as session:
        item = session.get(Item, item_id)
        assert item is not None
        return item.key
