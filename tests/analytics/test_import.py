"""Import with history: live-looking rows, whole-payload validation, all-or-nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db.models import Block, Event, Item
from app.db.session import Database
from app.services import analytics
from tests.analytics.helpers import block, do_import, iso, item, move, t
from tests.factories import Seed, token_headers


def _counts(database: Database) -> tuple[int, int, int]:
    with database.unit_of_work(write=False) as session:
        return (
            session.scalar(select(func.count()).select_from(Item)) or 0,
            session.scalar(select(func.count()).select_from(Block)) or 0,
            session.scalar(
                select(func.count()).select_from(Event).where(Event.item_id.is_not(None))
            )
            or 0,
        )


def test_import_writes_items_blocks_and_live_events(client: TestClient, seed: Seed) -> None:
    payload = {
        "items": [
            item(
                "Contract review",
                t(2),
                [
                    move(t(2, 10), "Build"),
                    move(t(3, 10), "Build", "ready"),
                    move(t(4, 10), "Review"),
                    move(t(5, 10), "Build"),  # sent back: Review -> Build
                    move(t(5, 16), "Build", "ready"),
                    move(t(6, 10), "Review"),
                    move(t(7, 10), "Done"),
                ],
                [block("Waiting for decision", t(3, 20), t(4, 14), note="Budget owner away")],
                class_of_service="expedite",
            ),
            item("Still an option", t(9)),
        ]
    }
    headers = token_headers(client, seed.user("manager"))
    response = client.post(f"/api/v1/boards/{seed.board_id}/import", json=payload, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 2}

    build, review, done = seed.state_id("Build"), seed.state_id("Review"), seed.state_id("Done")
    backlog = seed.state_id("Backlog")
    with seed.database.unit_of_work(write=False) as session:
        first, second = session.scalars(select(Item).order_by(Item.number)).all()
        assert (first.key, first.number) == ("TST-1", 1)
        assert first.class_of_service == "expedite"
        assert (first.state_id, first.stage, first.owner_id) == (done, None, None)
        assert first.committed_at == t(2, 10)  # first time out of the backlog
        assert first.done_at == t(7, 10)
        assert first.state_entered_at == t(7, 10)
        assert (second.state_id, second.stage, second.committed_at) == (backlog, None, None)
        events = session.execute(
            select(Event.type, Event.at, Event.from_state_id, Event.to_state_id, Event.stage)
            .where(Event.item_id == first.id)
            .order_by(Event.id)
        ).all()
        blocks = session.scalars(select(Block)).all()
    assert [tuple(e) for e in events[:-1]] == [
        ("created", t(2), None, backlog, None),
        ("pulled", t(2, 10), backlog, build, "doing"),
        ("marked_ready", t(3, 10), build, build, "ready"),
        ("blocked", t(3, 20), build, build, "ready"),
        ("pulled", t(4, 10), build, review, "doing"),
        ("unblocked", t(4, 14), review, review, "doing"),
        ("sent_back", t(5, 10), review, build, "doing"),
        ("marked_ready", t(5, 16), build, build, "ready"),
        ("pulled", t(6, 10), build, review, "doing"),
        # Review is the last work state: finishing there delivers at once, as live.
        ("marked_ready", t(7, 10), review, review, "ready"),
        ("completed", t(7, 10), review, done, None),
    ]
    assert events[-1].type == "imported"
    assert len(blocks) == 1
    assert blocks[0].state_id == build  # the state when the block opened
    assert (blocks[0].opened_at, blocks[0].resolved_at) == (t(3, 20), t(4, 14))
    assert blocks[0].note == "Budget owner away"


def test_imported_history_reads_like_live_history(seed: Seed) -> None:
    """Time travel through imported events (the block spans the Build -> Review pull)."""
    do_import(
        seed,
        [
            item(
                "A",
                t(2),
                [
                    move(t(2, 10), "Build"),
                    move(t(3, 10), "Build", "ready"),
                    move(t(4, 10), "Review"),
                ],
                [block("Dependency", t(3, 20), t(4, 14))],
            )
        ],
    )
    with seed.database.unit_of_work(write=False) as session:
        snap = analytics.snapshot(
            session=session, board_id=seed.board_id, actor=seed.user("viewer"), at=t(4, 12)
        )
    assert [(s.state_id, s.stage, s.blocked) for s in snap.items] == [
        (seed.state_id("Review"), "doing", True)
    ]


BAD_ITEMS: list[tuple[dict[str, Any], str]] = [
    (item("Unknown state", t(2), [move(t(3), "Testing")]), "history[0].state"),
    (item("Backwards", t(2), [move(t(4), "Build"), move(t(3), "Review")]), "history[1].at"),
    (item("Before creation", t(5), [move(t(4), "Build")]), "history[0].at"),
    (
        item("Stage on done", t(2), [move(t(3), "Build"), move(t(4), "Done", "ready")]),
        "history[1].stage",
    ),
    (item("Odd stage", t(2), [move(t(3), "Build", "waiting")]), "history[0].stage"),
    (
        item("Back to backlog", t(2), [move(t(3), "Build"), move(t(4), "Backlog")]),
        "history[1].state",
    ),
    (item("Unknown reason", t(2), [], [block("Coffee", t(3), t(4))]), "blocks[0].reason"),
    (item("Block ends first", t(2), [], [block("Dependency", t(4), t(3))]), "blocks[0].to"),
    (item("", t(2)), "title"),
    ({"title": "No time", "history": []}, "created_at"),
    (item("Future", t(2, month=12).replace(year=2099)), "created_at"),
]


@pytest.mark.parametrize(
    ("bad", "field"), BAD_ITEMS, ids=[b[0]["title"] or "empty" for b in BAD_ITEMS]
)
def test_one_bad_item_imports_nothing(
    client: TestClient, seed: Seed, bad: dict[str, Any], field: str
) -> None:
    good = item("Fine", t(2), [move(t(3), "Build")])
    headers = token_headers(client, seed.user("manager"))
    response = client.post(
        f"/api/v1/boards/{seed.board_id}/import", json={"items": [good, bad]}, headers=headers
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/problems/validation")
    assert {"item": 1, "field": field} in [
        {k: e[k] for k in ("item", "field")} for e in body["errors"]
    ]
    assert all(e["item"] == 1 and e["message"] for e in body["errors"])
    assert _counts(seed.database) == (0, 0, 0)


def test_every_problem_is_listed(client: TestClient, seed: Seed) -> None:
    payload = {"items": [bad for bad, _ in BAD_ITEMS]}
    headers = token_headers(client, seed.user("manager"))
    response = client.post(f"/api/v1/boards/{seed.board_id}/import", json=payload, headers=headers)
    assert response.status_code == 422
    listed = {(e["item"], e["field"]) for e in response.json()["errors"]}
    assert listed >= {(i, field) for i, (_bad, field) in enumerate(BAD_ITEMS)}
    assert _counts(seed.database) == (0, 0, 0)


def test_overlapping_and_open_blocks_on_done_items_are_refused(seed: Seed) -> None:
    from app.flow.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        do_import(
            seed,
            [
                item(
                    "Overlap",
                    t(2),
                    [move(t(3), "Build")],
                    [block("Dependency", t(3), t(5)), block("Dependency", t(4), t(6))],
                ),
                item(
                    "Open on done",
                    t(2),
                    [move(t(3), "Build"), move(t(4), "Done")],
                    [block("Dependency", t(3, 12))],
                ),
            ],
        )
    fields = {(e["item"], e["field"]) for e in refused.value.fields["errors"]}
    assert fields == {(0, "blocks[1].from"), (1, "blocks[0].to")}
    assert _counts(seed.database) == (0, 0, 0)


def test_import_needs_a_manager_and_hides_the_board(client: TestClient, seed: Seed) -> None:
    payload = {"items": [item("X", t(2))]}
    url = f"/api/v1/boards/{seed.board_id}/import"
    member = client.post(url, json=payload, headers=token_headers(client, seed.user("member")))
    assert member.status_code == 403
    assert member.json()["type"].endswith("/problems/insufficient-role")
    outsider = client.post(url, json=payload, headers=token_headers(client, seed.user("outsider")))
    assert outsider.status_code == 404
    assert client.post(url, json=payload).status_code == 401
    assert (
        client.post(
            url, json={"items": "nope"}, headers=token_headers(client, seed.user("manager"))
        ).status_code
        == 422
    )
    assert _counts(seed.database) == (0, 0, 0)


def test_import_reports_progress_and_numbers_after_live_items(seed: Seed) -> None:
    from app.services.importing import import_history
    from app.services.items import create_item

    with seed.database.unit_of_work() as session:
        create_item(
            session=session, board_id=seed.board_id, actor=seed.user("member"), title="Live"
        )
    calls: list[tuple[int, int]] = []
    with seed.database.unit_of_work() as session:
        n = import_history(
            session=session,
            board_id=seed.board_id,
            actor=seed.user("admin"),
            payload={"items": [item(f"I{i}", t(2), [move(t(3), "Build")]) for i in range(3)]},
            progress=lambda done, total: calls.append((done, total)),
        )
    assert n == 3
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)
    with seed.database.unit_of_work(write=False) as session:
        keys = session.scalars(select(Item.key).order_by(Item.number)).all()
    assert keys == ["TST-1", "TST-2", "TST-3", "TST-4"]
    assert iso(t(2)) == "2026-03-02T00:00:00Z"
