"""Live updates over Server-Sent Events: `data: {"event_id": N}` when a board changes.

The database is used only to authenticate and check membership, then released: the stream
waits on the in-process hub (fed by NOTIFY on PostgreSQL), never on an open session.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.db import board_queries as bq
from app.db.models import User
from app.deps import get_db
from app.flow.errors import NotAuthenticated
from app.live.hub import hub
from app.services import users
from app.services.access import visible_board
from app.web.deps import SESSION_COOKIE

router = APIRouter()
api_router = APIRouter(tags=["live"])

PING_SECONDS = 15
RETRY_MS = 2000
MAX_STREAM_SECONDS = 30 * 60  # then the browser reconnects (retry), re-checking access


def _user(request: Request, session: Session) -> User:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        found_token = users.user_for_token(session=session, token=header[7:].strip())
        if found_token is not None:
            return found_token[0]
        raise NotAuthenticated("This token is unknown or revoked.")
    secret = request.cookies.get(SESSION_COOKIE)
    found = users.user_for_web_session(session=session, secret=secret) if secret else None
    if found is None:
        raise NotAuthenticated("Sign in first: a bearer token or a browser session is needed.")
    return found[0]


def _authorise(request: Request, board_id: int | None) -> list[int]:
    """The boards to stream (checked membership: NotFound for others), with a short session."""
    with get_db(request).session(write=False) as session:
        user = _user(request, session)
        if board_id is not None:
            visible_board(session, board_id=board_id, actor=user)
            return [board_id]
        return [board.id for board, _ in bq.my_boards(session, user)]


async def event_stream(
    request: Request, board_ids: Sequence[int], *, max_seconds: float
) -> AsyncIterator[ServerSentEvent]:
    """Subscribes to every board, then yields one message per new event until time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    async with AsyncExitStack() as stack:
        subs = [await stack.enter_async_context(hub.subscribe(b)) for b in board_ids]
        yield ServerSentEvent(comment="connected", retry=RETRY_MS)
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def pump(sub_queue: asyncio.Queue[int]) -> None:
            while True:
                await queue.put(await sub_queue.get())

        tasks = [asyncio.create_task(pump(s.queue)) for s in subs]
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0 or await request.is_disconnected():
                    return
                try:
                    event_id = await asyncio.wait_for(queue.get(), timeout=min(remaining, 5))
                except TimeoutError:
                    continue
                yield ServerSentEvent(data=json.dumps({"event_id": event_id}))
        finally:
            for task in tasks:
                task.cancel()


def _response(request: Request, board_ids: list[int]) -> EventSourceResponse:
    max_seconds = getattr(request.app.state, "live_max_seconds", MAX_STREAM_SECONDS)
    return EventSourceResponse(
        event_stream(request, board_ids, max_seconds=max_seconds),
        ping=PING_SECONDS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@api_router.get("/boards/{board_id}/stream")
async def board_stream(request: Request, board_id: int) -> EventSourceResponse:
    """SSE of a board's new events: `data: {"event_id": N}`; bearer token or session cookie."""
    board_ids = await run_in_threadpool(_authorise, request, board_id)
    return _response(request, board_ids)


@router.get("/boards/{board_id}/live")
async def board_live(request: Request, board_id: int) -> EventSourceResponse:
    return await board_stream(request, board_id)


@router.get("/me/live")
async def my_live(request: Request) -> EventSourceResponse:
    """One stream for every board I am on (for My work)."""
    board_ids = await run_in_threadpool(_authorise, request, None)
    return _response(request, board_ids)
