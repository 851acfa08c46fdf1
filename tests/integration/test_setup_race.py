"""First-run setup racing itself: exactly one first admin, on both databases."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select

from app.db.models import User
from app.db.session import Database
from app.services import users
from tests.integration.helpers import race, warm_up


def test_racing_first_run_setups_create_one_admin(database: Database) -> None:
    warm_up(database)

    def setup_as(n: int) -> Any:
        def job() -> list[tuple[str, dict[str, Any]]]:
            with database.unit_of_work() as session:
                user = users.create_first_admin(
                    session=session,
                    email=f"admin{n}@example.org",
                    name=f"Admin {n}",
                    password="long enough password",
                )
            return [("won" if user is not None else "too late", {})]

        return job

    outcomes = race([setup_as(n) for n in range(6)], barrier=threading.Barrier(6))
    assert sorted(o for o, _ in outcomes) == ["too late"] * 5 + ["won"]
    with database.unit_of_work(write=False) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1
