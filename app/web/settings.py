"""Board settings (managers): the board, its states and criteria, block reasons and members.

Each POST is one service call, committed, then PRG back to the page (or, for htmx, the panel
re-rendered from server state). A refusal re-renders the same page or panel unchanged, with
the rule's sentence in role="alert" next to the form that was used. Access (404 for
non-members, 403 for members below manager) is decided by services.access, before any id from
the URL is trusted, and every state, criterion and member in the URL must belong to the board
in the URL (a foreign id is 404, never a change on another board).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.db import queries
from app.db.models import ROLES, Board, Criterion, State, User
from app.deps import DbSession, commit
from app.flow.errors import FlowError, InsufficientRole, InvalidInput, NotFound
from app.services import boards
from app.services.access import visible_board
from app.web.common import header_summary, parse_int, see_other
from app.web.deps import FormData, WebUser
from app.web.templating import is_htmx, render

router = APIRouter()
REFUSAL_HEADER = "X-Flowboard-Refusal"
PULL_ROLES = ("member", "reviewer")

# Panel name -> (fragment template, element id). htmx forms target the element id.
PANELS: dict[str, tuple[str, str]] = {
    "board": ("settings/_board.html", "settings-board"),
    "states": ("settings/_states.html", "settings-states"),
    "reasons": ("settings/_reasons.html", "settings-reasons"),
    "members": ("settings/_members.html", "settings-members"),
}


# Confirmations after a change, by a fixed key (never text from the URL).
NOTICES = {
    "member-added": "If an account uses that email, it is now on this board and shows in the "
    "list above. People already on the board keep their role.",
}


@dataclass
class Alert:
    """A refusal shown next to one form (`where`), with what the person had typed."""

    where: str
    message: str
    values: dict[str, str]


def settings_url(board_id: int, panel: str | None = None) -> str:
    return f"/boards/{board_id}/settings" + (f"#{PANELS[panel][1]}" if panel else "")


def manager_board(session: Session, board_id: int, user: User) -> Board:
    """The board if the user may configure it. Raises NotFound (non-members), InsufficientRole."""
    board, _ = visible_board(
        session, board_id=board_id, actor=user, required="manager", doing="change board settings"
    )
    return board


def state_of_board(session: Session, board: Board, state_id: int) -> State:
    state = session.get(State, state_id)
    if state is None or state.board_id != board.id:
        raise NotFound("No such state on this board.")
    return state


def criterion_of_board(session: Session, board: Board, criterion_id: int) -> Criterion:
    criterion = session.get(Criterion, criterion_id)
    state = session.get(State, criterion.state_id) if criterion is not None else None
    if criterion is None or state is None or state.board_id != board.id:
        raise NotFound("No such criterion on this board.")
    return criterion


def settings_context(
    session: Session, board: Board, alert: Alert | None, notice: str | None = None
) -> dict[str, Any]:
    states = queries.states_of(session, board.id)
    criteria: dict[int, dict[str, list[Criterion]]] = {
        s.id: {"entry": [], "exit": []} for s in states
    }
    for criterion in queries.criteria_of_board(session, board.id):
        criteria[criterion.state_id][criterion.gate].append(criterion)
    work = [s for s in states if s.kind == "work"]

    def field_value(where: str, name: str, default: object = "") -> object:
        """What the person typed into the refused form, else the saved value."""
        if alert is not None and alert.where == where and name in alert.values:
            return alert.values[name]
        return "" if default is None else default

    return {
        "board": board,
        "states": states,
        "first_work_position": work[0].position if work else None,
        "last_work_position": work[-1].position if work else None,
        "criteria": criteria,
        "wip": queries.wip_by_state(session, board.id),
        "reasons": queries.block_reasons(session, board.id),
        "members": queries.members(session, board.id),
        "roles": ROLES,
        "pull_roles": PULL_ROLES,
        "alert": alert,
        "notice": NOTICES.get(notice or ""),
        "field_value": field_value,
        "nav_board": board,
        "nav_current": "settings",
    }


def settings_response(
    request: Request,
    session: Session,
    user: User,
    board: Board,
    *,
    panel: str | None = None,
    alert: Alert | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    context = settings_context(session, board, alert, notice)
    htmx = is_htmx(request) and panel is not None
    if not htmx:
        context["summary"] = header_summary(session, user)
    headers = {REFUSAL_HEADER: "1"} if alert else None
    return render(
        request,
        "settings/settings.html",
        context,
        fragment=PANELS[panel][0] if panel else None,
        # htmx 2 swaps only 2xx responses (board.js opts in 4xx for #board alone), so an htmx
        # refusal is a 200 panel carrying the alert, flagged by the refusal header.
        status_code=200 if htmx else status_code,
        headers=headers,
    )


def act(
    request: Request,
    session: Session,
    user: User,
    board_id: int,
    *,
    panel: str,
    where: str | Callable[[Board], str],
    form: dict[str, str],
    action: Callable[[Board], None],
    notice: str | None = None,
) -> Response:
    """Runs one settings action: access check, the service call, commit, then PRG or panel.

    NotFound and InsufficientRole render as their error pages (nothing on this board is
    shown to people who may not configure it); other refusals are shown next to the form.
    """
    board = manager_board(session, board_id, user)
    try:
        action(board)
        commit(session)
    except (NotFound, InsufficientRole):
        # No rollback here: it would expire the signed-in user the error page still shows;
        # closing the request's session (the dependency) discards the unit of work anyway.
        raise
    except FlowError as error:
        session.rollback()
        board = manager_board(session, board_id, user)
        values = {k: v for k, v in form.items() if k != "csrf_token"}
        place = where(board) if callable(where) else where
        return settings_response(
            request,
            session,
            user,
            board,
            panel=panel,
            alert=Alert(where=place, message=error.detail, values=values),
            status_code=error.status,
        )
    return after_change(request, session, user, board_id, panel, notice)


def after_change(
    request: Request,
    session: Session,
    user: User,
    board_id: int,
    panel: str,
    notice: str | None = None,
) -> Response:
    try:
        board = manager_board(session, board_id, user)
    except (NotFound, InsufficientRole):
        # The manager changed their own role or left the board: settings are no longer theirs.
        target = f"/boards/{board_id}" if queries.membership(session, board_id, user.id) else "/"
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return see_other(target)
    if is_htmx(request):
        return settings_response(request, session, user, board, panel=panel, notice=notice)
    if notice is not None:
        return see_other(f"/boards/{board_id}/settings?notice={notice}#{PANELS[panel][1]}")
    return see_other(settings_url(board_id, panel))


@router.get("/boards/{board_id}/settings")
def settings_page(request: Request, board_id: int, session: DbSession, user: WebUser) -> Response:
    board = manager_board(session, board_id, user)
    notice = request.query_params.get("notice")
    return settings_response(request, session, user, board, notice=notice)


# ---- The board itself ----


@router.post("/boards/{board_id}/settings/board")
def update_board(
    request: Request, board_id: int, session: DbSession, user: WebUser, form: FormData
) -> Response:
    def action(board: Board) -> None:
        boards.update_board(
            session=session,
            board_id=board.id,
            actor=user,
            changes={
                "name": form.get("name", ""),
                "personal_wip_limit": parse_int(form.get("personal_wip_limit"), "Personal limit"),
                # An unchecked checkbox is absent from the form: absent means "no".
                "expedite_exceeds_limits": form.get("expedite_exceeds_limits") in ("1", "on"),
            },
        )

    return act(
        request, session, user, board_id, panel="board", where="board", form=form, action=action
    )


# ---- States ----


@router.post("/boards/{board_id}/settings/states")
def add_state(
    request: Request, board_id: int, session: DbSession, user: WebUser, form: FormData
) -> Response:
    def action(board: Board) -> None:
        boards.add_state(
            session=session,
            board_id=board.id,
            actor=user,
            name=form.get("name", ""),
            wip_limit=parse_int(form.get("wip_limit"), "WIP limit"),
            pull_role=form.get("pull_role") or "member",
        )

    return act(
        request,
        session,
        user,
        board_id,
        panel="states",
        where="add-state",
        form=form,
        action=action,
    )


@router.post("/boards/{board_id}/settings/states/{state_id}")
def update_state(
    request: Request,
    board_id: int,
    state_id: int,
    session: DbSession,
    user: WebUser,
    form: FormData,
) -> Response:
    """Rename, limit and pull role; only the fields the form shows for this kind are sent."""

    def action(board: Board) -> None:
        state = state_of_board(session, board, state_id)
        changes: dict[str, object] = {}
        if "name" in form:
            changes["name"] = form["name"]
        if "wip_limit" in form:
            changes["wip_limit"] = parse_int(form["wip_limit"], "WIP limit")
        if "pull_role" in form:
            changes["pull_role"] = form["pull_role"]
        boards.update_state(session=session, state_id=state.id, actor=user, changes=changes)

    return act(
        request,
        session,
        user,
        board_id,
        panel="states",
        where=f"state-{state_id}",
        form=form,
        action=action,
    )


@router.post("/boards/{board_id}/settings/states/{state_id}/move")
def move_state(
    request: Request,
    board_id: int,
    state_id: int,
    session: DbSession,
    user: WebUser,
    form: FormData,
) -> Response:
    """ "Move up" / "Move down": one place along the flow; the service keeps the ends fixed."""

    def action(board: Board) -> None:
        state = state_of_board(session, board, state_id)
        direction = form.get("direction")
        if direction not in ("up", "down"):
            raise InvalidInput("Choose Move up or Move down.")
        position = state.position + (-1 if direction == "up" else 1)
        boards.update_state(
            session=session, state_id=state.id, actor=user, changes={"position": position}
        )

    return act(
        request,
        session,
        user,
        board_id,
        panel="states",
        where=f"state-{state_id}",
        form=form,
        action=action,
    )


@router.post("/boards/{board_id}/settings/states/{state_id}/delete")
def delete_state(
    request: Request,
    board_id: int,
    state_id: int,
    session: DbSession,
    user: WebUser,
    form: FormData,
) -> Response:
    """Rule 8: a state holding items is refused with the count, and nothing changes."""

    def action(board: Board) -> None:
        state = state_of_board(session, board, state_id)
        boards.delete_state(session=session, state_id=state.id, actor=user)

    return act(
        request,
        session,
        user,
        board_id,
        panel="states",
        where=f"state-{state_id}",
        form=form,
        action=action,
    )


# ---- Readiness criteria ----


@router.post("/boards/{board_id}/settings/states/{state_id}/criteria")
def add_criterion(
    request: Request,
    board_id: int,
    state_id: int,
    session: DbSession,
    user: WebUser,
    form: FormData,
) -> Response:
    def action(board: Board) -> None:
        state = state_of_board(session, board, state_id)
        boards.add_criterion(
            session=session,
            state_id=state.id,
            actor=user,
            text=form.get("text", ""),
            gate=form.get("gate", ""),
        )

    return act(
        request,
        session,
        user,
        board_id,
        panel="states",
        where=f"criteria-{state_id}",
        form=form,
        action=action,
    )


@router.post("/boards/{board_id}/settings/criteria/{criterion_id}/delete")
def delete_criterion(
    request: Request,
    board_id: int,
    criterion_id: int,
    session: DbSession,
    user: WebUser,
    form: FormData,
) -> Response:
    state_of: dict[str, int] = {}

    def action(board: Board) -> None:
        criterion = criterion_of_board(session, board, criterion_id)
        state_of["id"] = criterion.state_id
        boards.delete_criterion(session=session, criterion_id=criterion.id, actor=user)

    return act(
        request,
        session,
        user,
        board_id,
        panel="states",
        where=lambda _board: f"criteria-{state_of.get('id', 0)}",
        form=form,
        action=action,
    )


# ---- Block reasons ----


@router.post("/boards/{board_id}/settings/reasons")
def add_block_reason(
    request: Request, board_id: int, session: DbSession, user: WebUser, form: FormData
) -> Response:
    def action(board: Board) -> None:
        boards.add_block_reason(
            session=session, board_id=board.id, actor=user, name=form.get("name", "")
        )

    return act(
        request,
        session,
        user,
        board_id,
        panel="reasons",
        where="reasons",
        form=form,
        action=action,
    )


# ---- Members and roles ----


@router.post("/boards/{board_id}/settings/members")
def add_member(
    request: Request, board_id: int, session: DbSession, user: WebUser, form: FormData
) -> Response:
    """Adds an existing account by its email (site admins create accounts). The answer is the
    same whether or not an account uses the email, so the form cannot list who has one."""

    def action(board: Board) -> None:
        boards.add_member_by_email(
            session=session,
            board_id=board.id,
            email=form.get("email") or "",
            role=form.get("role") or "member",
            actor=user,
        )

    return act(
        request,
        session,
        user,
        board_id,
        panel="members",
        where="add-member",
        form=form,
        action=action,
        notice="member-added",
    )


def _member_of_board(session: Session, board: Board, user_id: int) -> None:
    if queries.membership(session, board.id, user_id) is None:
        raise NotFound("That person is not a member of this board.")


@router.post("/boards/{board_id}/settings/members/{user_id}")
def change_role(
    request: Request,
    board_id: int,
    user_id: int,
    session: DbSession,
    user: WebUser,
    form: FormData,
) -> Response:
    def action(board: Board) -> None:
        _member_of_board(session, board, user_id)
        boards.set_member(
            session=session,
            board_id=board.id,
            user_id=user_id,
            role=form.get("role", ""),
            actor=user,
        )

    return act(
        request,
        session,
        user,
        board_id,
        panel="members",
        where=f"member-{user_id}",
        form=form,
        action=action,
    )


@router.post("/boards/{board_id}/settings/members/{user_id}/remove")
def remove_member(
    request: Request,
    board_id: int,
    user_id: int,
    session: DbSession,
    user: WebUser,
    form: FormData,
) -> Response:
    def action(board: Board) -> None:
        _member_of_board(session, board, user_id)
        boards.remove_member(session=session, board_id=board.id, user_id=user_id, actor=user)

    return act(
        request,
        session,
        user,
        board_id,
        panel="members",
        where=f"member-{user_id}",
        form=form,
        action=action,
    )
