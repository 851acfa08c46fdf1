"""In-process fan-out to the SSE streams: new events per board, and "access changed" per user
(a session ended, a token revoked, the account deactivated, a membership removed), on which a
stream re-checks its credential at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(eq=False)
class Subscription:
    board_id: int
    queue: asyncio.Queue[int]
    loop: asyncio.AbstractEventLoop


@dataclass(eq=False)
class AccessWatch:
    user_id: int
    changed: asyncio.Event
    loop: asyncio.AbstractEventLoop


class Hub:
    """Thread-safe: publish() may be called from request threads or the LISTEN thread."""

    def __init__(self) -> None:
        self._subscriptions: dict[int, set[Subscription]] = {}
        self._watches: dict[int, set[AccessWatch]] = {}
        self._lock = threading.Lock()

    @asynccontextmanager
    async def subscribe(self, board_id: int) -> AsyncIterator[Subscription]:
        subscription = Subscription(
            board_id, asyncio.Queue(maxsize=1000), asyncio.get_running_loop()
        )
        with self._lock:
            self._subscriptions.setdefault(board_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscriptions.get(board_id, set()).discard(subscription)

    def publish(self, board_id: int, event_id: int) -> None:
        with self._lock:
            targets = list(self._subscriptions.get(board_id, ()))
        for subscription in targets:
            # A closed loop means that stream is going away; its unsubscribe is on its way.
            with contextlib.suppress(RuntimeError):
                subscription.loop.call_soon_threadsafe(_offer, subscription.queue, event_id)

    def subscriber_count(self, board_id: int) -> int:
        with self._lock:
            return len(self._subscriptions.get(board_id, ()))

    @asynccontextmanager
    async def watch_access(self, user_id: int) -> AsyncIterator[AccessWatch]:
        """`watch.changed` is set whenever that user's access may have been taken away."""
        watch = AccessWatch(user_id, asyncio.Event(), asyncio.get_running_loop())
        with self._lock:
            self._watches.setdefault(user_id, set()).add(watch)
        try:
            yield watch
        finally:
            with self._lock:
                self._watches.get(user_id, set()).discard(watch)

    def access_changed(self, user_ids: Iterable[int]) -> None:
        with self._lock:
            targets = [w for user_id in set(user_ids) for w in self._watches.get(user_id, ())]
        for watch in targets:
            with contextlib.suppress(RuntimeError):
                watch.loop.call_soon_threadsafe(watch.changed.set)

    def watch_count(self, user_id: int) -> int:
        with self._lock:
            return len(self._watches.get(user_id, ()))


def _offer(queue: asyncio.Queue[int], event_id: int) -> None:
    # A slow reader only needs to know that something changed: dropping is safe.
    if not queue.full():
        queue.put_nowait(event_id)


hub = Hub()
