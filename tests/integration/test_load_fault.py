"""Load and faults (bounded: about 40 s): several workers pull, mark ready, block, resolve,
send back and create on a board with small WIP limits, against a real uvicorn server on a
private PostgreSQL cluster that is stopped, frozen and killed mid-load. Afterwards, from the
event log:

- WIP never exceeded any limit at any moment (events replayed in id order: an action that
  needed a freed slot read it after that commit, so its event id is higher);
- every acknowledged (2xx) write is present as its event;
- no half-applied action: every item row agrees with the replay of its events;
- no 5xx other than 503, no dropped connections;
- creates retried with their Idempotency-Key after a 503 or a timeout exist exactly once.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from app.db.migrate import upgrade
from app.db.models import Block, BlockReason, Event, Item, State, User
from app.db.session import Database, Timeouts
from app.main import create_app
from app.services.boards import StateSpec
from tests.factories import PASSWORD, seed_board
from tests.integration.helpers import add_members
from tests.integration.live_server import live_server
from tests.pgcluster import PgCluster, pg_cluster  # noqa: F401  (the fixture)

WORKERS = 4
LOAD_SECONDS = 30.0
BUILD_LIMIT = 2
REVIEW_LIMIT = 2
TIMEOUTS = Timeouts(connect_seconds=2, statement_ms=2000, lock_ms=1000, pool_seconds=3)
CLIENT_TIMEOUT_S = 30.0


@dataclass
class Outcome:
    action: str
    item_id: int | None
    actor_id: int
    status: int | None  # None: the request failed in transport
    body: Any = None
    error: str = ""


@dataclass
class Log:
    outcomes: list[Outcome] = field(default_factory=list)
    created_titles: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


@dataclass
class BoardIds:
    board: int
    backlog: int
    build: int
    review: int
    done: int
    reason: int


def request(
    log: Log,
    client: httpx.Client,
    action: str,
    item_id: int | None,
    actor_id: int,
    method: str,
    url: str,
    **kwargs: Any,
) -> Outcome:
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TransportError as error:
        outcome = Outcome(action, item_id, actor_id, None, error=f"{type(error).__name__}")
    else:
        body = response.json() if response.content else None
        outcome = Outcome(action, item_id, actor_id, response.status_code, body)
    log.add(outcome)
    return outcome


def create_once(
    log: Log, client: httpx.Client, ids: BoardIds, actor_id: int, stop_at: float
) -> None:
    """A create retried with its Idempotency-Key until it is answered (or time is up)."""
    title = f"Load {uuid.uuid4().hex[:10]}"
    key = str(uuid.uuid4())
    with log.lock:
        log.created_titles.append(title)
    while True:
        outcome = request(
            log,
            client,
            "create",
            None,
            actor_id,
            "POST",
            f"/api/v1/boards/{ids.board}/items",
            json={"title": title},
            headers={"Idempotency-Key": key},
        )
        if outcome.status is not None and outcome.status != 503:
            return
        if time.monotonic() > stop_at + 20:
            return
        time.sleep(0.2)


def worker(
    log: Log, base_url: str, email: str, actor_id: int, ids: BoardIds, seed: int, stop_at: float
) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT_S) as client:
        token = client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        while time.monotonic() < stop_at:
            listing = request(
                log,
                client,
                "list",
                None,
                actor_id,
                "GET",
                f"/api/v1/boards/{ids.board}/items",
                params={"limit": 1000},
            )
            if listing.status != 200:
                time.sleep(0.1)
                continue
            choices: list[tuple[str, dict[str, Any] | None]] = []
            backlog = 0
            for item in listing.body:
                state, stage = item["state_id"], item["stage"]
                if state == ids.backlog:
                    backlog += 1
                    choices.append(("pull", item))
                elif item["blocked"]:
                    choices.append(("resolve", item))
                elif stage == "doing" and item["owner_id"] == actor_id:
                    choices += [("ready", item), ("ready", item), ("block", item)]
                elif stage == "ready" and state == ids.build:
                    choices.append(("pull", item))
                if state == ids.review and not item["blocked"]:
                    choices.append(("send-back", item))
            if backlog < 4 or rng.random() < 0.1:
                choices.append(("create", None))
            action, item = rng.choice(choices)
            if action == "create" or item is None:
                create_once(log, client, ids, actor_id, stop_at)
                continue
            path, body = action_request(action, item, ids)
            request(log, client, action, item["id"], actor_id, "POST", path, json=body)


def action_request(
    action: str, item: dict[str, Any], ids: BoardIds
) -> tuple[str, dict[str, Any] | None]:
    """The API call for `action` on `item`: (path, JSON body)."""
    item_id = item["id"]
    if action == "block":
        return f"/api/v1/items/{item_id}/blocks", {"reason_id": ids.reason, "note": "load"}
    if action == "resolve":
        return f"/api/v1/blocks/{item['block']['id']}/resolve", None
    if action == "send-back":
        return f"/api/v1/items/{item_id}/send-back", {
            "to_state_id": ids.build,
            "reason": "Rework under load",
        }
    return f"/api/v1/items/{item_id}/{action}", None  # pull, ready


def faults(cluster: PgCluster, started: float, log: list[str]) -> None:
    """Stopped (fast), frozen, killed (immediate stop: crash recovery), each for a few seconds."""

    def at(offset: float) -> None:
        time.sleep(max(0.0, started + offset - time.monotonic()))

    steps: list[tuple[float, str, Callable[[], None]]] = [
        (5, "stop", cluster.stop),
        (8, "start", cluster.start),
        (13, "freeze", cluster.freeze),
        (16, "thaw", cluster.thaw),
        (20, "kill", lambda: cluster.stop("immediate")),
        (23, "start", cluster.start),
    ]
    for offset, name, step in steps:
        at(offset)
        step()
        log.append(name)


EVENT_OF = {
    "pull": "pulled",
    "ready": "marked_ready",
    "block": "blocked",
    "resolve": "unblocked",
    "send-back": "sent_back",
    "create": "created",
}


@dataclass
class Replayed:
    state_id: int
    stage: str | None = None
    discarded: bool = False
    blocked: bool = False


def replay(events: list[Event], limits: dict[int, int]) -> tuple[dict[int, Replayed], list[str]]:
    """Every item's state after its events, and every moment a WIP limit was exceeded."""
    items: dict[int, Replayed] = {}
    exceeded: list[str] = []
    for event in events:
        if event.item_id is None:
            continue
        if event.type == "created":
            assert event.to_state_id is not None
            items[event.item_id] = Replayed(event.to_state_id)
            continue
        item = items[event.item_id]
        if event.type in ("pulled", "completed", "sent_back"):
            assert event.to_state_id is not None
            item.state_id = event.to_state_id
            item.stage = {"completed": None, "sent_back": "doing"}.get(event.type, event.stage)
        elif event.type == "marked_ready":
            item.stage = "ready"
        elif event.type == "unready":
            item.stage = "doing"
        elif event.type == "discarded":
            item.discarded, item.stage = True, None
        elif event.type == "blocked":
            item.blocked = True
        elif event.type == "unblocked":
            item.blocked = False
        if event.to_state_id in limits:
            wip = sum(
                1
                for other in items.values()
                if other.state_id == event.to_state_id
                and other.stage is not None
                and not other.discarded
            )
            if wip > limits[event.to_state_id]:
                exceeded.append(f"event {event.id}: {wip} > {limits[event.to_state_id]}")
    return items, exceeded


def test_load_with_the_database_stopped_frozen_and_killed(pg_cluster: PgCluster) -> None:  # noqa: F811
    url = pg_cluster.create_database(f"flowboard_load_{uuid.uuid4().hex[:6]}")
    upgrade(url)
    database = Database(url, timeouts=TIMEOUTS)
    seed = seed_board(
        database,
        states=[
            StateSpec("Backlog", "backlog"),
            StateSpec("Build", "work", BUILD_LIMIT),
            StateSpec("Review", "work", REVIEW_LIMIT),
            StateSpec("Done", "done"),
        ],
    )
    worker_ids = add_members(seed, count=WORKERS, role="member", prefix="Worker")
    with database.unit_of_work(write=False) as session:
        emails = {
            user.id: user.email
            for user in session.scalars(select(User).where(User.id.in_(worker_ids)))
        }
        reason = session.scalars(
            select(BlockReason.id).where(BlockReason.board_id == seed.board_id)
        ).first()
    assert reason is not None
    ids = BoardIds(
        board=seed.board_id,
        backlog=seed.state_id("Backlog"),
        build=seed.state_id("Build"),
        review=seed.state_id("Review"),
        done=seed.state_id("Done"),
        reason=reason,
    )
    log = Log()
    fault_log: list[str] = []
    try:
        with live_server(create_app(database, listen=False)) as (host, port):
            base_url = f"http://{host}:{port}"
            started = time.monotonic()
            stop_at = started + LOAD_SECONDS
            threads = [
                threading.Thread(
                    target=worker,
                    args=(log, base_url, emails[uid], uid, ids, n, stop_at),
                    name=f"worker-{n}",
                )
                for n, uid in enumerate(worker_ids)
            ]
            chaos = threading.Thread(target=faults, args=(pg_cluster, started, fault_log))
            for thread in [*threads, chaos]:
                thread.start()
            chaos.join(LOAD_SECONDS + 30)
            for thread in threads:
                thread.join(LOAD_SECONDS + 60)
            assert not any(t.is_alive() for t in [*threads, chaos]), "a worker hung"
    finally:
        pg_cluster.thaw()
        if not pg_cluster.is_running():
            pg_cluster.start()

    assert fault_log == ["stop", "start", "freeze", "thaw", "kill", "start"]
    statuses = Counter(o.status for o in log.outcomes)
    writes = [o for o in log.outcomes if o.action != "list"]
    acknowledged = [o for o in writes if o.status is not None and 200 <= o.status < 300]
    # The load did work and met the faults.
    assert len(acknowledged) >= 20, statuses
    assert statuses[503] > 0, statuses
    # No 5xx but 503, no connection dropped or reset.
    assert [o for o in log.outcomes if o.status is None] == [], statuses
    assert {s for s in statuses if s is not None and s >= 500} <= {503}, statuses

    with database.unit_of_work(write=False) as session:
        events = list(
            session.scalars(select(Event).where(Event.board_id == ids.board).order_by(Event.id))
        )
        limits = {
            s.id: s.wip_limit
            for s in session.scalars(select(State).where(State.board_id == ids.board))
            if s.wip_limit is not None
        }
        rows = {i.id: i for i in session.scalars(select(Item).where(Item.board_id == ids.board))}
        open_blocks = set(session.scalars(select(Block.item_id).where(Block.resolved_at.is_(None))))
        titles = Counter(i.title for i in rows.values())
    database.dispose()

    # WIP never exceeded, at any moment, in any state.
    replayed, exceeded = replay(events, limits)
    assert exceeded == []

    # Every acknowledged write is present as its event (by item, type and actor).
    present = Counter((e.item_id, e.type, e.actor_id) for e in events)
    expected = Counter(
        (o.body["id"] if o.action == "create" else o.item_id, EVENT_OF[o.action], o.actor_id)
        for o in acknowledged
    )
    missing = {k: n for k, n in expected.items() if present[k] < n}
    assert missing == {}, [
        (o.action, o.item_id, o.status, o.body)
        for o in acknowledged
        if (o.item_id, EVENT_OF[o.action], o.actor_id) in missing
    ] + [
        (e.id, e.type, e.item_id, e.actor_id)
        for e in events
        if e.item_id in {k[0] for k in missing}
    ]

    # No half-applied action: each item row agrees with its events.
    assert set(replayed) == set(rows)
    disagreeing = [
        item_id
        for item_id, item in rows.items()
        if (item.state_id, item.stage, item.discarded_at is not None, item_id in open_blocks)
        != (
            replayed[item_id].state_id,
            replayed[item_id].stage,
            replayed[item_id].discarded,
            replayed[item_id].blocked,
        )
    ]
    assert disagreeing == []

    # Creates retried with their key after 503s exist once (or never, if never answered).
    assert [t for t in log.created_titles if titles[t] > 1] == []
    answered = {o.body["title"] for o in acknowledged if o.action == "create"}
    assert all(titles[t] == 1 for t in answered)
