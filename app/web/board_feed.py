"""Live deltas for board pages, rendered once per board and viewer variant in this process.

A board page's stream watches a feed here instead of the hub. One feed per board (while anyone
watches it) waits for the hub's new event ids, reads which items they touched, builds the board
once and renders the delta once per viewer variant (the role, and which of the changed cards the
viewer owns: "Mark ready" is the owner's), then hands each stream its message. So a pull costs
one rendering per board and variant, not one board fetch per viewer.

A change that is not about items (states, limits, members...), or more items than a delta
carries, becomes a "refresh" message: pages then fetch the board once, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.db import queries
from app.db.board_queries import BoardFilters
from app.db.models import Board, Event
from app.db.session import Database
from app.live.hub import hub
from app.web.board_delta import MAX_ITEMS, board_delta, for_viewer, render_cards, render_heads
from app.web.board_delta import wrap as wrap_delta

log = logging.getLogger(__name__)

# Events that arrive this close together become one delta (a pull often writes a burst).
COALESCE_SECONDS = 0.02
Variant = tuple[str, int]  # (role on the board, user id)


@dataclass(frozen=True)
class Message:
    kind: str  # "delta": `data` is HTML for board.js; "refresh": `data` is {"event_id": N}
    data: str


@dataclass(eq=False)
class Watcher:
    role: str
    user_id: int
    # Messages, and the stream's own access signals (ints, app.web.live) in the same queue.
    queue: asyncio.Queue[Message | int] = field(default_factory=lambda: asyncio.Queue(maxsize=200))

    def offer(self, message: Message) -> None:
        if self.queue.full():
            # A reader this far behind reloads the board once instead of replaying every delta.
            while not self.queue.empty():
                self.queue.get_nowait()
            message = Message("refresh", message.data if message.kind == "refresh" else "{}")
        self.queue.put_nowait(message)


def _refresh(event_id: int) -> Message:
    return Message("refresh", json.dumps({"event_id": event_id}))


def render_messages(
    database: Database, board_id: int, after: int, upto: int, variants: set[Variant]
) -> dict[Variant, Message]:
    """The messages for events (after, upto] of one board, one per viewer variant."""
    with database.session(write=False) as session:
        item_ids = session.scalars(
            select(Event.item_id).where(
                Event.board_id == board_id, Event.id > after, Event.id <= upto
            )
        ).all()
        changed = set(item_ids)
        board = session.get(Board, board_id)
        if board is None or None in changed or not changed or len(changed) > MAX_ITEMS:
            return {v: _refresh(upto) for v in variants}
        delta = board_delta(
            session,
            board=board,
            role="viewer",
            user_id=0,
            filters=BoardFilters(),
            now=queries.now(),
            item_ids=[i for i in changed if i is not None],
        )
    view = delta.view
    heads = render_heads(view)
    rendered: dict[tuple[str, tuple[int, ...]], Message] = {}
    messages: dict[Variant, Message] = {}
    for role, user_id in variants:
        # Viewers of one role who own none of the changed cards see the same thing.
        owned = tuple(
            p.item_id for p in delta.placements if p.card and p.card.item.owner_id == user_id
        )
        key = (role, owned)
        if key not in rendered:
            cards = render_cards(view, for_viewer(delta, role, user_id))
            rendered[key] = Message("delta", wrap_delta(view, heads + cards))
        messages[(role, user_id)] = rendered[key]
    return messages


class BoardFeed:
    def __init__(self, database: Database, board_id: int) -> None:
        self.database = database
        self.board_id = board_id
        self.watchers: set[Watcher] = set()
        self.subscribed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.renders = 0  # for tests and the bench: renderings, not viewers, grow with events

    async def run(self) -> None:
        async with hub.subscribe(self.board_id) as subscription:
            self.subscribed.set()
            shown: int | None = None
            while True:
                first = await subscription.queue.get()
                await asyncio.sleep(COALESCE_SECONDS)
                ids = [first]
                while not subscription.queue.empty():
                    ids.append(subscription.queue.get_nowait())
                upto = max(ids)
                after = shown if shown is not None else min(ids) - 1
                if upto <= after or not self.watchers:
                    continue
                variants = {(w.role, w.user_id) for w in self.watchers}
                try:
                    messages = await run_in_threadpool(
                        render_messages, self.database, self.board_id, after, upto, variants
                    )
                except Exception:  # the database away, say: pages reload when it is back
                    log.exception("live delta for board %s failed", self.board_id)
                    messages = {v: _refresh(upto) for v in variants}
                self.renders += 1
                shown = upto
                for watcher in list(self.watchers):
                    message = messages.get((watcher.role, watcher.user_id)) or _refresh(upto)
                    watcher.offer(message)


class Feeds:
    """The feeds of this process, one per (event loop, database, board) while watched."""

    def __init__(self) -> None:
        self._feeds: dict[tuple[int, int, int], BoardFeed] = {}

    def get(self, database: Database, board_id: int) -> BoardFeed | None:
        key = (id(asyncio.get_running_loop()), id(database), board_id)
        return self._feeds.get(key)

    @asynccontextmanager
    async def watch(
        self, database: Database, board_id: int, role: str, user_id: int
    ) -> AsyncIterator[Watcher]:
        key = (id(asyncio.get_running_loop()), id(database), board_id)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = BoardFeed(database, board_id)
            feed.task = asyncio.create_task(feed.run())
        watcher = Watcher(role, user_id)
        feed.watchers.add(watcher)
        try:
            # Only events after the hub subscription reach the page: wait for it.
            await feed.subscribed.wait()
            yield watcher
        finally:
            feed.watchers.discard(watcher)
            if not feed.watchers and self._feeds.get(key) is feed:
                del self._feeds[key]
                if feed.task is not None:
                    feed.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await feed.task


feeds = Feeds()
