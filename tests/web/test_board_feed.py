"""Live deltas for board pages: rendered once per board and viewer variant, streamed as
`event: delta`; changes that are not about cards become `event: refresh`."""

from __future__ import annotations

import re
import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db.models import Event
from app.db.session import Database
from app.live.hub import hub
from app.main import create_app
from app.services import boards as board_service
from app.services import items
from app.web.board_feed import render_messages
from tests.factories import Seed
from tests.web.helpers import add_item, key, sign_in


def _newest_event(seed: Seed) -> int:
    with seed.database.unit_of_work(write=False) as session:
        return int(
            session.scalar(select(func.max(Event.id)).where(Event.board_id == seed.board_id)) or 0
        )


def test_one_rendering_per_variant_and_owner_buttons(seed: Seed) -> None:
    item_id = add_item(seed, "mine", into="Build", puller="member")
    before = _newest_event(seed)  # the last event of "mine"
    add_item(seed, "another")  # an item created in the backlog: one more event
    upto = _newest_event(seed)
    member, member2, viewer = (seed.user(n).id for n in ("member", "member2", "viewer"))
    reviewer = seed.user("reviewer").id
    variants = {("member", member), ("member", member2), ("viewer", viewer), ("reviewer", reviewer)}
    messages = render_messages(seed.database, seed.board_id, before - 1, upto, variants)
    assert {m.kind for m in messages.values()} == {"delta"}
    owner, other, watcher = (
        messages[("member", member)],
        messages[("member", member2)],
        messages[("viewer", viewer)],
    )
    # The owner may mark their card ready; another member may not; a viewer gets no buttons.
    mark = f'aria-label="Mark ready {key(seed, item_id)}"'
    assert mark in owner.data and mark not in other.data
    assert "<button" not in watcher.data and "data-pull-url" not in watcher.data
    # Two members who own none of the changed cards share one rendering (the same object).
    shared = render_messages(
        seed.database,
        seed.board_id,
        upto - 1,
        upto,
        {("member", member), ("member", member2), ("member", viewer)},
    )
    assert shared[("member", member2)] is shared[("member", viewer)]
    # Heads come with every delta: the Build WIP badge says 1/3.
    assert f'id="wip-{seed.state_id("Build")}">1/3</span>' in owner.data


def test_a_change_that_is_not_about_cards_asks_for_a_refresh(seed: Seed) -> None:
    before = _newest_event(seed)
    with seed.database.unit_of_work() as session:
        board_service.update_state(
            session=session,
            state_id=seed.state_id("Build"),
            actor=seed.user("admin"),
            changes={"wip_limit": 5},
        )
    upto = _newest_event(seed)
    assert upto > before
    member = seed.user("member").id
    messages = render_messages(seed.database, seed.board_id, before, upto, {("member", member)})
    assert messages[("member", member)].kind == "refresh"
    assert messages[("member", member)].data == f'{{"event_id": {upto}}}'


def _pull_when_watched(seed: Seed, item_id: int) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 5
        while hub.subscriber_count(seed.board_id) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # every stream attached (PostgreSQL: the LISTEN thread settled)
        with seed.database.unit_of_work() as session:
            items.pull_item(session=session, item_id=item_id, actor=seed.user("member2"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_board_page_stream_carries_the_delta(database: Database, seed: Seed) -> None:
    item_id = add_item(seed, "pull me")
    app = create_app(database, listen=True)
    app.state.live_max_seconds = 2.5
    with TestClient(app) as client:
        if not database.is_sqlite:
            assert client.app.state.listener.connected.wait(5)  # type: ignore[attr-defined]
        sign_in(client, seed.user("member"))
        thread = _pull_when_watched(seed, item_id)
        response = client.get(f"/boards/{seed.board_id}/live")
        thread.join(5)
        # The one feed of the board ended with its last stream.
        assert hub.subscriber_count(seed.board_id) == 0
    assert response.status_code == 200
    body = response.text
    assert "event: delta" in body
    data = "".join(
        line.removeprefix("data: ") for line in body.splitlines() if line.startswith("data: ")
    )
    assert re.search(
        rf'data-card-for="{item_id}" data-run="run-{seed.state_id("Build")}-doing"', data
    )
    assert key(seed, item_id) in data
    # A member who does not own it gets no Mark ready for it.
    assert f"Mark ready {key(seed, item_id)}" not in data


def _by_id(html: str) -> dict[str, str]:
    """Heads by element id (WIP badges, signals, paging slots) and cards by item id."""
    found = {
        m.group(2): m.group(0)
        for m in re.finditer(
            r'<(span|div) class="(?:wip[^"]*|signal|more-slot)" id="([^"]+)"[^>]*>.*?</\1>',
            html,
            re.S,
        )
    }
    for m in re.finditer(
        r'<article class="card[^"]*" data-item-id="(\d+)".*?</article>', html, re.S
    ):
        found[f"card {m.group(1)}"] = m.group(0)
    return found


def test_a_delta_renders_exactly_what_the_whole_board_shows(client: TestClient, seed: Seed) -> None:
    """Cards and heads of a delta are the same markup as the full board's, per viewer."""
    before = _newest_event(seed)  # the board's set-up: events that are not about items
    ids = [
        add_item(seed, "backlog"),
        add_item(seed, "doing", into="Build", puller="member"),
        add_item(seed, "ready", into="Build", ready=True, puller="member2"),
        add_item(seed, "review", into="Review"),
    ]
    for n in range(3):
        add_item(seed, f"more {n}")
    upto = _newest_event(seed)
    member = seed.user("member")
    sign_in(client, member)
    whole = _by_id(client.get(f"/boards/{seed.board_id}").text)
    messages = render_messages(seed.database, seed.board_id, before, upto, {("member", member.id)})
    delta = _by_id(messages[("member", member.id)].data)
    assert {f"card {i}" for i in ids} <= set(delta)
    assert any(k.startswith("signal-") for k in delta) and any(k.startswith("wip-") for k in delta)
    for name, markup in delta.items():
        # The delta is one line: the page's copy differs only in line breaks.
        assert whole[name].replace("\n", " ") == markup, name
