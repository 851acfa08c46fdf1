"""What one pull costs inside the app, without HTTP or client threads competing for the cores.

    .venv/bin/python bench/pull_cost.py                 # SQLite
    .venv/bin/python bench/pull_cost.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres

Builds a database with bench/data.py (a 100-item board and a board with --big items, all but
5,000 of them done, as bench/run.py's "pull cost 100k / 100 items"), makes the app with
create_app() and sends POST /api/v1/items/{id}/pull with a bearer token straight to it as ASGI
calls, one at a time, in the order bench/run.py does. Prints, per board: the process CPU and
wall time per pull (median and mean), the statements per pull and the time spent in them, and
with --statements the slowest statements of the big board, with --calls the function calls
per pull (a measure of the work that a busy machine does not blur). Never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import data  # noqa: E402
from sqlalchemy import event  # noqa: E402

from app.db.migrate import upgrade  # noqa: E402
from app.db.session import Database  # noqa: E402
from app.main import create_app  # noqa: E402


@dataclass
class Costs:
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    sql: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    by_statement: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


class StatementClock:
    """Counts and times the statements the engine sends."""

    def __init__(self, database: Database) -> None:
        self.count = 0
        self.seconds = 0.0
        self.log: list[tuple[str, float]] = []
        engine = database.engine

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            conn.info["flowboard_bench_started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            spent = time.perf_counter() - conn.info.pop("flowboard_bench_started")
            self.count += 1
            self.seconds += spent
            self.log.append((statement, spent))


async def call(app: Any, path: str, token: str) -> tuple[int, bytes]:
    """One POST through the whole ASGI stack (middleware included), body `{}`."""
    body = b"{}"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"accept-encoding", b"gzip, deflate"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


class CallCounter:
    """Counts Python and C function calls in every thread: a proxy for CPU that a busy
    machine does not blur (the counting itself slows everything down several-fold)."""

    def __init__(self) -> None:
        self.calls = 0

    def start(self) -> None:
        def profile(_frame: Any, event: str, _arg: Any) -> None:
            if event in ("call", "c_call"):
                self.calls += 1

        # Before the app exists: the threadpool's threads are started later and inherit it.
        threading.setprofile(profile)
        sys.setprofile(profile)


CALLS = CallCounter()


async def pull_all(app: Any, clock: StatementClock, token: str, items: list[int]) -> Costs:
    costs = Costs()
    for item_id in items:
        count, seconds, logged, calls = clock.count, clock.seconds, len(clock.log), CALLS.calls
        cpu, wall = time.process_time(), time.perf_counter()
        status, body = await call(app, f"/api/v1/items/{item_id}/pull", token)
        costs.cpu.append(time.process_time() - cpu)
        costs.wall.append(time.perf_counter() - wall)
        costs.statements.append(clock.count - count)
        costs.sql.append(clock.seconds - seconds)
        costs.calls.append(CALLS.calls - calls)
        costs.statuses[status] += 1
        if status != 200:
            print(f"pull {item_id}: {status} {body[:200]!r}")
        for statement, spent in clock.log[logged:]:
            costs.by_statement[" ".join(statement.split())[:160]].append(spent)
    return costs


def show(label: str, costs: Costs) -> None:
    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:7.2f} {statistics.fmean(values) * 1000:7.2f}"

    calls = f"{statistics.median(costs.calls):>8.0f}" if any(costs.calls) else f"{'-':>8}"
    print(
        f"{label:<16} {len(costs.cpu):>6} {ms(costs.cpu)}  {ms(costs.wall)}  "
        f"{statistics.fmean(costs.statements):>6.1f}  {ms(costs.sql)}  {calls}  "
        f"{dict(costs.statuses)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--big", type=int, default=100_000, help="items of the big board")
    parser.add_argument("--pulls", type=int, default=98, help="pulls per board")
    parser.add_argument("--statements", action="store_true", help="the big board's statements")
    parser.add_argument(
        "--calls",
        action="store_true",
        help="count function calls per pull (deterministic; the times are then meaningless)",
    )
    args = parser.parse_args()
    kind = "postgres" if args.postgres else "sqlite"
    url, cleanup = data.new_target(kind, args.postgres, "pull-cost")
    try:
        upgrade(url)
        database = Database(url)
        specs = [
            data.BoardSpec("B100", 100, backlog_only=True),
            data.BoardSpec("BIG", 5_000, done_items=args.big - 5_000, backlog_only=True),
        ]
        small, big = data.build(database, specs)
        token = data.credentials(database).token
        if args.calls:
            CALLS.start()
        app = create_app(database, listen=False)
        clock = StatementClock(database)
        print(f"{kind}: {args.pulls} pulls per board, one at a time, in process")
        print(
            f"{'board':<16} {'pulls':>6} {'cpu ms p50/mean':>15}  {'wall ms p50/mean':>15}  "
            f"{'stmts':>6}  {'sql ms p50/mean':>15}  {'calls':>8}  statuses"
        )
        for label, board in (("100 items", small), (f"{args.big:,} items", big)):
            # bench/run.py pulls B100's items from the second on; warm the caches on the first.
            asyncio.run(pull_all(app, clock, token, board.items["backlog"][:1]))
            pulls = board.items["backlog"][1 : 1 + args.pulls]
            costs = asyncio.run(pull_all(app, clock, token, pulls))
            show(label, costs)
            if args.statements and board is big:
                slowest = sorted(
                    costs.by_statement.items(), key=lambda kv: -statistics.fmean(kv[1])
                )
                for statement, spent in slowest[:12]:
                    mean_ms = statistics.fmean(spent) * 1000
                    print(f"  {mean_ms:8.3f} ms x{len(spent):<4} {statement}")
        database.dispose()
    finally:
        cleanup()
    print(json.dumps({"done": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
