"""The organisation's topology under load (issue 8, scale-out; bounded: about a minute):
nginx (deploy/nginx.conf) in front of two app processes, which reach PostgreSQL through
PgBouncer in transaction pooling (LISTEN straight to PostgreSQL). 16 clients pull, mark
ready, block, unblock, send back and create on four boards with WIP limits of 2, four
clients per board. Afterwards, from the event log (the replay of tests/integration/
test_load_fault.py):

- WIP never exceeded any limit at any moment, in any state of any board;
- exactly one event per acknowledged (2xx) write, and none for a refused one;
- no 5xx and no dropped connection; both processes served.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from app.auth import passwords
from app.db.models import BlockReason, Event, State
from app.db.session import Database
from app.services import boards
from app.services.boards import StateSpec
from tests.factories import make_user
from tests.integration.conftest import CHEAP_HASHER
from tests.integration.org_stack import (
    app_processes,
    fresh_postgres_database,
    nginx_in_front,
    pgbouncer,
)
from tests.integration.test_load_fault import EVENT_OF, BoardIds, Log, replay, worker

pytestmark = pytest.mark.xdist_group("org-stack")

BOARDS = 4
CLIENTS_PER_BOARD = 4
LOAD_SECONDS = 40.0
WIP_LIMIT = 2


def seed_boards(database: Database) -> list[tuple[BoardIds, list[tuple[int, str]]]]:
    """BOARDS boards (Backlog, Build(2), Review(2), Done), each with its own members:
    [(ids, [(user id, email)])]."""
    seeded = []
    with database.unit_of_work() as session:
        admin = make_user(session, "Admin", is_admin=True)
        for b in range(BOARDS):
            board = boards.create_board(
                session=session,
                actor=admin,
                name=f"Team {b}",
                key="ORG" + "ABCDEFGH"[b],
                states=[
                    StateSpec("Backlog", "backlog"),
                    StateSpec("Build", "work", WIP_LIMIT),
                    StateSpec("Review", "work", WIP_LIMIT),
                    StateSpec("Done", "done"),
                ],
            )
            members = []
            for n in range(CLIENTS_PER_BOARD):
                user = make_user(session, f"Member{b}x{n}")
                boards.set_member(
                    session=session, board_id=board.id, user_id=user.id, role="member", actor=admin
                )
                members.append((user.id, user.email))
            session.flush()
            states = {
                s.name: s.id
                for s in session.scalars(select(State).where(State.board_id == board.id))
            }
            reason = session.scalars(
                select(BlockReason.id).where(BlockReason.board_id == board.id)
            ).first()
            assert reason is not None
            ids = BoardIds(
                board=board.id,
                backlog=states["Backlog"],
                build=states["Build"],
                review=states["Review"],
                done=states["Done"],
                reason=reason,
            )
            seeded.append((ids, members))
    return seeded


def test_two_processes_behind_nginx_through_pgbouncer_under_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(fresh_postgres_database("flowboard_org_load"))
        bouncer = stack.enter_context(pgbouncer(url))
        database = Database(url)
        stack.callback(database.dispose)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(passwords, "_hasher", CHEAP_HASHER)  # the processes verify any cost
            seeded = seed_boards(database)
        settings = {"db_transaction_pooling": "true", "listen_database_url": url}
        apps = stack.enter_context(app_processes(bouncer.url(url), tmp_path, 2, **settings))
        nginx = stack.enter_context(nginx_in_front(apps, tmp_path))
        monkeypatch.setenv("SSL_CERT_FILE", str(nginx.cert))  # the workers' https clients

        log = Log()
        started = time.monotonic()
        stop_at = started + LOAD_SECONDS
        threads = [
            threading.Thread(
                target=worker,
                args=(log, nginx.base_url, email, user_id, ids, 1000 * b + n, stop_at),
                name=f"client-{b}-{n}",
            )
            for b, (ids, members) in enumerate(seeded)
            for n, (user_id, email) in enumerate(members)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(LOAD_SECONDS + 60)
        elapsed = time.monotonic() - started
        assert not any(t.is_alive() for t in threads), "a client hung"
        served = nginx.upstreams_for("(GET|POST) /api/v1/\\S*")
        check(log, served, [a.address for a in apps], database, seeded, elapsed)


def check(
    log: Log,
    served: Counter[str],
    addresses: list[str],
    database: Database,
    seeded: list[tuple[BoardIds, list[tuple[int, str]]]],
    elapsed: float,
) -> None:
    """The load's answers and the event log agree (see the module's docstring)."""
    statuses = Counter(o.status for o in log.outcomes)
    writes = [o for o in log.outcomes if o.action != "list"]
    acknowledged = [o for o in writes if o.status is not None and 200 <= o.status < 300]
    print(
        f"\n{len(log.outcomes)} requests ({len(writes)} writes, {len(acknowledged)} done) "
        f"in {elapsed:.1f} s: {len(log.outcomes) / elapsed:.0f} requests/s, "
        f"{len(acknowledged) / elapsed:.0f} writes/s; statuses {dict(statuses)}; "
        f"per process {dict(served)}"
    )
    assert [o for o in log.outcomes if o.status is None] == [], statuses
    assert not [s for s in statuses if s is not None and s >= 500], statuses
    assert len(acknowledged) >= 100, statuses
    assert {address for address in served if "," not in address} == set(addresses)
    single = {address: n for address, n in served.items() if address in addresses}
    assert min(single.values()) >= len(log.outcomes) // 5, served

    board_ids = [ids.board for ids, _ in seeded]
    with database.unit_of_work(write=False) as session:
        events = list(
            session.scalars(select(Event).where(Event.board_id.in_(board_ids)).order_by(Event.id))
        )
        limits = {
            s.id: s.wip_limit
            for s in session.scalars(select(State).where(State.board_id.in_(board_ids)))
            if s.wip_limit is not None
        }

    # WIP never exceeded, at any moment, in any state of any board.
    _, exceeded = replay(events, limits)
    assert exceeded == []
    # One event per acknowledged write (by item, type and actor), none for the others.
    kinds = set(EVENT_OF.values())
    present = Counter(
        (e.item_id, e.type, e.actor_id) for e in events if e.type in kinds and e.item_id
    )
    expected = Counter(
        (o.body["id"] if o.action == "create" else o.item_id, EVENT_OF[o.action], o.actor_id)
        for o in acknowledged
    )
    assert present == expected, (present - expected, expected - present)
