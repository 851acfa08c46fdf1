"""Boards and their configuration: members, states, criteria and block reasons.

Reads check visibility through services.access (404 for non-members); every write is one
service call, committed here, then serialised.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import CurrentUser, DbSession, Paging, commit
from app.api.idempotent import IdempotencyKeyHeader, create_once
from app.api.schemas import (
    BlockReasonIn,
    BlockReasonOut,
    BoardIn,
    BoardOut,
    BoardPatch,
    CriterionIn,
    CriterionOut,
    MemberByEmailIn,
    MemberByEmailOut,
    MemberIn,
    MemberOut,
    StateIn,
    StateOut,
    StatePatch,
    board_out,
    state_out,
)
from app.db import queries
from app.db.models import User
from app.inputs import Id
from app.services import boards
from app.services.access import effective_role, visible_board
from app.services.boards import StateSpec

router = APIRouter(tags=["boards"])


@router.post("/boards", response_model=BoardOut, status_code=201)
def create_board(
    body: BoardIn,
    request: Request,
    session: DbSession,
    actor: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Site admins only; the creator becomes the board's manager. A bad state layout is 422."""

    def create() -> tuple[BoardOut, str]:
        board = boards.create_board(
            session=session,
            actor=actor,
            name=body.name,
            key=body.key,
            template=body.template,
            states=[StateSpec(s.name, s.kind, s.wip_limit, s.pull_role) for s in body.states]
            if body.states is not None
            else None,
            personal_wip_limit=body.personal_wip_limit,
            expedite_exceeds_limits=body.expedite_exceeds_limits,
        )
        return board_out(session, board, "manager"), f"/api/v1/boards/{board.id}"

    return create_once(session, request, actor=actor, key=idempotency_key, body=body, create=create)


@router.get("/boards", response_model=list[BoardOut])
def list_boards(session: DbSession, actor: CurrentUser, page: Paging) -> list[BoardOut]:
    """The boards you are a member of (site admins: every board), by name."""
    rows = queries.boards_visible(session, actor, limit=page.limit, offset=page.offset)
    return [
        board_out(session, board, effective_role(actor, role) or "viewer") for board, role in rows
    ]


@router.get("/boards/{board_id}", response_model=BoardOut)
def get_board(board_id: Id, session: DbSession, actor: CurrentUser) -> BoardOut:
    board, role = visible_board(session, board_id=board_id, actor=actor)
    return board_out(session, board, role)


@router.patch("/boards/{board_id}", response_model=BoardOut)
def update_board(
    board_id: Id, body: BoardPatch, session: DbSession, actor: CurrentUser
) -> BoardOut:
    """Managers only: name, personal WIP limit, whether expedite items may exceed limits."""
    board = boards.update_board(
        session=session, board_id=board_id, actor=actor, changes=body.changes()
    )
    commit(session)
    return board_out(session, board, "manager")  # only managers (and admins) get here


def _member_out(user: User, role: str) -> MemberOut:
    return MemberOut(user_id=user.id, name=user.name, email=user.email, role=role)


@router.get("/boards/{board_id}/members", response_model=list[MemberOut])
def list_members(
    board_id: Id, session: DbSession, actor: CurrentUser, page: Paging
) -> list[MemberOut]:
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    rows = queries.members(session, board.id)[page.offset : page.offset + page.limit]
    return [_member_out(user, membership.role) for membership, user in rows]


@router.put("/boards/{board_id}/members/{user_id}", response_model=MemberOut)
def set_member(
    board_id: Id, user_id: Id, body: MemberIn, session: DbSession, actor: CurrentUser
) -> MemberOut:
    """Managers only: changes a member's role. Site admins may also add any account here;
    for other managers an id not on the board is 404 like an unused one (add people by email
    with POST /boards/{board_id}/members). A site admin's membership is theirs to change (403).
    """
    membership = boards.set_member(
        session=session, board_id=board_id, user_id=user_id, role=body.role, actor=actor
    )
    commit(session)
    user = session.get(User, membership.user_id)
    assert user is not None
    return _member_out(user, membership.role)


@router.post("/boards/{board_id}/members", response_model=MemberByEmailOut)
def add_member_by_email(
    board_id: Id, body: MemberByEmailIn, session: DbSession, actor: CurrentUser
) -> MemberByEmailOut:
    """Managers only: adds the account that uses `email`, if any, with `role`. The answer is
    the same whether or not an account uses it (the person then appears among the members);
    people already on the board keep their role (change it with PUT)."""
    email = boards.add_member_by_email(
        session=session, board_id=board_id, email=body.email, role=body.role, actor=actor
    )
    commit(session)
    return MemberByEmailOut(email=email, role=body.role)


@router.delete("/boards/{board_id}/members/{user_id}", status_code=204)
def remove_member(board_id: Id, user_id: Id, session: DbSession, actor: CurrentUser) -> Response:
    """Managers only. The last manager cannot be removed (422); a site admin's membership
    only by a site admin (403)."""
    boards.remove_member(session=session, board_id=board_id, user_id=user_id, actor=actor)
    commit(session)
    return Response(status_code=204)


@router.post("/boards/{board_id}/states", response_model=StateOut, status_code=201)
def add_state(
    board_id: Id,
    body: StateIn,
    request: Request,
    session: DbSession,
    actor: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Managers only: a new work state (default: just before done)."""

    def create() -> tuple[StateOut, str]:
        state = boards.add_state(
            session=session,
            board_id=board_id,
            actor=actor,
            name=body.name,
            wip_limit=body.wip_limit,
            pull_role=body.pull_role,
            position=body.position,
        )
        return state_out(session, state), f"/api/v1/states/{state.id}"

    return create_once(session, request, actor=actor, key=idempotency_key, body=body, create=create)


@router.get("/states/{state_id}", response_model=StateOut)
def get_state(state_id: Id, session: DbSession, actor: CurrentUser) -> StateOut:
    """A state with its WIP now and its criteria (the `Location` of a new state)."""
    return state_out(session, boards.get_state(session=session, state_id=state_id, actor=actor))


@router.patch("/states/{state_id}", response_model=StateOut)
def update_state(
    state_id: Id, body: StatePatch, session: DbSession, actor: CurrentUser
) -> StateOut:
    """Managers only: rename, change the WIP limit (below current WIP is allowed), reorder."""
    state = boards.update_state(
        session=session, state_id=state_id, actor=actor, changes=body.changes()
    )
    commit(session)
    return state_out(session, state)


@router.delete("/states/{state_id}", status_code=204)
def delete_state(state_id: Id, session: DbSession, actor: CurrentUser) -> Response:
    """Managers only. A state holding items is refused with `state-not-empty`."""
    boards.delete_state(session=session, state_id=state_id, actor=actor)
    commit(session)
    return Response(status_code=204)


@router.post("/states/{state_id}/criteria", response_model=CriterionOut, status_code=201)
def add_criterion(
    state_id: Id,
    body: CriterionIn,
    request: Request,
    session: DbSession,
    actor: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Managers only: an `entry` (definition of ready) or `exit` (definition of done) check."""

    def create() -> tuple[CriterionOut, str]:
        criterion = boards.add_criterion(
            session=session, state_id=state_id, actor=actor, text=body.text, gate=body.gate
        )
        return CriterionOut.of(criterion), f"/api/v1/criteria/{criterion.id}"

    return create_once(session, request, actor=actor, key=idempotency_key, body=body, create=create)


@router.get("/criteria/{criterion_id}", response_model=CriterionOut)
def get_criterion(criterion_id: Id, session: DbSession, actor: CurrentUser) -> CriterionOut:
    """One readiness criterion (the `Location` of a new criterion)."""
    return CriterionOut.of(
        boards.get_criterion(session=session, criterion_id=criterion_id, actor=actor)
    )


@router.delete("/criteria/{criterion_id}", status_code=204)
def delete_criterion(criterion_id: Id, session: DbSession, actor: CurrentUser) -> Response:
    boards.delete_criterion(session=session, criterion_id=criterion_id, actor=actor)
    commit(session)
    return Response(status_code=204)


@router.get("/boards/{board_id}/block-reasons", response_model=list[BlockReasonOut])
def list_block_reasons(
    board_id: Id, session: DbSession, actor: CurrentUser, page: Paging
) -> list[BlockReasonOut]:
    board, _ = visible_board(session, board_id=board_id, actor=actor)
    reasons = queries.block_reasons(session, board.id)[page.offset : page.offset + page.limit]
    return [BlockReasonOut.of(r) for r in reasons]


@router.post("/boards/{board_id}/block-reasons", response_model=BlockReasonOut, status_code=201)
def add_block_reason(
    board_id: Id,
    body: BlockReasonIn,
    request: Request,
    session: DbSession,
    actor: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Managers only."""

    def create() -> tuple[BlockReasonOut, str]:
        reason = boards.add_block_reason(
            session=session, board_id=board_id, actor=actor, name=body.name
        )
        # No single-reason address exists; the list is where the new reason can be read.
        return BlockReasonOut.of(reason), f"/api/v1/boards/{board_id}/block-reasons"

    return create_once(session, request, actor=actor, key=idempotency_key, body=body, create=create)
