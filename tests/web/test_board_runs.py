"""The board's runs of cards (app/db/board_queries.py): one ORDER BY ... LIMIT per run must give
the same cards, order and counts as looking at every item, on both databases.

The reference here is plain Python over every item of the board; the queries under test read
indexes a page at a time (migration 0007).
"""

from __future__ import annotations

import random
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from app.db import board_queries as bq
from app.db import queries
from app.db.models import Item
from tests.factories import Seed
from tests.web.helpers import sign_in

# (state, stage, class of service, discarded) of each item, shuffled into id order below.
PLACES = (
    [("Backlog", None, "standard", False)] * 30
    + [("Backlog", None, "expedite", False)] * 3
    + [("Build", "doing", "standard", False)] * 27
    + [("Build", "doing", "expedite", False)] * 23
    + [("Build", "ready", "fixed_date", False)] * 6
    + [("Review", "doing", "expedite", False)] * 2
    + [("Done", None, "expedite", False)] * 4
    + [("Done", None, "standard", False)] * 25
    + [("Build", "doing", "standard", True)] * 5
    + [("Backlog", None, "standard", True)] * 5
    + [("Done", None, "standard", True)] * 2
)


def fill(seed: Seed) -> None:
    """Items whose id order, entry order and delivery order all differ, so each run's order
    is told apart from the others; owners alternate between two members."""
    rng = random.Random(8)
    places = list(PLACES)
    rng.shuffle(places)
    start = queries.now() - timedelta(days=60)
    owners = [seed.user("member").id, seed.user("member2").id]
    rows = []
    for number, (state, stage, cos, discarded) in enumerate(places, start=1):
        entered = start + timedelta(minutes=rng.randrange(50_000))
        rows.append(
            {
                "board_id": seed.board_id,
                "number": number,
                "key": f"TST-{number}",
                "title": f"Run item {number}",
                "description": "",
                "class_of_service": cos,
                "state_id": seed.state_id(state),
                "stage": stage,
                "owner_id": owners[number % 2] if state != "Backlog" else None,
                "created_at": start,
                "state_entered_at": entered,
                "committed_at": entered if state != "Backlog" else None,
                # Delivery time unrelated to entry time: Done must sort by delivery.
                "done_at": start + timedelta(minutes=rng.randrange(50_000))
                if state == "Done"
                else None,
                "discarded_at": entered if discarded else None,
                "version": 1,
            }
        )
    with seed.database.unit_of_work() as session:
        session.execute(insert(Item), rows)


def expected_runs(
    items: list[Item], done_id: int, backlog_id: int
) -> dict[bq.ColumnKey, list[int]]:
    """Every run's item ids in board order, from every item of the board."""
    runs: dict[bq.ColumnKey, list[Item]] = {}
    for item in items:
        if item.discarded_at is not None:
            continue
        key = bq.ColumnKey(item.state_id, item.stage, bq.in_expedite_lane(item))
        runs.setdefault(key, []).append(item)

    def order(item: Item) -> tuple[float, int]:
        if item.state_id == done_id:
            assert item.done_at is not None
            return (-item.done_at.timestamp(), -item.id)
        if item.state_id == backlog_id:
            return (0, -item.id)
        return (item.state_entered_at.timestamp(), item.id)

    return {key: [i.id for i in sorted(run, key=order)] for key, run in runs.items()}


def board_items(seed: Seed) -> list[Item]:
    with seed.database.unit_of_work(write=False) as session:
        found = list(session.scalars(select(Item).where(Item.board_id == seed.board_id)))
        session.expunge_all()
    return found


def test_runs_pages_and_counts_match_every_item(seed: Seed) -> None:
    fill(seed)
    done, backlog = seed.state_id("Done"), seed.state_id("Backlog")
    newest = [backlog, done]
    expected = expected_runs(board_items(seed), done, backlog)
    # The lane really is exercised: two expedite runs of work states, none in Done.
    assert bq.ColumnKey(seed.state_id("Build"), "doing", True) in expected
    assert not any(k.expedite and k.state_id == done for k in expected)
    no_filter = bq.BoardFilters()
    with seed.database.unit_of_work(write=False) as session:
        counts = bq.column_counts(session, seed.board_id, done, no_filter)
        assert counts == {key: len(ids) for key, ids in expected.items()}
        first = bq.visible_cards(session, seed.board_id, newest, done, no_filter, runs=counts)
        # Without `runs` the runs are counted first: the same cards.
        assert [r.item.id for r in first] == [
            r.item.id for r in bq.visible_cards(session, seed.board_id, newest, done, no_filter)
        ]
        shown: dict[bq.ColumnKey, list[int]] = {}
        for row in first:
            item = row.item
            key = bq.ColumnKey(item.state_id, item.stage, bq.in_expedite_lane(item))
            shown.setdefault(key, []).append(item.id)
        assert shown == {key: ids[: bq.PAGE] for key, ids in expected.items()}
        # Paging a run from any offset continues it without gaps or repeats.
        for key, ids in expected.items():
            assert bq.column_counts(session, seed.board_id, done, no_filter, only=key) == {
                key: len(ids)
            }
            paged: list[int] = []
            for offset in range(0, len(ids) + 7, 7):
                page = bq.visible_cards(
                    session,
                    seed.board_id,
                    newest,
                    done,
                    no_filter,
                    only=key,
                    offset=offset,
                    per_column=7,
                )
                paged += [r.item.id for r in page]
            assert paged == ids, key


def test_filtered_runs_and_wip_match_every_item(seed: Seed) -> None:
    fill(seed)
    done, backlog = seed.state_id("Done"), seed.state_id("Backlog")
    mine = seed.user("member").id
    items = board_items(seed)
    expected = expected_runs([i for i in items if i.owner_id == mine], done, backlog)
    with seed.database.unit_of_work(write=False) as session:
        owner = bq.BoardFilters(owner_id=mine)
        counts = bq.column_counts(session, seed.board_id, done, owner)
        assert counts == {key: len(ids) for key, ids in expected.items()}
        rows = bq.visible_cards(session, seed.board_id, [backlog, done], done, owner)
        assert {r.item.owner_id for r in rows} == {mine}
        assert len(rows) == sum(min(len(ids), bq.PAGE) for ids in expected.values())
        # WIP: open items per state, discarded ones left out, none for Done.
        wip: dict[int, int] = {}
        for item in items:
            if item.discarded_at is None and item.state_id != done:
                wip[item.state_id] = wip.get(item.state_id, 0) + 1
        assert queries.wip_by_state(session, seed.board_id) == wip


def test_the_board_page_shows_each_run_in_order(client: TestClient, seed: Seed) -> None:
    """Through the page: Build's expedite lane holds the oldest 20 of its 23 cards, in order."""
    fill(seed)
    done, backlog = seed.state_id("Done"), seed.state_id("Backlog")
    expected = expected_runs(board_items(seed), done, backlog)
    lane = expected[bq.ColumnKey(seed.state_id("Build"), "doing", True)]
    sign_in(client, seed.user("member"))
    html = client.get(f"/boards/{seed.board_id}").text
    keys = [f"TST-{number}" for number in _numbers(seed, lane[: bq.PAGE])]
    positions = [html.index(f'<span class="key">{key}</span>') for key in keys]
    assert positions == sorted(positions)
    assert "Show 3 more" in html


def _numbers(seed: Seed, ids: list[int]) -> list[int]:
    by_id = {item.id: item.number for item in board_items(seed)}
    return [by_id[i] for i in ids]
