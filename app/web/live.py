"""Live updates over Server-Sent Events: `data: {"event_id": N}` when a board changes (API
and My work); board pages get ready-made deltas instead (app.web.board_feed).

The database is used only to authenticate and check membership, then released: the stream
waits on the in-process hub (fed by NOTIFY on PostgreSQL), never on an open session.

A stream ends within seconds once its credential or access goes (sign-out, token revoked or
expired, account deactivated, removed from the board): the hub tells it that the user's access
changed and it re-checks at once, with a short read in a worker thread; it also re-checks every
RECHECK_SECONDS in case a signal was missed (a lost LISTEN connection, an expiry, an idle
timeout). It then sends the comment `: access ended` and closes; the browser's reconnect gets
401 or 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import cast

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.db import board_queries as bq
from app.db.models import User
from app.db.session import Database
from app.deps import get_db
from app.flow.errors import FlowError, NotAuthenticated
from app.inputs import Id
from app.live.hub import hub
from app.services import users
from app.services.access import visible_board
from app.web.board_feed import Message, feeds
from app.web.deps import SESSION_COOKIE

router = APIRouter()
api_router = APIRouter(tags=["live"])

PING_SECONDS = 15
RETRY_MS = 2000
MAX_STREAM_SECONDS = 30 * 60  # then the browser reconnects (retry), re-checking access
RECHECK_SECONDS = 10  # besides the hub's signal: at most this long on a missed one
ACCESS_CHANGED = -1  # in the stream's queue next to event ids (which are positive)


@dataclass(frozen=True)
class StreamAccess:
    """What a stream was allowed with, to check again later without the request's session."""

    user_id: int
    bearer: str | None  # the bearer token, or None for the session cookie
    cookie: str | None
    board_id: int | None  # None: every board I am on (My work)
    board_ids: tuple[int, ...]
    role: str | None = None  # board pages' streams: the role their deltas are rendered for


def _credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), None
    return None, request.cookies.get(SESSION_COOKIE) or None


def _user(session: Session, bearer: str | None, cookie: str | None) -> User:
    if bearer is not None:
        found_token = users.user_for_token(session=session, token=bearer)
        if found_token is not None:
            return found_token[0]
        raise NotAuthenticated("This token is unknown, revoked or expired.")
    found = users.user_for_web_session(session=session, secret=cookie) if cookie else None
    if found is None:
        raise NotAuthenticated("Sign in first: a bearer token or a browser session is needed.")
    return found[0]


def _boards(session: Session, user: User, board_id: int | None) -> tuple[int, ...]:
    """The boards to stream (checked membership: NotFound for others)."""
    if board_id is not None:
        visible_board(session, board_id=board_id, actor=user)
        return (board_id,)
    return tuple(board.id for board, _ in bq.my_boards(session, user))


def _authorise(request: Request, board_id: int | None, *, deltas: bool = False) -> StreamAccess:
    """Who streams which boards, checked with a short session. `deltas`: a board page's stream,
    rendered for the viewer's role."""
    bearer, cookie = _credentials(request)
    with get_db(request).session(write=False) as session:
        user = _user(session, bearer, cookie)
        if deltas and board_id is not None:
            _, role = visible_board(session, board_id=board_id, actor=user)
            return StreamAccess(user.id, bearer, cookie, board_id, (board_id,), role)
        board_ids = _boards(session, user, board_id)
        return StreamAccess(user.id, bearer, cookie, board_id, board_ids)


def still_allowed(database: Database, access: StreamAccess) -> bool:
    """The same credential still works and sees the same boards (My work: a board added or
    taken away also ends the stream, so the browser reconnects with the new set)."""
    with database.session(write=False) as session:
        try:
            user = _user(session, access.bearer, access.cookie)
            if access.role is not None and access.board_id is not None:
                # A changed role changes the buttons: the page reconnects for the new ones.
                _, role = visible_board(session, board_id=access.board_id, actor=user)
                return user.id == access.user_id and role == access.role
            return user.id == access.user_id and (
                set(_boards(session, user, None)) == set(access.board_ids)
                if access.board_id is None
                else bool(_boards(session, user, access.board_id))
            )
        except FlowError:
            return False


async def event_stream(
    request: Request,
    access: StreamAccess,
    *,
    max_seconds: float,
    recheck_seconds: float = RECHECK_SECONDS,
) -> AsyncIterator[ServerSentEvent]:
    """Subscribes to every board, then yields one message per new event until time is up or
    the access is gone (re-checked when the hub says so and every `recheck_seconds`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    database = get_db(request)
    async with AsyncExitStack() as stack:
        # One queue this stream reads: a board page's feed queue or a single board's hub queue
        # as they are (no task copying each message per viewer); My work merges its boards'.
        queue: asyncio.Queue[int | Message]
        sources: list[asyncio.Queue[int | Message]] = []
        if access.role is not None and access.board_id is not None:
            watcher = await stack.enter_async_context(
                feeds.watch(database, access.board_id, access.role, access.user_id)
            )
            queue = watcher.queue
        else:
            subs = [await stack.enter_async_context(hub.subscribe(b)) for b in access.board_ids]
            # The hub's queues carry event ids; the access signal is an int too.
            sources = [cast("asyncio.Queue[int | Message]", s.queue) for s in subs]
            queue = sources[0] if len(sources) == 1 else asyncio.Queue()
            if len(sources) == 1:
                sources = []
        watch = await stack.enter_async_context(hub.watch_access(access.user_id))
        yield ServerSentEvent(comment="connected", retry=RETRY_MS)

        async def pump(sub_queue: asyncio.Queue[int | Message]) -> None:
            while True:
                await queue.put(await sub_queue.get())

        async def watch_pump() -> None:
            while True:
                await watch.changed.wait()
                watch.changed.clear()
                # A full queue still ends in a re-check: the periodic one.
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(ACCESS_CHANGED)

        tasks = [asyncio.create_task(pump(source)) for source in sources]
        tasks.append(asyncio.create_task(watch_pump()))
        next_check = loop.time() + recheck_seconds
        try:
            # Access may have gone between the check above and the subscription.
            if not await run_in_threadpool(still_allowed, database, access):
                yield ServerSentEvent(comment="access ended")
                return
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0 or await request.is_disconnected():
                    return
                if loop.time() >= next_check:
                    if not await run_in_threadpool(still_allowed, database, access):
                        yield ServerSentEvent(comment="access ended")
                        return
                    next_check = loop.time() + recheck_seconds
                timeout = max(0.0, min(remaining, next_check - loop.time(), 5))
                try:
                    news = await asyncio.wait_for(queue.get(), timeout=timeout)
                except TimeoutError:
                    continue
                if isinstance(news, Message):
                    yield ServerSentEvent(event=news.kind, data=news.data)
                    continue
                if news == ACCESS_CHANGED:
                    next_check = loop.time()  # re-check now, at the top of the loop
                    continue
                yield ServerSentEvent(data=json.dumps({"event_id": news}))
        finally:
            for task in tasks:
                task.cancel()


def _response(request: Request, access: StreamAccess) -> EventSourceResponse:
    max_seconds = getattr(request.app.state, "live_max_seconds", MAX_STREAM_SECONDS)
    recheck = getattr(request.app.state, "live_recheck_seconds", RECHECK_SECONDS)
    return EventSourceResponse(
        event_stream(request, access, max_seconds=max_seconds, recheck_seconds=recheck),
        ping=PING_SECONDS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@api_router.get(
    "/boards/{board_id}/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": 'Server-Sent Events: `data: {"event_id": N}` for each new event.',
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        # Rendered as problem+json by app.api.openapi, like every API error.
        401: {"description": "Not signed in."},
    },
)
async def board_stream(request: Request, board_id: Id) -> EventSourceResponse:
    """SSE of a board's new events: `data: {"event_id": N}`; bearer token or session cookie."""
    access = await run_in_threadpool(_authorise, request, board_id)
    return _response(request, access)


@router.get("/boards/{board_id}/live")
async def board_live(request: Request, board_id: Id) -> EventSourceResponse:
    """The board page's stream: `event: delta` with the changed cards and heads rendered for
    the viewer's role (app.web.board_feed), or `event: refresh` when the board must reload."""
    access = await run_in_threadpool(_authorise, request, board_id, deltas=True)
    return _response(request, access)


@router.get("/me/live")
async def my_live(request: Request) -> EventSourceResponse:
    """One stream for every board I am on (for My work)."""
    access = await run_in_threadpool(_authorise, request, None)
    return _response(request, access)
