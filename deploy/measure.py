"""The numbers in docs/SCALING.md: the scale-out topology started on this machine with the
test suite's helpers (tests/integration/org_stack.py), then measured from 16 client threads.

    export FLOWBOARD_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    PYTHONPATH=. .venv/bin/python deploy/measure.py one|two|bouncer

one: one process, direct; two: two processes behind nginx; bouncer: the same through
PgBouncer. Prints requests/s and latencies, memory, the live fan-out to 200 streams and row
sizes. Needs nginx, pgbouncer and openssl like the tests; numbers are as quiet as the machine.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.auth import passwords
from app.db.session import Database
from app.services.boards import StateSpec
from tests.factories import PASSWORD, seed_board
from tests.integration.conftest import CHEAP_HASHER
from tests.integration.helpers import add_members, create_backlog_items
from tests.integration.org_stack import (
    Stream,
    app_processes,
    fresh_postgres_database,
    nginx_in_front,
    pgbouncer,
)

THREADS = 16
VIEWERS = 200


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run(label: str, base: str, tokens: list[str], ids: list[int], verify: Any, kind: str) -> None:
    """16 threads for 15 s: each pulls its share of `ids` (kind "pull") or GETs /api/v1/me."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    stop = time.monotonic() + 15

    def work(n: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}
        with httpx.Client(base_url=base, verify=verify, timeout=30) as client:
            for item in ids[n::THREADS]:
                if time.monotonic() > stop:
                    return
                started = time.perf_counter()
                if kind == "pull":
                    answer = client.post(f"/api/v1/items/{item}/pull", headers=headers)
                else:
                    answer = client.get("/api/v1/me", headers=headers)
                with lock:
                    latencies.append(time.perf_counter() - started)
                    if answer.status_code != 200:
                        errors.append(answer.status_code)

    began = time.monotonic()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    print(
        f"{label}: {len(latencies) / elapsed:.0f}/s, p50 {pct(latencies, 50) * 1000:.0f} ms, "
        f"p99 {pct(latencies, 99) * 1000:.0f} ms, errors {len(errors)} {set(errors)}",
        flush=True,
    )


def tokens_for(base: str, emails: list[str], verify: Any) -> list[str]:
    with httpx.Client(base_url=base, verify=verify) as client:
        return [
            client.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            ).json()["access_token"]
            for email in emails
        ]


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


def fan_out(nginx: Any, board_id: int, tokens: list[str], items: list[int]) -> None:
    """VIEWERS streams through nginx; 20 pulls; time until every stream has each one."""
    clients = [nginx.client() for _ in range(20)]
    streams = [
        Stream(
            clients[n % 20],
            f"/api/v1/boards/{board_id}/stream",
            {"Authorization": f"Bearer {tokens[n % len(tokens)]}"},
        ).start()
        for n in range(VIEWERS)
    ]
    time.sleep(2)
    delays = []
    with nginx.client() as client:
        headers = {"Authorization": f"Bearer {tokens[0]}"}
        for item in items[-20:]:
            for stream in streams:
                stream.drain()
            started = time.perf_counter()
            client.post(f"/api/v1/items/{item}/pull", headers=headers)
            for stream in streams:
                assert stream.next_data(10) is not None
            delays.append(time.perf_counter() - started)
            time.sleep(0.1)
    print(
        f"a pull reaching all {VIEWERS} streams: p50 {pct(delays, 50) * 1000:.0f} ms, "
        f"p95 {pct(delays, 95) * 1000:.0f} ms"
    )
    for c in clients:
        c.close()


def main(mode: str) -> None:
    passwords._hasher = CHEAP_HASHER  # seeding only; the server verifies whatever it finds
    work = Path(tempfile.mkdtemp())
    with ExitStack() as stack:
        url = stack.enter_context(fresh_postgres_database("flowboard_measure"))
        database = Database(url)
        seed = seed_board(
            database,
            states=[
                StateSpec("Backlog", "backlog"),
                StateSpec("Build", "work", 10000),
                StateSpec("Done", "done"),
            ],
        )
        add_members(seed, count=THREADS, role="member", prefix="Bench")
        items = create_backlog_items(seed, 6000)
        emails = [f"bench{n}@example.org" for n in range(THREADS)]
        if mode == "one":
            [app] = stack.enter_context(app_processes(url, work, 1))
            base, verify = f"http://{app.address}", True
            pids = [app.process.pid]
        else:
            target, settings = url, {}
            if mode == "bouncer":
                bouncer = stack.enter_context(pgbouncer(url))
                target = bouncer.url(url)
                settings = {"db_transaction_pooling": "true", "listen_database_url": url}
            apps = stack.enter_context(app_processes(target, work, 2, **settings))
            nginx = stack.enter_context(nginx_in_front(apps, work))
            base, verify = nginx.base_url, nginx.ssl_context()
            pids = [a.process.pid for a in apps]
        tokens = tokens_for(base, emails, verify)
        run(f"GET /api/v1/me ({mode})", base, tokens, list(range(3000)), verify, "me")
        run(f"pulls into one state ({mode})", base, tokens, items[:-20], verify, "pull")
        print("RSS MB", [rss_mb(pid) for pid in pids])
        if mode != "one":
            fan_out(nginx, seed.board_id, tokens, items)
            print(f"RSS MB with {VIEWERS} streams", [rss_mb(pid) for pid in pids])
        dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(dsn) as conn:
            for table in ("event", "item"):
                row = conn.execute(
                    f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}"
                ).fetchone()
                assert row is not None
                print(f"{table}: {row[0]} rows, {row[1] / max(row[0], 1):.0f} bytes a row")
        database.dispose()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "two")
