"""Items and their flow actions: pull, ready, take back, send back, discard, blocks, criteria,
comments and each item's own history. Every action is one service call; the rules live there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import CurrentUser, DbSession, Paging, commit
from app.api.idempotent import IdempotencyKeyHeader, create_once
from app.api.schemas import (
    BlockIn,
    BlockOut,
    CommentIn,
    CommentOut,
    CriterionSetIn,
    DiscardIn,
    EventOut,
    ItemIn,
    ItemOut,
    ItemPatch,
    PullIn,
    ResolveIn,
    SendBackIn,
    block_out,
    item_out,
    json_answer,
)
from app.db import queries
from app.inputs import Id, SingleLine
from app.services import blocks, items
from app.services.access import visible_item

router = APIRouter(tags=["items"])


@router.post("/boards/{board_id}/items", response_model=ItemOut, status_code=201)
def create_item(
    board_id: Id,
    body: ItemIn,
    request: Request,
    session: DbSession,
    actor: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Members and above: a new option in the backlog. A full backlog: `wip-limit-reached`."""

    def create() -> tuple[ItemOut, str]:
        detail = items.create_item(
            session=session,
            board_id=board_id,
            actor=actor,
            title=body.title,
            description=body.description,
            class_of_service=body.class_of_service,
            due_date=body.due_date,
        )
        return item_out(session, detail), f"/api/v1/items/{detail.item.id}"

    return create_once(session, request, actor=actor, key=idempotency_key, body=body, create=create)


@router.get("/boards/{board_id}/items", response_model=list[ItemOut])
def list_items(
    board_id: Id,
    session: DbSession,
    actor: CurrentUser,
    page: Paging,
    state_id: Id | None = None,
    blocked: bool | None = None,
    owner_id: Id | None = None,
    q: Annotated[SingleLine | None, Query(max_length=200)] = None,
    include_closed: bool = False,
) -> list[ItemOut]:
    """Open items in id order (`include_closed` adds done and discarded ones)."""
    details = items.list_items(
        session=session,
        board_id=board_id,
        actor=actor,
        state_id=state_id,
        blocked=blocked,
        owner_id=owner_id,
        q=q,
        include_closed=include_closed,
        limit=page.limit,
        offset=page.offset,
    )
    # The same builder as GET /items/{item_id}, so a listed item never disagrees with the item
    # read alone (criteria, waiting_for), in a fixed number of statements per page.
    return [item_out(session, detail) for detail in details]


@router.get("/items/{item_id}", response_model=ItemOut)
def get_item(item_id: Id, session: DbSession, actor: CurrentUser) -> Response:
    return json_answer(
        item_out(session, items.get_item(session=session, item_id=item_id, actor=actor))
    )


@router.patch("/items/{item_id}", response_model=ItemOut)
def edit_item(item_id: Id, body: ItemPatch, session: DbSession, actor: CurrentUser) -> Response:
    """Fields not sent stay as they are. A stale `version` is 409 `version-conflict`.

    Giving a doing item to someone at the board's personal limit is 409
    `personal-wip-limit-reached`, unless a manager sends `override_reason`."""
    detail = items.edit_item(
        session=session,
        item_id=item_id,
        actor=actor,
        version=body.version,
        changes=body.changes(exclude=frozenset({"version", "override_reason"})),
        override_reason=body.override_reason,
    )
    commit(session)
    return json_answer(item_out(session, detail))


@router.post("/items/{item_id}/pull", response_model=ItemOut)
def pull_item(
    item_id: Id, session: DbSession, actor: CurrentUser, body: PullIn | None = None
) -> Response:
    """Into the next state. Managers may pass a full limit with `override_reason`."""
    body = body or PullIn()
    detail = items.pull_item(
        session=session,
        item_id=item_id,
        actor=actor,
        override_reason=body.override_reason,
        to_state_id=body.to_state_id,
    )
    commit(session)
    return json_answer(item_out(session, detail))


@router.post("/items/{item_id}/ready", response_model=ItemOut)
def mark_ready(item_id: Id, session: DbSession, actor: CurrentUser) -> Response:
    """Finished here: the owner (or a manager) hands off; before done it is delivered at once."""
    detail = items.mark_ready(session=session, item_id=item_id, actor=actor)
    commit(session)
    return json_answer(item_out(session, detail))


@router.post("/items/{item_id}/unready", response_model=ItemOut)
def unready(item_id: Id, session: DbSession, actor: CurrentUser) -> Response:
    """Back to doing, while nobody has pulled it."""
    detail = items.unready(session=session, item_id=item_id, actor=actor)
    commit(session)
    return json_answer(item_out(session, detail))


@router.post("/items/{item_id}/send-back", response_model=ItemOut)
def send_back(item_id: Id, body: SendBackIn, session: DbSession, actor: CurrentUser) -> Response:
    """Rework: to an earlier work state, with a reason; the owner there takes it again."""
    detail = items.send_back(
        session=session,
        item_id=item_id,
        actor=actor,
        to_state_id=body.to_state_id,
        reason=body.reason,
        override_reason=body.override_reason,
    )
    commit(session)
    return json_answer(item_out(session, detail))


@router.post("/items/{item_id}/discard", response_model=ItemOut)
def discard(item_id: Id, body: DiscardIn, session: DbSession, actor: CurrentUser) -> Response:
    """Options in the backlog (members), or any open item (managers), with a reason."""
    detail = items.discard_item(session=session, item_id=item_id, actor=actor, reason=body.reason)
    commit(session)
    return json_answer(item_out(session, detail))


@router.put("/items/{item_id}/criteria/{criterion_id}", response_model=ItemOut)
def set_criterion(
    item_id: Id, criterion_id: Id, body: CriterionSetIn, session: DbSession, actor: CurrentUser
) -> Response:
    """Check or uncheck an exit criterion of the item's state or an entry one of the next."""
    detail = items.set_criterion(
        session=session, item_id=item_id, criterion_id=criterion_id, met=body.met, actor=actor
    )
    commit(session)
    return json_answer(item_out(session, detail))


@router.post("/items/{item_id}/blocks", response_model=BlockOut, status_code=201)
def block_item(
    item_id: Id,
    body: BlockIn,
    request: Request,
    session: DbSession,
    actor: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Record why the item waits. One open block per item (`already-blocked`)."""

    def create() -> tuple[BlockOut, str]:
        block = blocks.block_item(
            session=session,
            item_id=item_id,
            actor=actor,
            reason_id=body.reason_id,
            note=body.note,
            waiting_on=body.waiting_on,
        )
        return block_out(session, block), f"/api/v1/blocks/{block.id}"

    return create_once(session, request, actor=actor, key=idempotency_key, body=body, create=create)


@router.get("/blocks/{block_id}", response_model=BlockOut)
def get_block(block_id: Id, session: DbSession, actor: CurrentUser) -> Response:
    return json_answer(
        block_out(session, blocks.get_block(session=session, block_id=block_id, actor=actor))
    )


@router.post("/blocks/{block_id}/resolve", response_model=BlockOut)
def resolve_block(
    block_id: Id, session: DbSession, actor: CurrentUser, body: ResolveIn | None = None
) -> Response:
    block = blocks.resolve_block(
        session=session, block_id=block_id, actor=actor, note=(body or ResolveIn()).note
    )
    commit(session)
    return json_answer(block_out(session, block))


@router.get("/items/{item_id}/comments", response_model=list[CommentOut])
def list_comments(
    item_id: Id, session: DbSession, actor: CurrentUser, page: Paging
) -> list[CommentOut]:
    row = visible_item(session, item_id=item_id, actor=actor)
    found = queries.comments_of_item(session, row.item.id, limit=page.limit, offset=page.offset)
    return [CommentOut.of(comment, name) for comment, name in found]


@router.post("/items/{item_id}/comments", response_model=CommentOut, status_code=201)
def add_comment(
    item_id: Id,
    body: CommentIn,
    request: Request,
    session: DbSession,
    actor: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def create() -> tuple[CommentOut, str]:
        comment = blocks.add_comment(session=session, item_id=item_id, actor=actor, body=body.body)
        # Comments have no address of their own; the item's list is where the new one is read.
        return CommentOut.of(comment, actor.name), f"/api/v1/items/{item_id}/comments"

    return create_once(session, request, actor=actor, key=idempotency_key, body=body, create=create)


@router.get("/items/{item_id}/events", response_model=list[EventOut])
def item_events(
    item_id: Id, session: DbSession, actor: CurrentUser, page: Paging
) -> list[EventOut]:
    """The item's timeline, oldest first."""
    row = visible_item(session, item_id=item_id, actor=actor)
    found = queries.events_of_item(session, row.item.id, limit=page.limit, offset=page.offset)
    return [EventOut.of(event) for event in found]
