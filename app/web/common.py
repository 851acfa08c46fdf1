"""Small shared pieces of the HTML routes: the header summary, form parsing, redirects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse

from app.db import board_queries as bq
from app.db.models import Item, State, User
from app.flow import rules
from app.flow.errors import InvalidInput


@dataclass
class Summary:
    doing: int
    waiting: int


def pullable_sources(states: Sequence[State], roles: dict[int, str]) -> dict[int, State]:
    """source state id -> the state after it, for work states whose next one the user may pull."""
    by_board: dict[int, list[State]] = {}
    for state in states:
        by_board.setdefault(state.board_id, []).append(state)
    found: dict[int, State] = {}
    for board_id, flow in by_board.items():
        for here, after in pairwise(flow):
            if here.kind == "work" and rules.role_at_least(roles.get(board_id), after.pull_role):
                found[here.id] = after
    return found


def header_summary(session: Session, user: User) -> Summary:
    """ "My work: 2 doing · 1 waiting for you" for the header, in four small statements."""
    boards = bq.my_boards(session, user)
    roles = {board.id: role for board, role in boards}
    ids = list(roles)
    doing = sum(bq.doing_counts(session, user.id, ids).values())
    sources = pullable_sources(bq.states_of_boards(session, ids), roles)
    waiting = 0
    if sources:
        waiting = (
            session.scalar(
                select(func.count())
                .select_from(Item)
                .where(
                    Item.state_id.in_(list(sources)),
                    Item.stage == "ready",
                    Item.discarded_at.is_(None),
                    Item.done_at.is_(None),
                )
            )
            or 0
        )
    return Summary(doing=doing, waiting=int(waiting))


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("Give the date as YYYY-MM-DD.") from None


def parse_int(value: str | None, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise InvalidInput(f"{what} must be a number.") from None


def query_string(request: Request) -> str:
    return request.url.query
