"""Races on both databases with real threads and real OS processes (PRODUCT.md rule 1:
"two pulls racing for the last WIP slot: exactly one wins, on SQLite and on PostgreSQL, across
processes"; rule 6: a stale version is a 409, never a silent overwrite).

Negative control (how we know these tests can fail; run by hand, not in CI, via a
sitecustomize.py on PYTHONPATH so the spawned children are patched too):
- `queries.lock_state` monkeypatched to a no-op: SQLite still passes (BEGIN IMMEDIATE alone
  serialises writers) but PostgreSQL fails every WIP race, threads and processes alike:
  each pull locks only its own item row, so concurrent transactions count the same committed
  WIP and all insert (observed 4 to 9 winners of 24 instead of 3).
- additionally every unit of work opened with a plain BEGIN (`write=False`): SQLite (WAL) now
  fails with "database is locked" (a deferred reader cannot upgrade to a writer after another
  commit) instead of waiting for the write lock.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from functools import partial
from typing import Any

import pytest

from app.db import queries
from app.db.models import Item, User
from app.db.session import Database
from app.services import items
from app.services.boards import StateSpec
from tests.factories import Seed, seed_board
from tests.integration.helpers import (
    WON,
    add_members,
    create_backlog_items,
    event_count,
    item_ids_in,
    outcome_of,
    pull_jobs,
    pull_once,
    pull_race_in_process,
    pulled_events_into,
    race,
    warm_up,
)

WIP_LIMIT = 3
PULLS = 24


def three_state_board(database: Database) -> Seed:
    # No personal limit, so only the state's WIP limit decides who wins.
    return seed_board(
        database,
        states=[
            StateSpec("Backlog", "backlog"),
            StateSpec("Build", "work", WIP_LIMIT),
            StateSpec("Done", "done"),
        ],
    )


def assert_exactly_three_in_build(database: Database, seed: Seed) -> None:
    build = seed.state_id("Build")
    in_build = item_ids_in(database, build)
    assert len(in_build) == WIP_LIMIT
    with database.unit_of_work(write=False) as session:
        assert queries.state_wip(session, build) == WIP_LIMIT
    # The log agrees with the rows: one `pulled` event per item that got in, and no overrides.
    assert sorted(pulled_events_into(database, build)) == sorted(in_build)
    assert event_count(database, "wip_override") == 0


@pytest.mark.parametrize("actors", ["distinct users", "one user"])
def test_threads_racing_for_three_slots(database: Database, actors: str) -> None:
    seed = three_state_board(database)
    threads = 12
    if actors == "distinct users":
        user_ids = add_members(seed, count=threads, role="member", prefix="Puller")
    else:
        user_ids = [seed.user("member").id] * threads
    item_ids = create_backlog_items(seed, PULLS)
    per_thread = PULLS // threads
    assignments = [
        (user_ids[n], item_ids[n * per_thread : (n + 1) * per_thread]) for n in range(threads)
    ]

    outcomes = race(
        pull_jobs(database, assignments),
        barrier=threading.Barrier(threads),
        before=lambda: warm_up(database),
    )

    counts = Counter(slug for slug, _ in outcomes)
    assert counts == {WON: WIP_LIMIT, "wip-limit-reached": PULLS - WIP_LIMIT}
    refusals = [fields for slug, fields in outcomes if slug == "wip-limit-reached"]
    assert all(f == {"state_id": seed.state_id("Build"), "wip": 3, "limit": 3} for f in refusals)
    assert_exactly_three_in_build(database, seed)


def test_two_processes_racing_for_three_slots(database: Database) -> None:
    seed = three_state_board(database)
    processes, threads = 2, 6
    user_ids = add_members(seed, count=processes * threads, role="member", prefix="Proc")
    item_ids = create_backlog_items(seed, PULLS)
    per_thread = PULLS // (processes * threads)
    assignments = [
        (user_ids[n], item_ids[n * per_thread : (n + 1) * per_thread])
        for n in range(processes * threads)
    ]

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes * threads)  # every thread of every child starts together
    results = context.Queue()
    children = [
        context.Process(
            target=pull_race_in_process,
            args=(database.url, assignments[p * threads : (p + 1) * threads], barrier, results),
        )
        for p in range(processes)
    ]
    for child in children:
        child.start()
    per_child: list[dict[str, int]] = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(30)
        assert child.exitcode == 0

    total: Counter[str] = Counter()
    for counts in per_child:
        assert sum(counts.values()) == threads * per_thread, counts
        total.update(counts)
    assert total == {WON: WIP_LIMIT, "wip-limit-reached": PULLS - WIP_LIMIT}, per_child
    assert_exactly_three_in_build(database, seed)


def test_lost_update_is_a_version_conflict(database: Database) -> None:
    seed = three_state_board(database)
    editors = 8
    user_ids = add_members(seed, count=editors, role="member", prefix="Editor")
    [item_id] = create_backlog_items(seed, 1)
    with database.unit_of_work(write=False) as session:
        assert session.get(Item, item_id).version == 1  # type: ignore[union-attr]

    def edit(n: int) -> list[tuple[str, dict[str, Any]]]:
        def action() -> None:
            with database.unit_of_work() as session:
                actor = session.get(User, user_ids[n])
                assert actor is not None
                items.edit_item(
                    session=session,
                    item_id=item_id,
                    actor=actor,
                    version=1,
                    changes={"title": f"Title from editor {n}"},
                )

        slug, fields = outcome_of(action)
        return [(slug, {**fields, "editor": n})]

    outcomes = race(
        [partial(edit, n) for n in range(editors)],
        barrier=threading.Barrier(editors),
        before=lambda: warm_up(database),
    )

    counts = Counter(slug for slug, _ in outcomes)
    assert counts == {WON: 1, "version-conflict": editors - 1}, outcomes
    assert all(f["current_version"] == 2 for slug, f in outcomes if slug == "version-conflict")
    [winner] = [f["editor"] for slug, f in outcomes if slug == WON]
    with database.unit_of_work(write=False) as session:
        item = session.get(Item, item_id)
        assert item is not None
        assert (item.version, item.title) == (2, f"Title from editor {winner}")
    assert event_count(database, "edited") == 1


@pytest.mark.parametrize(
    ("named_target", "loser_slug"),
    [
        # Losers find the item in Review, being worked again: not-ready.
        (False, "not-ready"),
        # A drag-and-drop pull names its target; losers then ask for a state that is no
        # longer the next one: invalid-move.
        (True, "invalid-move"),
    ],
)
def test_threads_pulling_the_same_ready_item(
    database: Database, named_target: bool, loser_slug: str
) -> None:
    seed = seed_board(database)  # Backlog, Build(3), Review(2, reviewer), Done
    pullers = 6
    user_ids = add_members(seed, count=pullers, role="reviewer", prefix="Receiver")
    [item_id] = create_backlog_items(seed, 1)
    with database.unit_of_work() as session:
        member = session.get(User, seed.user("member").id)
        assert member is not None
        items.pull_item(session=session, item_id=item_id, actor=member)
        items.mark_ready(session=session, item_id=item_id, actor=member)
    review = seed.state_id("Review")
    to_state_id = review if named_target else None

    def pull_as(user_id: int) -> list[tuple[str, dict[str, Any]]]:
        return [pull_once(database, item_id=item_id, user_id=user_id, to_state_id=to_state_id)]

    outcomes = race(
        [partial(pull_as, user_id) for user_id in user_ids],
        barrier=threading.Barrier(pullers),
        before=lambda: warm_up(database),
    )

    counts = Counter(slug for slug, _ in outcomes)
    assert counts == {WON: 1, loser_slug: pullers - 1}, outcomes
    assert item_ids_in(database, review) == [item_id]
    assert pulled_events_into(database, review) == [item_id]
    with database.unit_of_work(write=False) as session:
        item = session.get(Item, item_id)
        assert item is not None and item.stage == "doing"


def test_one_person_racing_two_pulls_into_different_states(database: Database) -> None:
    # The personal limit is board-wide, so two pulls by one person into two different states
    # (each locking only its own target state) must still serialise on that person. Before
    # pull_item locked the person's row (queries.lock_user), PostgreSQL let both win in 9 or
    # 10 of 10 rounds.
    seed = seed_board(
        database,
        states=[
            StateSpec("Backlog", "backlog"),
            StateSpec("Build", "work", 100),
            StateSpec("Review", "work", 100, "reviewer"),
            StateSpec("Done", "done"),
        ],
        personal_wip_limit=1,
    )
    rounds = 10
    pullers = add_members(seed, count=rounds, role="reviewer", prefix="Busy")
    fresh = create_backlog_items(seed, rounds)
    handoffs = create_backlog_items(seed, rounds)
    with database.unit_of_work() as session:
        member = session.get(User, seed.user("member").id)
        assert member is not None
        for item_id in handoffs:  # ready in Build, waiting for Review
            items.pull_item(session=session, item_id=item_id, actor=member)
            items.mark_ready(session=session, item_id=item_id, actor=member)

    results = []
    for n in range(rounds):
        outcomes = race(
            pull_jobs(database, [(pullers[n], [fresh[n]]), (pullers[n], [handoffs[n]])]),
            barrier=threading.Barrier(2),
            before=lambda: warm_up(database),
        )
        results.append(Counter(slug for slug, _ in outcomes))
    assert all(r == {WON: 1, "personal-wip-limit-reached": 1} for r in results), results


def test_threads_assigning_doing_items_to_one_person(database: Database) -> None:
    # Assignment obeys the personal limit like a pull (issue 7, point 8). Each assignment
    # locks only its own item row, so without serialising on the new owner
    # (queries.lock_user) PostgreSQL would let every one of them count the same committed 0.
    limit, assigners = 2, 12
    seed = seed_board(
        database,
        states=[
            StateSpec("Backlog", "backlog"),
            StateSpec("Build", "work", 100),
            StateSpec("Done", "done"),
        ],
        personal_wip_limit=limit,
    )
    workers = add_members(seed, count=assigners, role="member", prefix="Worker")
    item_ids = create_backlog_items(seed, assigners)
    versions: dict[int, int] = {}
    with database.unit_of_work() as session:
        for worker_id, item_id in zip(workers, item_ids, strict=True):
            worker = session.get(User, worker_id)
            assert worker is not None
            detail = items.pull_item(session=session, item_id=item_id, actor=worker)
            versions[item_id] = detail.item.version
    target = seed.user("member").id

    def assign(n: int) -> list[tuple[str, dict[str, Any]]]:
        def action() -> None:
            with database.unit_of_work() as session:
                actor = session.get(User, workers[n])  # each worker hands their item over
                assert actor is not None
                items.edit_item(
                    session=session,
                    item_id=item_ids[n],
                    actor=actor,
                    version=versions[item_ids[n]],
                    changes={"owner_id": target},
                )

        return [outcome_of(action)]

    outcomes = race(
        [partial(assign, n) for n in range(assigners)],
        barrier=threading.Barrier(assigners),
        before=lambda: warm_up(database),
    )

    counts = Counter(slug for slug, _ in outcomes)
    assert counts == {WON: limit, "personal-wip-limit-reached": assigners - limit}, outcomes
    refusals = [f for slug, f in outcomes if slug == "personal-wip-limit-reached"]
    assert all(f == {"wip": limit, "limit": limit} for f in refusals)
    with database.unit_of_work(write=False) as session:
        _, doing = queries.wip_counts(
            session, board_id=seed.board_id, state_id=seed.state_id("Build"), owner_id=target
        )
    assert doing == limit
    assert event_count(database, "assigned") == limit
