"""Site administration (admins only): user accounts and new boards from the five templates.

The pages are refused (403) to anyone who is not a site admin; the POSTs call
services.users.create_user and services.boards.create_board, which check the same again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.client import client_ip
from app.db import queries
from app.db.models import User
from app.deps import DbSession, commit
from app.flow.errors import FlowError, InsufficientRole, InvalidInput
from app.inputs import Id
from app.services import boards, users
from app.services.board_templates import TEMPLATES
from app.web.common import header_summary, parse_int, see_other
from app.web.deps import FormData, WebUser
from app.web.templating import render

router = APIRouter(prefix="/admin")
PAGE_SIZE = 200
REFUSAL_HEADER = "X-Flowboard-Refusal"


def require_admin(user: User) -> None:
    if not user.is_admin:
        raise InsufficientRole(
            "Only site admins can open the admin pages; ask one to create the account or board.",
            required_role="admin",
        )


def _offset(request: Request) -> int:
    return max(0, parse_int(request.query_params.get("offset"), "offset") or 0)


def users_page(
    request: Request,
    session: Session,
    user: User,
    *,
    alert: str | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    offset = _offset(request)
    rows = list(queries.users(session, limit=PAGE_SIZE + 1, offset=offset))
    context: dict[str, Any] = {
        "people": rows[:PAGE_SIZE],
        "offset": offset,
        "next_offset": offset + PAGE_SIZE if len(rows) > PAGE_SIZE else None,
        "prev_offset": max(0, offset - PAGE_SIZE) if offset else None,
        "alert": alert,
        # The password is never sent back into the page.
        "values": {k: v for k, v in (values or {}).items() if k in ("name", "email", "is_admin")},
        "summary": header_summary(session, user),
        "nav_current": "admin-users",
    }
    headers = {REFUSAL_HEADER: "1"} if alert else None
    return render(request, "admin/users.html", context, status_code=status_code, headers=headers)


def boards_page(
    request: Request,
    session: Session,
    user: User,
    *,
    alert: str | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "boards": queries.boards_visible(session, user),
        "templates_": list(TEMPLATES.values()),
        "alert": alert,
        "values": values or {},
        "summary": header_summary(session, user),
        "nav_current": "admin-boards",
    }
    headers = {REFUSAL_HEADER: "1"} if alert else None
    return render(request, "admin/boards.html", context, status_code=status_code, headers=headers)


@router.get("")
def admin_home(user: WebUser) -> Response:
    require_admin(user)
    return see_other("/admin/users")


@router.get("/users")
def list_users(request: Request, session: DbSession, user: WebUser) -> Response:
    require_admin(user)
    return users_page(request, session, user)


@router.post("/users")
def create_user(request: Request, session: DbSession, user: WebUser, form: FormData) -> Response:
    require_admin(user)
    try:
        users.create_user(
            session=session,
            email=form.get("email", ""),
            name=form.get("name", ""),
            password=form.get("password", ""),
            is_admin=form.get("is_admin") in ("1", "on"),
            actor=user,
        )
        commit(session)
    except FlowError as error:
        session.rollback()
        return users_page(
            request, session, user, alert=error.detail, values=form, status_code=error.status
        )
    return see_other("/admin/users")


# Account buttons on the Users page: form field `action` -> (is_active, is_admin) to set.
ACCOUNT_ACTIONS: dict[str, tuple[bool | None, bool | None]] = {
    "deactivate": (False, None),
    "reactivate": (True, None),
    "make-admin": (None, True),
    "remove-admin": (None, False),
}


@router.post("/users/{user_id}")
def update_user(
    request: Request, session: DbSession, user: WebUser, form: FormData, user_id: Id
) -> Response:
    """Deactivate (ends their sessions, tokens and live streams at once), reactivate, or change
    the site-admin role of an account."""
    require_admin(user)
    change = ACCOUNT_ACTIONS.get(form.get("action", ""))
    try:
        if change is None:
            raise InvalidInput("Choose deactivate, reactivate, make admin or remove admin.")
        is_active, is_admin = change
        users.update_user(
            session=session,
            actor=user,
            user_id=user_id,
            is_active=is_active,
            is_admin=is_admin,
            ip=client_ip(request),
        )
        commit(session)
    except FlowError as error:
        session.rollback()
        return users_page(request, session, user, alert=error.detail, status_code=error.status)
    return see_other(f"/admin/users#user-{user_id}")


@router.get("/boards")
def list_boards(request: Request, session: DbSession, user: WebUser) -> Response:
    require_admin(user)
    return boards_page(request, session, user)


@router.post("/boards")
def create_board(request: Request, session: DbSession, user: WebUser, form: FormData) -> Response:
    """A board from one of the templates; the key is optional (derived from the name)."""
    require_admin(user)
    key = (form.get("key") or "").strip().upper() or None
    try:
        board = boards.create_board(
            session=session,
            actor=user,
            name=form.get("name", ""),
            key=key,
            template=form.get("template") or None,
        )
        commit(session)
    except FlowError as error:
        session.rollback()
        return boards_page(
            request,
            session,
            user,
            alert=error.detail,
            values={k: v for k, v in form.items() if k != "csrf_token"},
            status_code=error.status,
        )
    # The list links each board to its settings, where its members are added next.
    return see_other(f"/admin/boards#board-{board.id}")
