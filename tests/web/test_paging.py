"""Long columns page ("Show N more"); a 5,000-card board stays light in cards and statements."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import event, insert

from app.db.models import Item
from app.db.queries import now
from tests.factories import Seed
from tests.web.helpers import add_item, sign_in


def bulk_items(seed: Seed, *, backlog: int, done: int, build: int = 0) -> None:
    """Inserts items directly (fast; the board only reads them)."""
    start = now() - timedelta(days=30)
    rows = []
    number = 0
    for state, count in (("Backlog", backlog), ("Done", done), ("Build", build)):
        for _ in range(count):
            number += 1
            at = start + timedelta(seconds=number)
            rows.append(
                {
                    "board_id": seed.board_id,
                    "number": number,
                    "key": f"TST-{number}",
                    "title": f"Bulk item {number}",
                    "description": "",
                    "class_of_service": "standard",
                    "state_id": seed.state_id(state),
                    "stage": "doing" if state == "Build" else None,
                    "created_at": at,
                    "state_entered_at": at,
                    "committed_at": at if state != "Backlog" else None,
                    "done_at": at + timedelta(hours=1) if state == "Done" else None,
                    "version": 1,
                }
            )
    with seed.database.unit_of_work() as session:
        session.execute(insert(Item), rows)
        from app.db.models import Board

        board = session.get(Board, seed.board_id)
        assert board is not None
        board.last_item_number = number


def cards_in(html: str) -> int:
    return len(re.findall(r"<article class=\"card", html))


def test_backlog_pages_newest_first(client: TestClient, seed: Seed) -> None:
    bulk_items(seed, backlog=45, done=0)
    sign_in(client, seed.user("member"))
    html = client.get(f"/boards/{seed.board_id}").text
    backlog = html[html.index('aria-label="Backlog"') : html.index('aria-label="Build"')]
    keys = re.findall(r'<span class="key">TST-(\d+)</span>', backlog)
    assert [int(k) for k in keys] == list(range(45, 25, -1))  # newest first, 20 cards
    more = re.search(
        r'<a class="more" href="([^"]+)" hx-get="([^"]+)" hx-target="closest .more-slot" '
        r'hx-swap="outerHTML">Show 25 more</a>',
        backlog,
    )
    assert more and more.group(1) == more.group(2)
    url = more.group(1).replace("&amp;", "&")
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["vary"].split(", ")
    assert "<html" not in fragment.text
    keys = re.findall(r'<span class="key">TST-(\d+)</span>', fragment.text)
    assert [int(k) for k in keys] == list(range(25, 5, -1))
    assert "Show 5 more" in fragment.text
    last = re.search(r'href="([^"]+)"[^>]*>Show 5 more', fragment.text)
    assert last
    final = client.get(last.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"})
    assert [int(k) for k in re.findall(r'<span class="key">TST-(\d+)</span>', final.text)] == [
        5,
        4,
        3,
        2,
        1,
    ]
    assert 'class="more"' not in final.text
    # The page's paging slot is replaced by one that knows the whole run is shown.
    assert 'class="more-slot"' in final.text and 'data-total="45" data-shown="45"' in final.text
    # The same link works as a plain page.
    page = client.get(url)
    assert page.text.startswith("<!doctype html>") and cards_in(page.text) == 20


def test_done_newest_first_and_keeps_filters(client: TestClient, seed: Seed) -> None:
    bulk_items(seed, backlog=0, done=30)
    sign_in(client, seed.user("member"))
    html = client.get(f"/boards/{seed.board_id}?q=bulk").text
    done = html[html.index('aria-label="Done"') :]
    keys = [int(k) for k in re.findall(r'<span class="key">TST-(\d+)</span>', done)]
    assert keys == list(range(30, 10, -1))
    assert "Show 10 more" in done and "q=bulk" in done
    assert "30 done" in done


def test_5000_cards_render_light(client: TestClient, seed: Seed) -> None:
    bulk_items(seed, backlog=2500, done=2497, build=3)
    add_item(seed, "expedite one", cos="expedite")
    sign_in(client, seed.user("member"))
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(seed.database.engine, "before_cursor_execute", count)
    try:
        response = client.get(f"/boards/{seed.board_id}")
    finally:
        event.remove(seed.database.engine, "before_cursor_execute", count)
    assert response.status_code == 200
    assert cards_in(response.text) < 150
    assert "Show 2480 more" in response.text and "Show 2477 more" in response.text
    selects = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(statements) <= 30, statements
    assert len(selects) <= 25
    # The same count with ten times fewer items: the statements do not grow with the board.
    assert len(response.text) < 400_000
