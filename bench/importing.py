"""Benchmark: importing 20,000 items with history, and `flowboard demo`.

    .venv/bin/python bench/importing.py                           # SQLite only
    .venv/bin/python bench/importing.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres

Generates a deterministic import file (bench/data/import-<N>.json: items created over two
years that pass Build, Review and Test with doing and ready time, some sent back, some blocked,
some still open) and times the `flowboard import-history` path (import_file: read the JSON,
validate every item, write, commit as one transaction) onto a fresh board, on SQLite and, with
--postgres, on a scratch database created next to the given one and dropped afterwards. Then
times the demo (load_demo, six months, as `flowboard demo` runs it) on both.

Prints the times before (measured on this 2-core machine before the bulk import and the
batched demo, busy) and now, against issue 8's targets; exits 1 when a target is missed by more
than 20 %. Numbers on a busy machine are noisy: --runs N keeps the fastest of N imports, and
the load average is printed. On PostgreSQL the import line says whether the role could leave
out the events' foreign-key checks (a superuser, or GRANT SET ON PARAMETER
session_replication_role): without that the server does about twice the work.
Never part of the test suite (pytest collects tests/ only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.db.migrate import upgrade  # noqa: E402
from app.db.session import Database  # noqa: E402
from app.demo import load_demo  # noqa: E402
from app.services import boards, users  # noqa: E402
from app.services.board_templates import DEFAULT_BLOCK_REASONS  # noqa: E402
from app.services.importing import _Rows, import_file  # noqa: E402

DATA_DIR = ROOT / "bench" / "data"
# A fixed `now` keeps the generated file and the demo history the same run after run.
NOW = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
STATES = [("Backlog", "backlog", None), ("Build", "work", 8), ("Review", "work", 4)]
STATES += [("Test", "work", 5), ("Done", "done", None)]
CLASSES = ["standard"] * 8 + ["expedite", "fixed_date", "intangible"]

# Seconds measured before the change (2026-12-07 22:46 UTC, this 2-core machine, quiet for
# once: load 0.1; the same run under the team's load, 6-14, takes 2-5x longer), and issue 8's
# targets (its "today": import 6.7 / 16 s, demo on PostgreSQL about 100 s, on a busy machine).
BEFORE: dict[str, float | None] = {
    "import sqlite": 5.9,
    "import postgresql": 11.1,
    "demo sqlite": 7.9,
    "demo postgresql": 12.7,
}
TARGETS = {
    "import sqlite": 3.0,
    "import postgresql": 5.0,
    "demo sqlite": 12.0,  # must not get slower than today
    "demo postgresql": 20.0,
}


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def generate(count: int, seed: int = 8) -> dict[str, Any]:
    """`count` items with history, deterministic for the seed (about 10 events each)."""
    rng = random.Random(seed)
    reasons = list(DEFAULT_BLOCK_REASONS)
    out: list[dict[str, Any]] = []
    for n in range(count):
        created = NOW - timedelta(days=rng.uniform(1, 730), seconds=rng.randint(0, 3600))
        history: list[dict[str, Any]] = []
        blocks: list[dict[str, Any]] = []
        at = created + timedelta(days=rng.expovariate(1 / 6))
        path = ["Build", "Review"]
        if rng.random() < 0.15:  # sent back from Review once
            path += ["Build", "Review"]
        path += ["Test", "Done"]
        last_block_end = created
        for state in path:
            if at >= NOW or rng.random() < 0.01:
                break  # still here (or abandoned in the backlog / a state): open
            history.append({"at": iso(at), "state": state})
            if state == "Done":
                break
            doing_end = at + timedelta(days=rng.expovariate(1 / 1.5), minutes=1)
            if rng.random() < 0.15 and at > last_block_end:
                opened = at + (doing_end - at) * rng.random()
                resolved = opened + timedelta(days=rng.expovariate(1 / 1.0), minutes=1)
                if opened < NOW:
                    entry: dict[str, Any] = {
                        "reason": rng.choice(reasons),
                        "from": iso(opened),
                        "to": iso(resolved) if resolved < NOW else None,
                        "note": rng.choice(["", "Waiting for sign-off", "Asked Legal"]),
                        "waiting_on": rng.choice(["", "Vendor", "CFO"]),
                    }
                    blocks.append(entry)
                    if resolved >= NOW:
                        break  # blocked now: history stops here
                    last_block_end = resolved
                    doing_end = max(doing_end, resolved)
            if doing_end >= NOW:
                break
            history.append({"at": iso(doing_end), "state": state, "stage": "ready"})
            at = doing_end + timedelta(days=rng.expovariate(1 / 1.0), minutes=1)
        out.append(
            {
                "title": f"Imported item {n}",
                "created_at": iso(created),
                "class_of_service": rng.choice(CLASSES),
                "history": history,
                "blocks": blocks,
            }
        )
    return {"items": out}


@contextmanager
def scratch_url(server: str | None, label: str) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file under bench/data, or a PostgreSQL database
    created next to `server` and dropped afterwards."""
    if server is None:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path = DATA_DIR / f"{label}.sqlite3"
        paths = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        for p in paths:
            p.unlink(missing_ok=True)
        try:
            url = f"sqlite:///{path}"
            upgrade(url)
            yield url
        finally:
            for p in paths:
                p.unlink(missing_ok=True)
        return
    name = f"flowboard_bench_{label.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def event_checks(url: str) -> str:
    """Whether the import on this database leaves out the events' foreign-key checks."""
    database = Database(url)
    try:
        with database.unit_of_work(write=False) as session:
            skipped = _Rows(session).may_skip_checks
        return "event FK checks left out" if skipped else "event FKs checked"
    finally:
        database.dispose()


def time_import(url: str, path: Path) -> tuple[int, float, float]:
    """(items, seconds to read and validate, seconds in all) of import_file onto a new board."""
    database = Database(url)
    try:
        with database.unit_of_work() as session:
            admin = users.create_user(
                session=session,
                email="admin@bench.example",
                name="Admin",
                password="bench-password-1",
                is_admin=True,
            )
            specs = [boards.StateSpec(name, kind, limit) for name, kind, limit in STATES]
            boards.create_board(
                session=session, actor=admin, name="Import", key="IMP", states=specs
            )
        marks: list[float] = []

        def progress(done: int, total: int) -> None:
            if done == 0:
                marks.append(time.perf_counter())

        start = time.perf_counter()
        count, _ = import_file(database=database, path=path, board="IMP", progress=progress)
        seconds = time.perf_counter() - start
        return count, (marks[0] - start) if marks else 0.0, seconds
    finally:
        database.dispose()


def time_demo(url: str, months: int) -> tuple[float, dict[str, int]]:
    database = Database(url)
    try:
        start = time.perf_counter()
        result = load_demo(database, now=NOW, months=months)
        assert result is not None
        return time.perf_counter() - start, result.stats
    finally:
        database.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000, help="items in the import file")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server URL to use")
    parser.add_argument("--months", type=int, default=6, help="months of demo history")
    parser.add_argument("--runs", type=int, default=1, help="imports per database (fastest kept)")
    parser.add_argument("--no-import", action="store_true", help="skip the import timing")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo timing")
    args = parser.parse_args(argv)

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"import-{args.items}.json"
    payload = generate(args.items)
    path.write_text(json.dumps(payload), encoding="utf-8")
    events = sum(len(i["history"]) + 2 * len(i["blocks"]) for i in payload["items"])
    print(
        f"{path.relative_to(ROOT)}: {args.items:,} items, ~{events + 2 * args.items:,} events, "
        f"{sum(len(i['blocks']) for i in payload['items']):,} blocks, "
        f"{path.stat().st_size / 1e6:.1f} MB",
        flush=True,
    )
    load = os.getloadavg()
    servers: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.postgres:
        servers.append(("postgresql", args.postgres))
    results: dict[str, float] = {}
    jobs: list[tuple[str, Callable[[str], str]]] = []
    for backend, server in servers:
        if not args.no_import:

            def run_import(url: str, backend: str = backend, server: str | None = server) -> str:
                count, validated, seconds = time_import(url, path)
                for _ in range(args.runs - 1):
                    with scratch_url(server, "import-again") as again:
                        tried = time_import(again, path)
                    if tried[2] < seconds:
                        count, validated, seconds = tried
                results[f"import {backend}"] = seconds
                checks = f" ({event_checks(url)})" if server is not None else ""
                return (
                    f"{count:,} items: read + validate {validated:.2f} s, all {seconds:.2f} s"
                    f"{checks}"
                )

            jobs.append((f"import {backend}", run_import))
        if not args.no_demo:

            def run_demo(url: str, backend: str = backend) -> str:
                seconds, stats = time_demo(url, args.months)
                results[f"demo {backend}"] = seconds
                shown = ("calls", "created", "pulled", "completed", "blocked", "sent_back")
                return f"{seconds:.1f} s; " + ", ".join(f"{k} {stats.get(k, 0)}" for k in shown)

            jobs.append((f"demo {backend}", run_demo))
        for label, job in jobs:
            with scratch_url(server, label.replace(" ", "-")) as url:
                print(f"{label}: {job(url)}", flush=True)
        jobs.clear()

    print(
        f"\n{platform.node()} {platform.machine()} Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average before: {' '.join(f'{x:.1f}' for x in load)}"
    )
    print(f"{'measure':<20} {'before s':>9} {'now s':>7} {'target s':>9}  ok")
    failed = 0
    for label, seconds in results.items():
        before, target = BEFORE.get(label), TARGETS[label]
        ok = "yes" if seconds <= target else ("NO" if seconds > target * 1.2 else "near")
        failed += ok == "NO"
        before_text = f"{before:.1f}" if before is not None else "-"
        print(f"{label:<20} {before_text:>9} {seconds:>7.1f} {target:>9.1f}  {ok}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
