"""Accounts: who am I, my password, and (site admins) the user list, new users, renaming,
roles, deactivation and reactivation."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import CurrentToken, CurrentUser, DbSession, Paging, commit
from app.api.openapi import problems
from app.api.schemas import PasswordChangeIn, UserIn, UserOut, UserPatch
from app.client import client_ip
from app.db import queries
from app.db.models import User
from app.flow.errors import NotFound, WrongCurrentPassword
from app.flow.rules import require_role
from app.inputs import Id
from app.services import throttle, users

router = APIRouter(tags=["users"])


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> UserOut:
    """The signed-in user."""
    return UserOut.of(user)


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(
    body: UserIn, session: DbSession, actor: CurrentUser, response: Response
) -> UserOut:
    """Site admins only. A taken email is 409 `email-taken`; a password under 8 characters 422."""
    user = users.create_user(
        session=session,
        email=body.email,
        name=body.name,
        password=body.password,
        is_admin=body.is_admin,
        actor=actor,
    )
    commit(session)
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return UserOut.of(user)


@router.get("/users", response_model=list[UserOut], responses=problems(403))
def list_users(session: DbSession, actor: CurrentUser, page: Paging) -> list[UserOut]:
    """Site admins only, in id order."""
    # Admin-only, phrased as create_user phrases it (an admin counts as a manager everywhere).
    require_role("manager" if actor.is_admin else None, "manager", doing="list users")
    return [UserOut.of(u) for u in queries.users(session, limit=page.limit, offset=page.offset)]


@router.get("/users/{user_id}", response_model=UserOut, responses=problems(403))
def get_user(user_id: Id, session: DbSession, actor: CurrentUser) -> UserOut:
    """Site admins only (the `Location` of a new user)."""
    require_role("manager" if actor.is_admin else None, "manager", doing="read user accounts")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return UserOut.of(user)


@router.post("/users/me/password", status_code=204)
def change_my_password(
    body: PasswordChangeIn, request: Request, session: DbSession, found: CurrentToken
) -> Response:
    """Change your password. Your other browser sessions and tokens end; the token used for
    this request stays valid. A wrong `current_password` is 422 `validation` (not 401: the
    token itself is fine); a `new_password` under 8 characters is 422 too."""
    user, token = found
    try:
        throttle.change_password(
            session=session,
            user=user,
            current_password=body.current_password,
            new_password=body.new_password,
            keep_token_id=token.id,
            ip=client_ip(request),
        )
    except WrongCurrentPassword:
        commit(session)  # the counted failure outlives the refusal
        raise
    commit(session)
    return Response(status_code=204)


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(
    user_id: Id, body: UserPatch, request: Request, session: DbSession, actor: CurrentUser
) -> UserOut:
    """Site admins only. `is_active: false` ends that person's sessions, tokens and live streams
    at once (their items and history stay; signing in then answers 401); an admin cannot
    deactivate themselves or drop their own admin role (422)."""
    user = users.update_user(
        session=session,
        actor=actor,
        user_id=user_id,
        name=body.name,
        is_admin=body.is_admin,
        is_active=body.is_active,
        ip=client_ip(request),
    )
    commit(session)
    return UserOut.of(user)
