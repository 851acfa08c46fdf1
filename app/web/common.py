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
from app.flow.errors import InvalidInput, NotFound
from app.flow.text import checked_text
from app.inputs import DB_INT_MAX, parse_id


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
        # Ready items sit in work states, where nothing is delivered (done_at is not asked):
        # the index of items not discarded (ix_item_shown_by_state) counts them on its own.
        waiting = (
            session.scalar(
                select(func.count())
                .select_from(Item)
                .where(
                    Item.state_id.in_(list(sources)),
                    Item.stage == "ready",
                    Item.discarded_at.is_(None),
                )
            )
            or 0
        )
    return Summary(doing=doing, waiting=int(waiting))


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# Dates a person means: day arithmetic (the day after `to`) stays far from date.max.
EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(9998, 12, 31)


def parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        found = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("Give the date as YYYY-MM-DD.") from None
    if not EARLIEST_DATE <= found <= LATEST_DATE:
        raise InvalidInput("Give a date between 1900 and 9998.")
    return found


def parse_int(value: str | None, what: str, *, maximum: int = DB_INT_MAX) -> int | None:
    """A whole number 0..maximum in ASCII digits (None when empty); InvalidInput otherwise.

    Not str.isdigit(): it accepts '²', which int() refuses, and '٣', which int() reads as 3.
    """
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput(f"{what} must be a number.")
    if len(text) > 12 or int(text) > maximum:
        raise InvalidInput(f"{what} must be at most {maximum}.")
    return int(text)


def parse_text(value: str | None, what: str, *, max_length: int = 200) -> str | None:
    """A single line of search text from the address, trimmed; None when empty.

    Control characters are refused (422) by the same rule as every text field."""
    text = (value or "").strip()[:max_length]
    if not text:
        return None
    return checked_text(text, what)


def known_path_ids(request: Request) -> None:
    """Router dependency of the pages: an id in the address (`/boards/{board_id}`) that is not
    a plain number within the database's range is a 404 page, before any query runs."""
    for name, value in request.path_params.items():
        if name.endswith("_id") and parse_id(str(value)) is None:
            raise NotFound("Nothing here: check the address.")


def query_string(request: Request) -> str:
    return request.url.query
