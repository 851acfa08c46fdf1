"""Bounded work per request: a flow action through HTTP costs the same number of SQL statements
on a board of 10 items as on one of 2,000 (no per-item loops, no N+1), and at most 12.

Every statement the engine sends is counted (before_cursor_execute): BEGIN IMMEDIATE on
SQLite, the bearer-token lookup, the work itself and pg_notify on PostgreSQL. COMMIT is not a
cursor statement on either driver, so it does not appear. Run with `-s` for the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, insert

from app.db import queries
from app.db.models import Event, Item
from app.db.session import Database
from app.services.boards import StateSpec
from tests.factories import Seed, seed_board, token_headers

MAX_STATEMENTS = 12
SIZES = (10, 2_000)
ACTIONS = (
    "create",
    "pull (commit)",
    "mark ready",
    "pull (handoff)",
    "ready (done)",
    "block",
)


@contextmanager
def recorded_statements(database: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def add_filler(seed: Seed, count: int, *, first_number: int) -> None:
    """`count` items spread over every state and stage, in one executemany (plus their events).

    Owners include the member who acts in the measurement, so the personal WIP count has rows
    to look at; numbers start far above the board's counter so create_item never collides.
    """
    states = seed.states
    owners = [seed.user(role).id for role in ("member", "member2", "reviewer")]
    now = queries.now() - timedelta(days=30)
    placements: list[tuple[str, str | None, bool]] = [
        ("Backlog", None, False),
        ("Build", "doing", False),
        ("Build", "ready", False),
        ("Review", "doing", False),
        ("Review", "ready", False),
        ("Done", None, True),
    ]
    rows = []
    for n in range(count):
        state, stage, done = placements[n % len(placements)]
        committed = state != "Backlog"
        number = first_number + n
        rows.append(
            {
                "board_id": seed.board_id,
                "number": number,
                "key": f"TST-{number}",
                "title": f"Filler {number}",
                "description": "",
                "class_of_service": "standard",
                "state_id": states[state].id,
                "stage": stage,
                "owner_id": owners[n % len(owners)] if committed else None,
                "created_by_id": seed.user("admin").id,
                "created_at": now,
                "state_entered_at": now,
                "committed_at": now if committed else None,
                "done_at": now if done else None,
                "version": 1,
            }
        )
    with seed.database.unit_of_work() as session:
        ids = session.scalars(insert(Item).returning(Item.id), rows).all()
        session.execute(
            insert(Event),
            [
                {
                    "board_id": seed.board_id,
                    "item_id": item_id,
                    "type": "created",
                    "actor_id": seed.user("admin").id,
                    "at": now,
                    "from_state_id": None,
                    "to_state_id": states["Backlog"].id,
                    "stage": None,
                    "data": {},
                }
                for item_id in ids
            ],
        )


def measure(client: TestClient, database: Database, seed: Seed) -> tuple[dict[str, int], Any]:
    """Statements per action for one item's life (and a second item's block)."""
    member = token_headers(client, seed.user("member"))
    reviewer = token_headers(client, seed.user("reviewer"))
    board = client.get(f"/api/v1/boards/{seed.board_id}", headers=member)
    assert board.status_code == 200, board.text
    reason_id = board.json()["block_reasons"][0]["id"]
    counts: dict[str, int] = {}
    seen: dict[str, list[str]] = {}

    def call(name: str, path: str, headers: dict[str, str], body: Any, status: int) -> Any:
        with recorded_statements(database) as statements:
            response = client.post("/api/v1" + path, json=body, headers=headers)
        assert response.status_code == status, (name, response.text)
        counts[name] = len(statements)
        seen[name] = statements
        return response.json()

    first = call("create", f"/boards/{seed.board_id}/items", member, {"title": "Measured"}, 201)
    item = f"/items/{first['id']}"
    assert call("pull (commit)", f"{item}/pull", member, None, 200)["stage"] == "doing"
    assert call("mark ready", f"{item}/ready", member, None, 200)["stage"] == "ready"
    pulled = call("pull (handoff)", f"{item}/pull", reviewer, None, 200)
    assert pulled["state_id"] == seed.state_id("Review")
    assert call("ready (done)", f"{item}/ready", reviewer, None, 200)["done_at"] is not None
    second = client.post(
        f"/api/v1/boards/{seed.board_id}/items", json={"title": "To block"}, headers=member
    ).json()
    block = call("block", f"/items/{second['id']}/blocks", member, {"reason_id": reason_id}, 201)
    assert block["item_id"] == second["id"]
    return counts, seen


def test_flow_actions_cost_the_same_statements_at_10_and_2000_items(
    client: TestClient, database: Database, backend: str
) -> None:
    # Limits high enough that the filler never fills a state: this measures work, not refusals.
    seed = seed_board(
        database,
        states=[
            StateSpec("Backlog", "backlog"),
            StateSpec("Build", "work", 10_000),
            StateSpec("Review", "work", 10_000, "reviewer"),
            StateSpec("Done", "done"),
        ],
    )
    results: dict[int, dict[str, int]] = {}
    statements: dict[int, Any] = {}
    filled = 0
    for size in SIZES:
        add_filler(seed, size - filled, first_number=1_000_000 + filled)
        filled = size
        results[size], statements[size] = measure(client, database, seed)

    print(f"\nSQL statements per request on {backend} (COMMIT not counted: not a statement)")
    print(f"{'action':<16}" + "".join(f"{size:>10,} items" for size in SIZES))
    for action in ACTIONS:
        print(f"{action:<16}" + "".join(f"{results[size][action]:>16}" for size in SIZES))
    for action in ACTIONS:
        if results[SIZES[-1]][action] > MAX_STATEMENTS:
            print(f"\n{action}:\n  " + "\n  ".join(statements[SIZES[-1]][action]))

    assert results[SIZES[0]] == results[SIZES[-1]]
    assert all(count <= MAX_STATEMENTS for count in results[SIZES[-1]].values()), results
