"""Items' paths through a board rebuilt from the event log, for the analytics that need more
than the item rows: every item alive in a window, with its moves and blocks.

Shared by the window figures (app.services.flow_figures), the cumulative flow and the
rollups that cache both per closed day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from app.db import metric_queries as mq
from app.flow import metrics as m


@dataclass(slots=True)
class ItemHistory:
    """One item's path through the board: (at, state_id or None when discarded, stage)."""

    item_id: int
    class_of_service: str
    committed_at: datetime | None
    done_at: datetime | None
    path: list[tuple[datetime, int | None, str | None]] = field(default_factory=list)
    sent_back: list[tuple[datetime, int | None, int | None]] = field(default_factory=list)
    # Block periods in epoch microseconds (open blocks end at now), sorted and merged.
    blocks: list[tuple[int, int]] = field(default_factory=list)

    def visits(self) -> list[tuple[int, datetime, datetime | None]]:
        """(state_id, entered, left or None) per stay in a state (stage changes stay)."""
        out: list[tuple[int, datetime, datetime | None]] = []
        current: int | None = None
        entered: datetime | None = None
        for at, state_id, _stage in self.path:
            if state_id == current:
                continue
            if current is not None and entered is not None:
                out.append((current, entered, at))
            current, entered = state_id, at
        if current is not None and entered is not None:
            out.append((current, entered, None))
        return out


def replay(
    session: Session, board_id: int, start: datetime, end: datetime, now: datetime
) -> dict[int, ItemHistory]:
    """Every item alive in [start, end) with its moves up to `end` and its blocks (opened
    before now, open ones ending at now): one streaming pass each."""
    items = {
        item_id: ItemHistory(item_id, cos, committed, done)
        for item_id, cos, committed, done in mq.items_alive_in(session, board_id, start, end)
    }
    moves: dict[int, list[tuple[datetime, int, str, int | None, int | None, str | None]]] = (
        defaultdict(list)
    )
    ids = list(items)
    for item_id, event_id, type_, at, from_id, to_id, stage in mq.events_of_items(session, ids):
        moves[item_id].append((at, event_id, type_, from_id, to_id, stage))
    for item_id, rows in moves.items():
        history = items.get(item_id)
        if history is None:
            continue
        rows.sort(key=lambda r: (r[0], r[1]))
        for at, _id, type_, from_id, to_id, stage in rows:
            if at > end:
                break  # nothing after the window counts (a past `to` shows the board then)
            history.path.append((at, None if type_ == "discarded" else to_id, stage))
            if type_ == "sent_back":
                history.sent_back.append((at, from_id, to_id))
    now_us = m.micros(now)
    for item_id, opened, resolved in mq.blocks_of_items(session, ids):
        history = items.get(item_id)
        if history is not None and opened < now:
            until = m.micros(resolved) if resolved is not None and resolved < now else now_us
            history.blocks.append((m.micros(opened), until))
    for history in items.values():
        if len(history.blocks) > 1:
            history.blocks = m.merge_spans(history.blocks)
    return items
