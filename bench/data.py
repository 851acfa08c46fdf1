"""Bench data: boards with N items written straight into the tables (bulk inserts), not HTTP.

One user (id 1, a member of every board) acts; the callers get a browser session (cookie and
CSRF token) and an API token for it from `credentials`. Open items are spread over the states
so every column has cards; work states have no WIP limit unless asked, so pulls succeed unless
a bench means them to be refused.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from analytics import BLOCK_COLS, EVENT_COLS, ITEM_COLS, _bulk  # noqa: E402

from app.auth.tokens import new_secret, secret_hash  # noqa: E402
from app.db.session import Database  # noqa: E402
from app.services.board_templates import DEFAULT_BLOCK_REASONS  # noqa: E402

STATES = ("Backlog", "backlog"), ("Build", "work"), ("Review", "work"), ("Test", "work")
DONE = ("Done", "done")
# Where open items sit: Backlog, Build doing/ready, Review doing/ready, Test doing/ready.
SPREAD = (
    ("backlog", None, 0.4),
    *tuple((f"work{i}", stage, 0.1) for i in (1, 2, 3) for stage in ("doing", "ready")),
)


@dataclass
class BoardSpec:
    key: str
    open_items: int
    done_items: int = 0
    backlog_only: bool = False  # every open item waits in Backlog (the write benches pull them)
    wip_limit: int | None = None  # on Build (the intended-409 race)
    blocked_share: float = 0.05


@dataclass
class BoardInfo:
    id: int
    key: str
    states: list[int]  # Backlog, Build, Review, Test, Done
    reasons: list[int]
    items: dict[str, list[int]] = field(default_factory=dict)  # "backlog", "work1:doing", ...


@dataclass
class Credentials:
    cookie: str
    csrf: str
    token: str


def _sqlite_target(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def remove_sqlite(url: str) -> None:
    path = url.removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


def scratch_postgres(server_url: str) -> tuple[str, str]:
    """Creates a scratch database next to `server_url`; returns (its URL, its name)."""
    name = f"flowboard_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return url, name


def drop_postgres(server_url: str, name: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def new_target(kind: str, postgres: str | None, label: str) -> tuple[str, Any]:
    """(database URL, cleanup callable) for a fresh SQLite file or PostgreSQL database."""
    if kind == "sqlite":
        # The pid in the name: two runs at once (CI's two backends) never share a file.
        url = _sqlite_target(ROOT / "bench" / "data" / f"{label}-{os.getpid()}.sqlite3")
        return url, lambda: remove_sqlite(url)
    assert postgres is not None
    url, name = scratch_postgres(postgres)
    return url, lambda: drop_postgres(postgres, name)


def build(database: Database, specs: list[BoardSpec], seed: int = 11) -> list[BoardInfo]:
    """Writes the user, the boards and their items (one `created` event each, one `pulled`
    for items in work states). Returns what the benches need to address them."""
    import random

    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    is_sqlite = database.is_sqlite
    infos: list[BoardInfo] = []
    item_id = event_id = block_id = sid = rid = 0
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO user_account (id, email, name, password_hash, is_admin, is_active, "
                "created_at) VALUES (1, 'bench@example.org', 'Bench', 'x', false, true, :now)"
            ),
            {"now": now},
        )
        for b, spec in enumerate(specs, start=1):
            states, reasons = [], []
            for pos, (name, kind) in enumerate((*STATES, DONE)):
                sid += 1
                limit = spec.wip_limit if name == "Build" else None
                states.append((sid, b, name, kind, pos, limit, "member"))
            for name in DEFAULT_BLOCK_REASONS:
                rid += 1
                reasons.append((rid, b, name))
            total = spec.open_items + spec.done_items
            cols = "id, name, key, template, personal_wip_limit, expedite_exceeds_limits, "
            cols += "last_item_number, created_at"
            board = (b, f"Bench {spec.key}", spec.key, None, None, True, total, now)
            _bulk(conn, is_sqlite, "board", cols, [board])
            _bulk(
                conn,
                is_sqlite,
                "state",
                "id, board_id, name, kind, position, wip_limit, pull_role",
                states,
            )
            _bulk(conn, is_sqlite, "block_reason", "id, board_id, name", reasons)
            _bulk(conn, is_sqlite, "membership", "board_id, user_id, role", [(b, 1, "member")])
            info = BoardInfo(b, spec.key, [s[0] for s in states], [r[0] for r in reasons])
            infos.append(info)
            items, events, blocks = [], [], []
            for number in range(1, total + 1):
                item_id += 1
                created = now - timedelta(days=rng.uniform(1, 300))
                if number > spec.open_items:
                    place, state, stage, done_at = "done", info.states[4], None, now
                else:
                    done_at = None
                    if spec.backlog_only:
                        place, stage = "backlog", None
                    else:
                        r, acc = rng.random(), 0.0
                        for place, stage, share in SPREAD:  # noqa: B007 (used after the loop)
                            acc += share
                            if r < acc:
                                break
                    index = 0 if place == "backlog" else int(place[-1])
                    state = info.states[index]
                key = place + (f":{stage}" if stage else "")
                info.items.setdefault(key, []).append(item_id)
                entered = created + timedelta(days=1) if state != info.states[0] else created
                committed = entered if state != info.states[0] else None
                if done_at is not None:
                    # Delivered on entering Done, each at its own time (one shared time made
                    # the board's "newest delivered first" a sort over every tie).
                    done_at = entered
                # Expedite cards sit in their own lane; the single-column boards have none.
                cos = "expedite" if rng.random() < 0.02 and not spec.backlog_only else "standard"
                items.append(
                    (
                        *(item_id, b, number, f"{spec.key}-{number}", f"Bench item {number}"),
                        *("", cos, None, state, stage, 1 if committed else None, 1),
                        *(created, entered, committed, done_at, None, None, 1),
                    )
                )
                event_id += 1
                events.append(
                    (event_id, b, item_id, "created", 1, created, None, info.states[0], None, "{}")
                )
                if committed is not None:
                    event_id += 1
                    events.append(
                        (
                            *(event_id, b, item_id, "pulled", 1, entered, info.states[0]),
                            *(state, stage, json.dumps({"owner_id": 1})),
                        )
                    )
                if stage == "doing" and rng.random() < spec.blocked_share:
                    block_id += 1
                    blocks.append(
                        (
                            *(block_id, b, item_id, reasons[0][0], "", "Vendor", state),
                            *(entered, 1, None, None, ""),
                        )
                    )
                    info.items.setdefault("blocked", []).append(item_id)
                if len(events) > 100_000:
                    _flush(conn, is_sqlite, items, events, blocks)
            _flush(conn, is_sqlite, items, events, blocks)
        if not is_sqlite:
            for table in ("user_account", "board", "state", "block_reason", "item", "event"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 1) FROM {table}))"
                    )
                )
            if block_id:
                conn.execute(
                    text("SELECT setval(pg_get_serial_sequence('block', 'id'), :n)"),
                    {"n": block_id},
                )
    with database.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    return infos


def _flush(
    conn: Connection,
    is_sqlite: bool,
    items: list[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
    blocks: list[tuple[Any, ...]],
) -> None:
    _bulk(conn, is_sqlite, "item", ITEM_COLS, items)
    _bulk(conn, is_sqlite, "block", BLOCK_COLS, blocks)
    _bulk(conn, is_sqlite, "event", EVENT_COLS, events)
    items.clear()
    events.clear()
    blocks.clear()


def credentials(database: Database, user_id: int = 1) -> Credentials:
    """A browser session (cookie value and CSRF token) and an API token for the user."""
    from app.db.models import ApiToken, WebSession

    now = datetime.now(UTC)
    cookie, csrf, token = new_secret(), new_secret(), new_secret()
    with database.unit_of_work() as session:
        session.add(
            WebSession(
                token_hash=secret_hash(cookie),
                user_id=user_id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + timedelta(days=2),
                last_seen_at=now,
            )
        )
        session.add(ApiToken(user_id=user_id, token_hash=secret_hash(token), name="bench"))
    return Credentials(cookie, csrf, token)


def timed_build(database: Database, specs: list[BoardSpec]) -> tuple[list[BoardInfo], float]:
    started = time.perf_counter()
    infos = build(database, specs)
    return infos, time.perf_counter() - started
