"""Test data builders that go through the real services, so fixtures obey the same rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db import queries
from app.db.models import Board, State, User
from app.db.session import Database
from app.services import boards, users
from app.services.boards import StateSpec

PASSWORD = "correct horse battery"


@dataclass
class Seed:
    """Users by role name, the board and its states by name."""

    database: Database
    board_id: int
    users: dict[str, User] = field(default_factory=dict)
    states: dict[str, State] = field(default_factory=dict)

    def user(self, role: str) -> User:
        return self.users[role]

    def state_id(self, name: str) -> int:
        return self.states[name].id


def make_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    return users.create_user(
        session=session,
        email=f"{name.lower()}@example.org",
        name=name,
        password=PASSWORD,
        is_admin=is_admin,
    )


def seed_board(
    database: Database,
    *,
    states: list[StateSpec] | None = None,
    template: str | None = None,
    personal_wip_limit: int | None = None,
    expedite_exceeds_limits: bool = True,
    name: str = "Test board",
    key: str = "TST",
) -> Seed:
    """A board (default states: Backlog, Build(limit 3), Review(limit 2, reviewer), Done)."""
    if states is None and template is None:
        states = [
            StateSpec("Backlog", "backlog"),
            StateSpec("Build", "work", 3),
            StateSpec("Review", "work", 2, "reviewer"),
            StateSpec("Done", "done"),
        ]
    with database.unit_of_work() as session:
        admin = make_user(session, "Admin", is_admin=True)
        board: Board = boards.create_board(
            session=session,
            actor=admin,
            name=name,
            key=key,
            template=template,
            states=states,
            personal_wip_limit=personal_wip_limit,
            expedite_exceeds_limits=expedite_exceeds_limits,
        )
        seed = Seed(database=database, board_id=board.id, users={"admin": admin})
        for role, person in (
            ("manager", "Mia"),
            ("member", "Sam"),
            ("member2", "Max"),
            ("reviewer", "Rex"),
            ("viewer", "Vic"),
        ):
            user = make_user(session, person)
            boards.set_member(
                session=session,
                board_id=board.id,
                user_id=user.id,
                role=role.rstrip("2"),
                actor=admin,
            )
            seed.users[role] = user
        seed.users["outsider"] = make_user(session, "Otto")
        seed.states = {s.name: s for s in queries.states_of(session, board.id)}
    return seed


def token_headers(client: TestClient, user: User) -> dict[str, str]:
    response = client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
