"""My work: doing, handoffs and reviews waiting for me (oldest first), blocks, personal WIP."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.factories import seed_board
from tests.web.helpers import add_item, block, key, sign_in


def part(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    end = html.find("</section>", start)
    return html[start:end]


def test_sections(client: TestClient, database: object) -> None:
    from app.services.boards import StateSpec

    seed = seed_board(
        database,  # type: ignore[arg-type]
        personal_wip_limit=2,
        states=[
            StateSpec("Backlog", "backlog"),
            StateSpec("Build", "work", 5),
            StateSpec("Review", "work", 2, "reviewer"),
            StateSpec("Done", "done"),
        ],
    )
    doing = add_item(seed, "I am on it", into="Build")
    stuck = add_item(seed, "Stuck one", into="Build")
    block(seed, stuck, waiting_on="Legal")
    older = add_item(seed, "Older handoff", by="member2", into="Build", ready=True)
    newer = add_item(seed, "Newer handoff", by="member2", into="Build", ready=True)
    sign_in(client, seed.user("reviewer"))
    html = client.get("/me").text
    reviews = part(html, "me-reviews")
    assert "Test board: pull into Review" in reviews
    assert reviews.index(key(seed, older)) < reviews.index(key(seed, newer))
    assert "No handoffs wait for you." in part(html, "me-handoffs")

    sign_in(client, seed.user("member"))
    html = client.get("/me").text
    mine = part(html, "me-doing")
    assert key(seed, doing) in mine and "I am on it" in mine and key(seed, older) not in mine
    # Review is a reviewer state: nothing waits for a member to pull.
    assert "No reviews wait for you." in part(html, "me-reviews")
    blocked = part(html, "me-blocked")
    assert key(seed, stuck) in blocked
    assert re.search(r"Blocked \d+m · Waiting for information · waits on Legal", blocked)
    assert '<span class="wip at">2/2 at limit</span>' in part(html, "me-wip")
    assert "<b>2 doing</b>" in html
    assert 'data-live-url="/me/live"' in html and 'data-refresh-url="/me"' in html
    fragment = client.get("/me", headers={"HX-Request": "true"})
    assert fragment.text.startswith('<div id="board"')
    assert "HX-Request" in fragment.headers["vary"].split(", ")


def test_handoffs_for_member_states(client: TestClient, database: object) -> None:
    from app.services.boards import StateSpec

    seed = seed_board(
        database,  # type: ignore[arg-type]
        states=[
            StateSpec("Backlog", "backlog"),
            StateSpec("Draft", "work", 3),
            StateSpec("Edit", "work", 3),
            StateSpec("Done", "done"),
        ],
    )
    waiting = add_item(seed, "Needs editing", by="member2", into="Draft", ready=True)
    sign_in(client, seed.user("member"))
    html = client.get("/me").text
    handoffs = part(html, "me-handoffs")
    assert "Test board: pull into Edit" in handoffs and key(seed, waiting) in handoffs
    assert "<b>1 waiting for you</b>" in html
