"""The board asks the rules once per kind of card (CardRules): the shared answer must be the
answer the rules give for each real card, ids, keys and owners included."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from app.db.board_queries import CardRow, OpenBlock
from app.db.models import State
from app.services.items import item_facts
from app.web.board_view import Card, CardRules

ME, SOMEONE = 7, 8
NOW = datetime(2026, 12, 8, tzinfo=UTC)
STATES = [
    State(
        id=1,
        board_id=1,
        name="Backlog",
        kind="backlog",
        position=0,
        wip_limit=None,
        pull_role="member",
    ),
    State(id=2, board_id=1, name="Build", kind="work", position=1, wip_limit=3, pull_role="member"),
    State(
        id=3, board_id=1, name="Review", kind="work", position=2, wip_limit=2, pull_role="reviewer"
    ),
    State(
        id=4, board_id=1, name="Done", kind="done", position=3, wip_limit=None, pull_role="member"
    ),
]
PLACES = [(1, None), (2, "doing"), (2, "ready"), (3, "doing"), (3, "ready")]


def _cards() -> list[Card]:
    cards = []
    # Every kind twice, with other ids, keys and block ids.
    kinds = itertools.product(PLACES, (None, ME, SOMEONE), ("standard", "expedite"), (0, 1))
    combos = [*kinds] * 2
    for number, ((state_id, stage), owner, cos, blocked) in enumerate(combos, start=1):
        item = SimpleNamespace(
            id=100 + number,
            board_id=1,
            key=f"T-{number}",
            title="t",
            class_of_service=cos,
            due_date=None,
            state_id=state_id,
            stage=stage,
            owner_id=owner,
            created_at=NOW,
            state_entered_at=NOW,
            committed_at=None,
            done_at=None,
            discarded_at=None,
        )
        block = OpenBlock(500 + number, NOW, "") if blocked else None
        cards.append(Card(row=CardRow(item, None, block, None), age=""))  # type: ignore[arg-type]
    return cards


@pytest.mark.parametrize("role", ["viewer", "member", "reviewer", "manager"])
@pytest.mark.parametrize("has_reasons", [True, False])
def test_shared_answers_are_each_cards_own(role: str, has_reasons: bool) -> None:
    shared = CardRules(STATES, role, ME, has_reasons)
    cards = _cards()
    for card in cards:
        shared.apply(card)
    # One question per kind of card, not per card.
    assert len(shared._answers) == len(cards) // 2
    for card in cards:
        own = CardRules(STATES, role, ME, has_reasons)._answer(
            item_facts(card.item, card.row.block.id if card.row.block else None)
        )
        given = (card.may_pull, card.may_ready, card.may_block, card.may_unblock)
        assert (*given, tuple(card.send_back_to)) == own, card.item.key
    # And the answers differ where they should: my doing card can be marked ready by me.
    if role == "member":
        mine = next(
            c
            for c in cards
            if c.item.owner_id == ME and c.item.stage == "doing" and not c.row.block
        )
        theirs = next(
            c
            for c in cards
            if c.item.owner_id == SOMEONE and c.item.stage == "doing" and not c.row.block
        )
        assert mine.may_ready and not theirs.may_ready
