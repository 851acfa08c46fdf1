"""What changed on a board, as fragments the page patches in place: the cards that moved or
changed (each with the run it now sits in and the card it follows) and every column's head (WIP
badge, pull signals, "Show N more"). Action answers and live updates send these instead of the
whole board, so the cost of a click does not grow with the board or with who is looking.

The page (static/js/board.js) applies a delta only where it is newer than what it shows: every
card and head carries `data-seen`, the newest event id its rendering read first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.db.board_queries import BoardFilters
from app.db.models import Board
from app.web.board_view import BoardView, Card, CardRules, build_board
from app.web.templating import env

MAX_ITEMS = 40  # more changed items than this in one delta: the page reloads the board instead


@dataclass(frozen=True)
class Placement:
    """Where one changed item now sits: `card` None means it is no longer shown (moved past the
    first page of its run, filtered out, discarded...): the page removes it."""

    item_id: int
    card: Card | None
    run_id: str = ""
    after_id: int | None = None  # the card it follows in its run; None: first of the run


@dataclass
class BoardDelta:
    view: BoardView
    placements: list[Placement]

    @property
    def seen(self) -> int:
        return self.view.last_event_id


def board_delta(
    session: Session,
    *,
    board: Board,
    role: str,
    user_id: int,
    filters: BoardFilters,
    now: datetime,
    item_ids: Iterable[int],
) -> BoardDelta:
    """The board as `role` / `user_id` sees it now, reduced to the given items and the heads.

    Built from the same view as a full rendering (so the two never disagree); only the
    rendering is smaller.
    """
    wanted = set(item_ids)
    view = build_board(
        session,
        board=board,
        role=role,
        user_id=user_id,
        filters=filters,
        now=now,
        detail_ids=wanted,
    )
    shown: list[Placement] = []
    for column in [*view.lane, *view.columns]:
        for run in column.runs:
            for index, card in enumerate(run.cards):
                if card.item.id in wanted:
                    after = run.cards[index - 1].item.id if index else None
                    shown.append(Placement(card.item.id, card, view.run_id(run.key), after))
    placed = {p.item_id for p in shown}
    gone = [Placement(item_id, None) for item_id in sorted(wanted - placed)]
    # Removals first, then the shown cards in board order: a card's predecessor is in place
    # before the card is put after it.
    return BoardDelta(view=view, placements=[*gone, *shown])


def for_viewer(delta: BoardDelta, role: str, user_id: int) -> list[Placement]:
    """The delta's cards with the buttons one viewer gets (their role, whether they own it)."""
    view = delta.view
    rules = CardRules(view.states, role, user_id, bool(view.reasons))
    return [
        p if p.card is None else Placement(p.item_id, rules.restyled(p.card), p.run_id, p.after_id)
        for p in delta.placements
    ]


def render_heads(view: BoardView) -> str:
    return env.get_template("boards/_heads.html").render(view=view)


def render_cards(view: BoardView, placements: list[Placement]) -> str:
    template = env.get_template("boards/_delta_card.html")
    return "".join(template.render(view=view, placement=p) for p in placements)


def wrap(view: BoardView, inner: str) -> str:
    """The delta's root: the page checks `data-lane` against its own layout (an expedite lane
    appearing or going means the layout changed: it reloads the board instead)."""
    lane = 1 if view.lane else 0
    # One line: an SSE message is then one `data:` line, not one per template line (cheaper to
    # encode for every stream and to read in the page). Cards hold no <pre> or <textarea>.
    inner = inner.replace("\n", " ")
    return f'<div data-delta data-seen="{view.last_event_id}" data-lane="{lane}">{inner}</div>'
