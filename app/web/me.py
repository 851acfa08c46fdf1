"""My work: what I am doing, handoffs and reviews waiting for me, my blocks, my personal WIP."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.db import board_queries as bq
from app.db import queries
from app.db.models import Block, Board, Item, State
from app.deps import DbSession
from app.web.common import Summary, pullable_sources
from app.web.deps import WebUser
from app.web.templating import render, since

router = APIRouter()


@dataclass
class Group:
    state: State
    board: Board
    cards: list[bq.CardRow] = field(default_factory=list)


@dataclass
class PersonalWip:
    board: Board
    doing: int
    limit: int | None

    @property
    def text(self) -> str:
        if self.limit is None:
            return f"{self.doing} doing (no personal limit)"
        if self.doing > self.limit:
            return f"{self.doing}/{self.limit} over limit"
        if self.doing == self.limit:
            return f"{self.doing}/{self.limit} at limit"
        return f"{self.doing}/{self.limit}"

    @property
    def css(self) -> str:
        if self.limit is None:
            return ""
        return "over" if self.doing > self.limit else "at" if self.doing == self.limit else "under"


@router.get("/me")
def my_work(request: Request, session: DbSession, user: WebUser) -> Response:
    boards = bq.my_boards(session, user)
    roles = {board.id: role for board, role in boards}
    board_by_id = {board.id: board for board, _ in boards}
    ids = list(roles)
    states = bq.states_of_boards(session, ids)
    state_by_id = {s.id: s for s in states}
    sources = pullable_sources(states, roles)
    open_block = Block.id.is_not(None)  # cards_where outer-joins the open block
    on_my_boards = Item.board_id.in_(ids or [-1])
    doing = bq.cards_where(session, on_my_boards, Item.owner_id == user.id, Item.stage == "doing")
    waiting = (
        bq.cards_where(session, Item.state_id.in_(list(sources)), Item.stage == "ready")
        if sources
        else []
    )
    blocked = bq.cards_where(session, on_my_boards, Item.owner_id == user.id, open_block)
    handoffs: dict[int, Group] = {}
    reviews: dict[int, Group] = {}
    for row in waiting:
        target = sources[row.item.state_id]
        bucket = reviews if target.pull_role == "reviewer" else handoffs
        group = bucket.setdefault(
            target.id,
            Group(state=target, board=board_by_id[row.item.board_id]),
        )
        group.cards.append(row)
    counts = bq.doing_counts(session, user.id, ids)
    personal = [
        PersonalWip(board, counts.get(board.id, 0), board.personal_wip_limit) for board, _ in boards
    ]
    context = {
        "doing": doing,
        "handoffs": list(handoffs.values()),
        "reviews": list(reviews.values()),
        "blocked": blocked,
        "personal": personal,
        "state_by_id": state_by_id,
        "board_by_id": board_by_id,
        "now": queries.now(),
        "since": since,
        "nav_current": "me",
        "summary": Summary(doing=len(doing), waiting=len(waiting)),
    }
    return render(request, "me.html", context, fragment="_me.html")
