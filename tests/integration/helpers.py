"""Shared builders and race workers for the integration tests (threads and spawned processes).

Everything here that runs in a spawned child is a module-level function with plain, picklable
arguments, so multiprocessing's "spawn" context can import and call it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select

from app.db.models import Event, Item, User
from app.db.session import Database
from app.flow.errors import FlowError
from app.services import boards, items
from tests.factories import Seed, make_user

BARRIER_TIMEOUT_S = 60
WON = "won"


def add_members(seed: Seed, *, count: int, role: str, prefix: str) -> list[int]:
    """`count` new users with `role` on the seed board; returns their ids."""
    ids = []
    with seed.database.unit_of_work() as session:
        admin = session.get(User, seed.user("admin").id)
        assert admin is not None
        for n in range(count):
            user = make_user(session, f"{prefix}{n}")
            boards.set_member(
                session=session, board_id=seed.board_id, user_id=user.id, role=role, actor=admin
            )
            ids.append(user.id)
    return ids


def create_backlog_items(seed: Seed, count: int) -> list[int]:
    """`count` options in the backlog, created through the real service."""
    with seed.database.unit_of_work() as session:
        admin = session.get(User, seed.user("admin").id)
        assert admin is not None
        return [
            items.create_item(
                session=session, board_id=seed.board_id, actor=admin, title=f"Option {n}"
            ).item.id
            for n in range(count)
        ]


def outcome_of(action: Callable[[], object]) -> tuple[str, dict[str, Any]]:
    """("won", {}) or (slug, fields) of the FlowError; anything else becomes ("error: ...", {})."""
    try:
        action()
    except FlowError as error:
        return error.slug, dict(error.fields)
    except Exception as error:  # a race must never surface as anything but a FlowError
        return f"error: {type(error).__name__}: {error}", {}
    return WON, {}


def pull_once(
    database: Database, *, item_id: int, user_id: int, to_state_id: int | None = None
) -> tuple[str, dict[str, Any]]:
    """One pull in its own unit of work (its own session and transaction)."""

    def action() -> None:
        with database.unit_of_work() as session:
            actor = session.get(User, user_id)
            assert actor is not None
            items.pull_item(session=session, item_id=item_id, actor=actor, to_state_id=to_state_id)

    return outcome_of(action)


def warm_up(database: Database) -> None:
    """Opens a pooled connection before the race, so connecting does not stagger the start."""
    with database.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def race(
    jobs: Sequence[Callable[[], list[tuple[str, dict[str, Any]]]]],
    *,
    barrier: Any,
    before: Callable[[], None] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Runs each job in its own thread, all released together by `barrier`; returns outcomes.

    `barrier` may be a threading.Barrier or a multiprocessing one shared with other processes.
    """
    outcomes: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def run(job: Callable[[], list[tuple[str, dict[str, Any]]]]) -> None:
        try:
            if before is not None:
                before()
            barrier.wait(BARRIER_TIMEOUT_S)
            result = job()
        except Exception as error:  # a broken barrier or setup failure must fail the test
            result = [(f"error: {type(error).__name__}: {error}", {})]
        with lock:
            outcomes.extend(result)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BARRIER_TIMEOUT_S * 2)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    return outcomes


def pull_jobs(
    database: Database, assignments: Sequence[tuple[int, Sequence[int]]]
) -> list[Callable[[], list[tuple[str, dict[str, Any]]]]]:
    """One job per (user id, item ids): that user pulls each item in turn."""

    def job_for(user_id: int, item_ids: Sequence[int]) -> Callable[[], list[Any]]:
        return lambda: [pull_once(database, item_id=i, user_id=user_id) for i in item_ids]

    return [job_for(user_id, item_ids) for user_id, item_ids in assignments]


def pull_race_in_process(
    url: str, assignments: list[tuple[int, list[int]]], barrier: Any, results: Any
) -> None:
    """Child process body: its own Database(url), one thread per assignment, counts to `results`.

    `barrier` is a multiprocessing barrier with one party per thread across all children, so
    threads of every process start pulling at the same moment.
    """
    database = Database(url)
    try:
        outcomes = race(
            pull_jobs(database, assignments), barrier=barrier, before=lambda: warm_up(database)
        )
        counts = Counter(slug for slug, _ in outcomes)
        results.put(dict(counts))
    except Exception as error:  # report instead of dying silently: the parent asserts on it
        results.put({f"error: {type(error).__name__}: {error}": 1})
    finally:
        database.dispose()


def pulled_events_into(database: Database, state_id: int) -> list[int]:
    """Item ids of the `pulled` events whose target is `state_id`."""
    with database.unit_of_work(write=False) as session:
        return list(
            session.scalars(
                select(Event.item_id).where(Event.type == "pulled", Event.to_state_id == state_id)
            )
        )


def item_ids_in(database: Database, state_id: int) -> list[int]:
    with database.unit_of_work(write=False) as session:
        return list(session.scalars(select(Item.id).where(Item.state_id == state_id)))


def event_count(database: Database, type_: str) -> int:
    with database.unit_of_work(write=False) as session:
        return (
            session.scalar(select(func.count()).select_from(Event).where(Event.type == type_)) or 0
        )
