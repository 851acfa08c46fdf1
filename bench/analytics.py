"""Benchmark: flow analytics on 100,000 items and ~1,000,000 events.

    .venv/bin/python bench/analytics.py                      # SQLite, bench/data/
    .venv/bin/python bench/analytics.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres

Generates 200 boards (one measured board with a quarter of the items, two years of
simulated history) straight into the tables with bulk inserts (executemany on SQLite,
COPY on PostgreSQL), then times every analytics endpoint through the real app (TestClient:
auth, service, SQL, JSON) on the measured board: median of --runs runs, against the
targets (every endpoint <= 500 ms, snapshot <= 300 ms). Also times import_history on a
fresh board (--import-items). Generated data lives under bench/data/ (gitignored) or in a
PostgreSQL database it creates and drops; --keep leaves either behind. Never part of the
test suite (pytest collects tests/ only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Connection, make_url  # noqa: E402

from app.db.migrate import upgrade  # noqa: E402
from app.db.models import User  # noqa: E402
from app.db.session import Database  # noqa: E402
from app.main import create_app  # noqa: E402
from app.services import users  # noqa: E402
from app.services.board_templates import DEFAULT_BLOCK_REASONS  # noqa: E402
from app.services.importing import import_history  # noqa: E402

DATA_DIR = ROOT / "bench" / "data"
BOARDS = 200
MEASURED_SHARE = 0.25
HISTORY_DAYS = 730
TARGET_MS = 500.0
SNAPSHOT_TARGET_MS = 300.0
STATES = [  # name, kind, limit
    ("Backlog", "backlog", None),
    ("Build", "work", 8),
    ("Review", "work", 4),
    ("Test", "work", 5),
    ("Done", "done", None),
]
CLASSES = ["standard"] * 8 + ["expedite", "fixed_date"]


@dataclass
class Rows:
    items: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    blocks: list[tuple[Any, ...]] = field(default_factory=list)


ITEM_COLS = (
    "id, board_id, number, key, title, description, class_of_service, due_date, state_id, "
    "stage, owner_id, created_by_id, created_at, state_entered_at, committed_at, done_at, "
    "discarded_at, discard_reason, version"
)
EVENT_COLS = "id, board_id, item_id, type, actor_id, at, from_state_id, to_state_id, stage, data"
BLOCK_COLS = (
    "id, board_id, item_id, reason_id, note, waiting_on, state_id, opened_at, opened_by_id, "
    "resolved_at, resolved_by_id, resolution"
)


class Generator:
    """Simulated flow: options wait, get committed, pass Build / Review / Test with doing and
    ready time, are sometimes blocked or sent back from Review, and are done (or still open
    at now). Deterministic for a seed."""

    def __init__(self, now: datetime, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.rows = Rows()
        self.item_id = self.event_id = self.block_id = 0

    def _days(self, mean: float) -> timedelta:
        return timedelta(days=self.rng.expovariate(1 / mean))

    def board(
        self,
        board_id: int,
        key: str,
        states: list[int],
        reasons: list[int],
        actor: int,
        count: int,
    ) -> None:
        rng, now = self.rng, self.now
        backlog, build, review, test, done = states
        work = [build, review, test]
        for number in range(1, count + 1):
            self.item_id += 1
            item_id = self.item_id
            created = now - timedelta(days=rng.uniform(1, HISTORY_DAYS))
            events: list[tuple[Any, ...]] = []

            def ev(
                type_: str,
                at: datetime,
                frm: int | None,
                to: int | None,
                stage: str | None,
                data: dict[str, Any] | None = None,
                item_id: int = item_id,
                events: list[tuple[Any, ...]] = events,
            ) -> None:
                self.event_id += 1
                events.append(
                    (
                        self.event_id,
                        board_id,
                        item_id,
                        type_,
                        actor,
                        at,
                        frm,
                        to,
                        stage,
                        json.dumps(data or {}),
                    )
                )

            ev("created", created, None, backlog, None, {"title": f"Item {number}"})
            state, stage, at = backlog, None, created
            committed = done_at = discarded = None
            entered = created
            commit_at = created + self._days(6)
            if rng.random() < 0.05 and commit_at < now:
                discarded = commit_at
                ev("discarded", discarded, backlog, None, None, {"reason": "Not needed"})
            elif commit_at < now:
                at = commit_at
                queue = list(work)
                reworked = False
                while queue and at < now:
                    target = queue.pop(0)
                    ev("pulled", at, state, target, "doing", {"owner_id": actor})
                    if committed is None:
                        committed = at
                    state, stage, entered = target, "doing", at
                    if rng.random() < 0.3:
                        ev("criterion_met", at + timedelta(hours=2), None, None, None, {"n": 1})
                    doing_end = at + self._days(1.5)
                    if rng.random() < 0.2:  # a block inside the doing time
                        opened = at + (doing_end - at) * rng.random()
                        resolved = opened + self._days(1.0)
                        self.block_id += 1
                        open_block = resolved >= now
                        self.rows.blocks.append(
                            (
                                self.block_id,
                                board_id,
                                item_id,
                                rng.choice(reasons),
                                rng.choice(["", "Waiting for sign-off", "=cmd"]),
                                "Vendor",
                                target,
                                opened,
                                actor,
                                None if open_block else resolved,
                                None if open_block else actor,
                                "",
                            )
                        )
                        if opened < now:
                            ev(
                                "blocked",
                                opened,
                                target,
                                target,
                                "doing",
                                {"block_id": self.block_id},
                            )
                        if open_block:
                            break
                        ev(
                            "unblocked",
                            resolved,
                            target,
                            target,
                            "doing",
                            {"block_id": self.block_id},
                        )
                        doing_end = max(doing_end, resolved)
                    if doing_end >= now:
                        break
                    at = doing_end
                    if target == review and not reworked and rng.random() < 0.12:
                        reworked = True
                        ev("sent_back", at, review, build, "doing", {"reason": "Rework"})
                        state, stage, entered = build, "doing", at
                        queue = [review, test]
                        at += self._days(0.8)
                        if at >= now:
                            break
                    ev("marked_ready", at, state, state, "ready")
                    stage = "ready"
                    if not queue:
                        ev("completed", at, state, done, None)
                        state, stage, done_at, entered = done, None, at, at
                        break
                    at += self._days(1.0)
            self.rows.items.append(
                (
                    item_id,
                    board_id,
                    number,
                    f"{key}-{number}",
                    f"Item {number}",
                    "",
                    rng.choice(CLASSES),
                    None,
                    state,
                    stage,
                    None,
                    actor,
                    created,
                    entered,
                    committed,
                    done_at,
                    discarded,
                    "Not needed" if discarded else None,
                    1,
                )
            )
            self.rows.events.extend(e for e in events if e[5] <= now)


def _sqlite_time(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DateTime storage format, naive UTC (what UTCDateTime writes).
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _bulk(
    conn: Connection, is_sqlite: bool, table: str, cols: str, rows: list[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    if is_sqlite:
        converted = [
            tuple(_sqlite_time(v) if isinstance(v, datetime) else v for v in row) for row in rows
        ]
        marks = ", ".join("?" for _ in cols.split(","))
        conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", converted)
        return
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


def generate(database: Database, items: int, now: datetime) -> dict[str, Any]:
    is_sqlite = database.is_sqlite
    gen = Generator(now)
    measured_items = int(items * MEASURED_SHARE)
    others = items - measured_items
    started = time.perf_counter()
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO user_account (id, email, name, password_hash, is_admin, is_active, "
                "created_at) VALUES (1, 'bench-actor@example.org', 'Bench', 'x', false, true, :now)"
            ),
            {"now": now},
        )
        boards, states, reasons, members = [], [], [], []
        state_ids: dict[int, list[int]] = {}
        reason_ids: dict[int, list[int]] = {}
        sid = rid = 0
        for b in range(1, BOARDS + 1):
            key = "M" + "".join(chr(65 + (b // 26**i) % 26) for i in range(3))
            boards.append((b, f"Bench board {b}", key, None, None, True, 0, now - timedelta(900)))
            state_ids[b] = []
            for pos, (name, kind, limit) in enumerate(STATES):
                sid += 1
                state_ids[b].append(sid)
                states.append((sid, b, name, kind, pos, limit, "member"))
            reason_ids[b] = []
            for name in DEFAULT_BLOCK_REASONS:
                rid += 1
                reason_ids[b].append(rid)
                reasons.append((rid, b, name))
            members.append((b, 1, "viewer"))
        cols = "id, name, key, template, personal_wip_limit, expedite_exceeds_limits, "
        cols += "last_item_number, created_at"
        _bulk(conn, is_sqlite, "board", cols, boards)
        _bulk(
            conn,
            is_sqlite,
            "state",
            "id, board_id, name, kind, position, wip_limit, pull_role",
            states,
        )
        _bulk(conn, is_sqlite, "block_reason", "id, board_id, name", reasons)
        _bulk(conn, is_sqlite, "membership", "board_id, user_id, role", members)
        sizes = [measured_items] + [
            others // (BOARDS - 1) + (1 if i < others % (BOARDS - 1) else 0)
            for i in range(BOARDS - 1)
        ]
        totals: dict[str, Any] = {"items": 0, "events": 0, "blocks": 0}
        for b, size in enumerate(sizes, start=1):
            key = boards[b - 1][2]
            gen.board(b, key, state_ids[b], reason_ids[b], 1, size)
            conn.execute(
                text("UPDATE board SET last_item_number = :n WHERE id = :b"), {"n": size, "b": b}
            )
            if len(gen.rows.events) > 200_000 or b == BOARDS:
                _bulk(conn, is_sqlite, "item", ITEM_COLS, gen.rows.items)
                _bulk(conn, is_sqlite, "block", BLOCK_COLS, gen.rows.blocks)
                _bulk(conn, is_sqlite, "event", EVENT_COLS, gen.rows.events)
                totals["items"] += len(gen.rows.items)
                totals["events"] += len(gen.rows.events)
                totals["blocks"] += len(gen.rows.blocks)
                gen.rows = Rows()
        if not is_sqlite:
            for table in (
                "user_account",
                "board",
                "state",
                "block_reason",
                "item",
                "block",
                "event",
            ):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    with database.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    totals["seconds"] = round(time.perf_counter() - started, 1)
    totals["measured_items"] = measured_items
    return totals


def _median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms of this process) over `runs` calls after one warm-up.

    CPU time counts the app and, on SQLite, the database work (in-process), so it stays
    meaningful on a shared, busy machine where wall time includes waiting for a core.
    """
    fn()  # warm caches and the connection pool
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def measure(
    database: Database, runs: int, now: datetime, window_days: int = 3 * 365
) -> list[tuple[str, float, float, float | None]]:
    with database.unit_of_work() as session:
        actor = session.get(User, 1)
        assert actor is not None
        token = users.issue_token(session=session, user=actor)
    app = create_app(database, listen=False)
    headers = {"Authorization": f"Bearer {token}"}
    snap_at = (now - timedelta(days=45)).isoformat()
    until = (now + timedelta(days=30)).date().isoformat()
    whole = {"from": (now - timedelta(days=window_days)).isoformat(), "to": now.isoformat()}
    cases: list[tuple[str, str, dict[str, Any], float | None]] = [
        ("flow", "flow", {}, TARGET_MS),
        ("flow class_of_service", "flow", {"class_of_service": "expedite"}, TARGET_MS),
        ("cycle-times", "metrics/cycle-times", {}, TARGET_MS),
        ("throughput week", "metrics/throughput", {"interval": "week"}, TARGET_MS),
        ("cfd", "metrics/cfd", {}, TARGET_MS),
        ("aging", "metrics/aging", {}, TARGET_MS),
        ("waiting-reasons", "metrics/waiting-reasons", {}, TARGET_MS),
        ("forecast items=50", "forecast", {"items": 50}, TARGET_MS),
        ("forecast until +30d", "forecast", {"until": until}, TARGET_MS),
        ("snapshot (45 days ago)", "snapshot", {"at": snap_at}, SNAPSHOT_TARGET_MS),
        ("delays.csv all", "delays.csv", {"status": "all"}, TARGET_MS),
        (f"flow, {window_days}-day window", "flow", whole, TARGET_MS),
        (f"cfd, {window_days}-day window", "metrics/cfd", whole, TARGET_MS),
    ]
    results = []
    with TestClient(app) as client:
        # The first long cfd fills the closed-day cache (app/services/rollups.py): what the
        # first viewer after an import or a restore waits; every later one gets the warm time.
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.get("/api/v1/boards/1/metrics/cfd", params=whole, headers=headers)
        assert response.status_code == 200, response.text
        cold = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
        results.append((f"cfd, {window_days}-day, cold cache (info)", *cold, None))
        # The same for the flow rollups (the Bottlenecks figures of each closed day).
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.get("/api/v1/boards/1/flow", params=whole, headers=headers)
        assert response.status_code == 200, response.text
        cold = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
        results.append((f"flow, {window_days}-day, cold cache (info)", *cold, None))
        for label, path, params, target in cases:
            url = f"/api/v1/boards/1/{path}"

            def call(url: str = url, params: dict[str, Any] = params) -> None:
                response = client.get(url, params=params, headers=headers)
                assert response.status_code == 200, response.text

            results.append((label, *_median_ms(call, runs), target))
    return results


def measure_import(database: Database, count: int, now: datetime) -> tuple[int, float]:
    """import_history of `count` items (about 8 events each) onto a new board, one transaction."""
    rng = random.Random(3)
    items = []
    for i in range(count):
        created = now - timedelta(days=rng.uniform(20, 400))
        at = created + timedelta(days=rng.uniform(0, 5))
        history = []
        for state in ("Build", "Review", "Test"):
            history.append({"at": at.isoformat(), "state": state})
            at += timedelta(days=rng.uniform(0.1, 2))
            history.append({"at": at.isoformat(), "state": state, "stage": "ready"})
            at += timedelta(days=rng.uniform(0.1, 1))
        history.append({"at": at.isoformat(), "state": "Done"})
        items.append(
            {
                "title": f"Imported {i}",
                "created_at": created.isoformat(),
                "history": history,
                "blocks": [],
            }
        )
    with database.unit_of_work() as session:
        board_id = session.execute(
            text(
                "INSERT INTO board (name, key, expedite_exceeds_limits, last_item_number, "
                "created_at) VALUES ('Import bench', 'IMPORTB', true, 0, :now) RETURNING id"
            ),
            {"now": now},
        ).scalar_one()
        for pos, (name, kind, limit) in enumerate(STATES):
            session.execute(
                text(
                    "INSERT INTO state (board_id, name, kind, position, wip_limit, pull_role) "
                    "VALUES (:b, :n, :k, :p, :l, 'member')"
                ),
                {"b": board_id, "n": name, "k": kind, "p": pos, "l": limit},
            )
        session.execute(
            text("INSERT INTO membership (board_id, user_id, role) VALUES (:b, 1, 'manager')"),
            {"b": board_id},
        )
    start = time.perf_counter()
    with database.unit_of_work() as session:
        actor = session.get(User, 1)
        assert actor is not None
        n = import_history(
            session=session, board_id=board_id, actor=actor, payload={"items": items}
        )
    return n, time.perf_counter() - start


@dataclass
class Target:
    url: str
    cleanup: Callable[[], None]


def _sqlite_target(keep: bool) -> Target:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / "analytics.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)

    def cleanup() -> None:
        if not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)

    return Target(f"sqlite:///{path}", cleanup)


def _postgres_target(server_url: str, keep: bool) -> Target:
    name = f"flowboard_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def cleanup() -> None:
        if keep:
            print(f"kept database {name}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return Target(url, cleanup)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per endpoint (median)")
    parser.add_argument("--items", type=int, default=100_000, help="items over all boards")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server URL to use")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument(
        "--window-days",
        type=int,
        default=3 * 365,
        help="days of the long flow / cfd window (at most 1096; the data spans 730 days)",
    )
    parser.add_argument(
        "--import-items",
        type=int,
        default=20_000,
        help="items for the import_history timing (0: skip)",
    )
    args = parser.parse_args(argv)
    target = (
        _postgres_target(args.postgres, args.keep) if args.postgres else _sqlite_target(args.keep)
    )
    now = datetime.now(UTC).replace(microsecond=0)
    database: Database | None = None
    try:
        upgrade(target.url)
        database = Database(target.url)
        backend = "sqlite" if database.is_sqlite else "postgresql"
        print(f"{backend}: generating {args.items:,} items over {BOARDS} boards ...", flush=True)
        totals = generate(database, args.items, now)
        print(
            f"generated {totals['items']:,} items, {totals['events']:,} events, "
            f"{totals['blocks']:,} blocks in {totals['seconds']} s; measured board: "
            f"{totals['measured_items']:,} items",
            flush=True,
        )
        load = os.getloadavg()
        results = measure(database, args.runs, now, args.window_days)
        print(
            f"\n{platform.node()} {platform.machine()} Python {platform.python_version()} "
            f"{backend}, median of {args.runs} runs, default window = last 90 days"
        )
        print(
            f"load average before measuring: {' '.join(f'{x:.1f}' for x in load)} "
            f"({os.cpu_count()} CPUs)"
        )
        print(f"{'endpoint':<30} {'wall ms':>9} {'cpu ms':>8} {'target':>7}  ok")
        failed = 0
        for label, wall, cpu, goal in results:
            ok = "-" if goal is None else ("yes" if wall <= goal else "NO")
            failed += ok == "NO"
            goal_text = f"{goal:.0f}" if goal is not None else ""
            print(f"{label:<30} {wall:>9.1f} {cpu:>8.1f} {goal_text:>7}  {ok}")
        if args.import_items:
            n, seconds = measure_import(database, args.import_items, now)
            print(
                f"\nimport_history: {n:,} items (~9 events each) in {seconds:.1f} s "
                f"({n / seconds:,.0f} items/s)"
            )
        return 1 if failed else 0
    finally:
        if database is not None:
            database.dispose()
        target.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
