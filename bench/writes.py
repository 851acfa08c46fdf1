"""Benchmark: concurrent pulls through the real HTTP API (issue 8, target 5).

    .venv/bin/python bench/writes.py                    # SQLite, one process
    .venv/bin/python bench/writes.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres
                                                        # PostgreSQL, `serve --workers 2`

Builds a fresh database (a SQLite file under bench/data/, or a PostgreSQL database it creates
and drops), seeds one board and --clients members with bearer tokens, bulk-inserts --items
backlog items, starts `flowboard serve` in a subprocess and runs two scenarios, each with
--clients threads (httpx, one keep-alive connection each) that start together:

- open: Backlog -> Build (no WIP limit) -> Done. Each client pulls its own share of the
  backlog into Build: every answer should be 200.
- limited: Build has WIP limit --wip. Each client pulls the next backlog item; on 200 it marks
  it ready (which delivers it to Done and frees the slot), on 409 `wip-limit-reached` it tries
  again. Those 409s are intended; anything else is an error.

Prints pulls/s, p50/p95/p99 of the pulls, and the status counts. The target (quiet 2-core
machine): >= 500 pulls/s at 16 clients, p99 <= 150 ms, no errors but the intended 409s; the
exit status is non-zero when a target is missed by more than 20 % (--no-check: always 0).
The client threads share the machine with the server: on 2 cores they cost it a good part of
a core, so the numbers are a lower bound for the server alone. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.db import queries  # noqa: E402
from app.db.migrate import upgrade  # noqa: E402
from app.db.models import Board, Event, Item, User  # noqa: E402
from app.db.session import Database  # noqa: E402
from app.services import boards, users  # noqa: E402
from app.services.boards import StateSpec  # noqa: E402

DATA_DIR = ROOT / "bench" / "data"
TARGET_PULLS_PER_S = 500.0
TARGET_P99_MS = 150.0
SLACK = 1.2  # a target missed by more than 20 % fails the run
WIP_SLUG = "wip-limit-reached"


@dataclass
class Setup:
    url: str
    board_id: int
    tokens: list[str]
    item_ids: list[int]  # backlog, in creation order
    build_state_id: int


@dataclass
class Result:
    name: str
    clients: int
    seconds: float
    server_cpu_seconds: float = 0.0
    pulls: list[float] = field(default_factory=list)  # seconds per pull
    statuses: Counter[str] = field(default_factory=Counter)  # "pull 200", "ready 200", ...

    @property
    def rate(self) -> float:
        return len(self.pulls) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.pulls)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def errors(self) -> int:
        """Answers other than 200 and the intended `wip-limit-reached` 409s."""
        return sum(n for key, n in self.statuses.items() if key.split()[1] not in ("200", WIP_SLUG))


TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root` and every process under it (uvicorn's workers), from /proc."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == pid]
    return total


@dataclass
class Served:
    base: str
    pid: int

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fresh_database(postgres: str | None, keep: bool) -> Iterator[str]:
    if postgres is None:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path = DATA_DIR / f"writes-{uuid.uuid4().hex[:8]}.sqlite3"
        try:
            yield f"sqlite:///{path}"
        finally:
            if not keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"flowboard_bench_writes_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(url: str, *, clients: int, items: int, wip: int | None, key: str) -> Setup:
    """A board, `clients` members with write tokens and `items` backlog items (bulk insert)."""
    database = Database(url)
    try:
        with database.unit_of_work() as session:
            admin = session.query(User).filter_by(is_admin=True).one_or_none()
            if admin is None:
                admin = users.create_user(
                    session=session,
                    email="admin@bench.example",
                    name="Admin",
                    password=secrets.token_urlsafe(16),
                    is_admin=True,
                )
            board = boards.create_board(
                session=session,
                actor=admin,
                name=f"Bench {key}",
                key=key,
                template=None,
                states=[
                    StateSpec("Backlog", "backlog"),
                    StateSpec("Build", "work", wip),
                    StateSpec("Done", "done"),
                ],
                personal_wip_limit=None,
            )
            tokens = []
            for n in range(clients):
                email = f"puller{n}@bench.example"
                member = queries.user_by_email(session, email) or users.create_user(
                    session=session,
                    email=email,
                    name=f"Puller {n}",
                    password=secrets.token_urlsafe(16),
                )
                boards.set_member(
                    session=session,
                    board_id=board.id,
                    user_id=member.id,
                    role="member",
                    actor=admin,
                )
                tokens.append(users.issue_token(session=session, user=member))
            states = queries.states_of(session, board.id)
            backlog, build = states[0], states[1]
            at = queries.now() - timedelta(days=1)
            rows = [
                {
                    "board_id": board.id,
                    "number": n,
                    "key": f"{key}-{n}",
                    "title": f"Bench item {n}",
                    "description": "",
                    "class_of_service": "standard",
                    "state_id": backlog.id,
                    "stage": None,
                    "owner_id": None,
                    "created_by_id": admin.id,
                    "created_at": at,
                    "state_entered_at": at,
                    "version": 1,
                }
                for n in range(1, items + 1)
            ]
            item_ids = list(session.scalars(insert(Item).returning(Item.id), rows).all())
            session.execute(
                insert(Event),
                [
                    {
                        "board_id": board.id,
                        "item_id": item_id,
                        "type": "created",
                        "actor_id": admin.id,
                        "at": at,
                        "from_state_id": None,
                        "to_state_id": backlog.id,
                        "stage": None,
                        "data": {},
                    }
                    for item_id in item_ids
                ],
            )
            session.execute(
                update(Board).where(Board.id == board.id).values(last_item_number=items)
            )
            return Setup(url, board.id, tokens, sorted(item_ids), build.id)
    finally:
        database.dispose()


@contextmanager
def server(url: str, workers: int, log: Path, root: Path = ROOT) -> Iterator[Served]:
    """`flowboard serve` in a subprocess (its own process group)."""
    port = free_port()
    env = {
        **os.environ,
        "FLOWBOARD_DATABASE_URL": url,
        "FLOWBOARD_SECRET_KEY": secrets.token_urlsafe(32),
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server stopped (exit {process.returncode}); see {log}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not answer /healthz within 60 s; see {log}")
            time.sleep(0.2)
        yield Served(base, process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def profiled(served: Served, prefix: str | None, scenario: str) -> Iterator[None]:
    """py-spy records the server (and its workers) while the block runs; None: nothing."""
    if prefix is None:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    out = Path(f"{prefix}-{scenario}.txt")
    command = [str(spy), "record", "--gil", "--subprocesses", "--format", "raw", "-r", "100"]
    process = subprocess.Popen(
        [*command, "-o", str(out), "--pid", str(served.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # py-spy attaches before the clock starts
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        process.wait(30)
        print(f"py-spy: {out}")


def outcome(response: httpx.Response) -> str:
    if response.status_code == 409:
        slug = str(response.json().get("type", "")).rsplit("/", 1)[-1]
        return slug if slug == WIP_SLUG else f"409-{slug}"
    return str(response.status_code)


def run_open(served: Served, setup: Setup, pulls_per_client: int) -> Result:
    """Every client pulls its own items into the unlimited Build state."""
    clients = len(setup.tokens)
    shares = [
        setup.item_ids[n * pulls_per_client : (n + 1) * pulls_per_client] for n in range(clients)
    ]

    def work(client: httpx.Client, n: int, result: Result, lock: threading.Lock) -> None:
        timings, statuses = [], Counter[str]()
        for item_id in shares[n]:
            started = time.perf_counter()
            response = client.post(f"/api/v1/items/{item_id}/pull")
            timings.append(time.perf_counter() - started)
            statuses[f"pull {outcome(response)}"] += 1
        with lock:
            result.pulls.extend(timings)
            result.statuses.update(statuses)

    return drive("open (no WIP limit)", served, setup, work)


def run_limited(served: Served, setup: Setup, seconds: float) -> Result:
    """Pull the next backlog item; 200: mark it ready (delivered, slot freed); 409: retry."""
    next_item = iter(setup.item_ids)
    take = threading.Lock()

    def work(client: httpx.Client, _n: int, result: Result, lock: threading.Lock) -> None:
        timings, statuses = [], Counter[str]()
        deadline = time.monotonic() + seconds
        with take:
            item_id = next(next_item, None)
        while item_id is not None and time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.post(f"/api/v1/items/{item_id}/pull")
            timings.append(time.perf_counter() - started)
            status = outcome(response)
            statuses[f"pull {status}"] += 1
            if status == "200":
                statuses[f"ready {outcome(client.post(f'/api/v1/items/{item_id}/ready'))}"] += 1
                with take:
                    item_id = next(next_item, None)
        with lock:
            result.pulls.extend(timings)
            result.statuses.update(statuses)

    return drive("limited (WIP limit, 409s)", served, setup, work)


def drive(name: str, served: Served, setup: Setup, work: object) -> Result:
    clients = len(setup.tokens)
    result = Result(name, clients, 0.0)
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    http = [
        httpx.Client(
            base_url=served.base,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        for token in setup.tokens
    ]
    for client in http:  # open each keep-alive connection before the clock starts
        client.get("/api/v1/me")

    def thread(n: int) -> None:
        barrier.wait()
        work(http[n], n, result, lock)  # type: ignore[operator]

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    cpu = served.cpu_seconds()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    result.server_cpu_seconds = served.cpu_seconds() - cpu
    for client in http:
        client.close()
    return result


def report(results: list[Result], label: str) -> bool:
    print(f"\n{label}")
    print(
        f"{'scenario':<28}{'clients':>8}{'pulls':>8}{'pulls/s':>9}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'p99 ms':>8}{'cpu ms':>8}  statuses   (cpu ms: the server's CPU per request)"
    )
    ok = True
    for r in results:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))
        print(
            f"{r.name:<28}{r.clients:>8}{len(r.pulls):>8}{r.rate:>9.0f}{r.percentile_ms(0.5):>8.1f}"
            f"{r.percentile_ms(0.95):>8.1f}{r.percentile_ms(0.99):>8.1f}"
            f"{r.server_cpu_seconds * 1000 / max(1, r.requests):>8.2f}  {statuses}"
        )
        missed = []
        if r.rate * SLACK < TARGET_PULLS_PER_S:
            missed.append(f"{r.rate:.0f} pulls/s < {TARGET_PULLS_PER_S:.0f}")
        if r.percentile_ms(0.99) > TARGET_P99_MS * SLACK:
            missed.append(f"p99 {r.percentile_ms(0.99):.0f} ms > {TARGET_P99_MS:.0f}")
        if r.errors():
            missed.append(f"{r.errors()} unintended answers")
        if missed:
            ok = False
            print(f"  MISSED by more than 20 %: {'; '.join(missed)}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--workers", type=int, help="server processes (SQLite 1, PostgreSQL 2)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--items", type=int, default=5_000, help="backlog items per board")
    parser.add_argument("--pulls", type=int, default=200, help="pulls per client (open)")
    parser.add_argument("--seconds", type=float, default=10, help="length of the limited run")
    parser.add_argument("--wip", type=int, default=3, help="Build's WIP limit (limited)")
    parser.add_argument("--only", choices=["open", "limited"], help="run one scenario")
    parser.add_argument(
        "--server-root",
        type=Path,
        default=ROOT,
        help="serve from another checkout (e.g. `git archive HEAD` unpacked) to compare",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--py-spy",
        metavar="PREFIX",
        help="record the server with py-spy (GIL holder only) during each scenario, as "
        "PREFIX-<scenario>.txt in py-spy's raw (collapsed stack) format",
    )
    parser.add_argument("--no-check", action="store_true", help="exit 0 even if a target is missed")
    args = parser.parse_args()
    workers = args.workers or (2 if args.postgres else 1)
    items = max(args.items, args.clients * args.pulls)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    load = os.getloadavg()[0]
    label = (
        f"{backend}, serve --workers {workers}, {items:,} backlog items per board; "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} "
        f"cores, load average before the run {load:.2f}"
    )
    results = []
    with fresh_database(args.postgres, args.keep) as url:
        upgrade(url)
        setups = {}
        if args.only in (None, "open"):
            setups["open"] = seed(url, clients=args.clients, items=items, wip=None, key="OPEN")
        if args.only in (None, "limited"):
            setups["limited"] = seed(
                url, clients=args.clients, items=items, wip=args.wip, key="LIM"
            )
        log = DATA_DIR / "writes-server.log"
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        with server(url, workers, log, args.server_root) as served:
            if "open" in setups:
                with profiled(served, args.py_spy, "open"):
                    results.append(run_open(served, setups["open"], args.pulls))
            if "limited" in setups:
                with profiled(served, args.py_spy, "limited"):
                    results.append(run_limited(served, setups["limited"], args.seconds))
    ok = report(results, label)
    print(f"load average after the run {os.getloadavg()[0]:.2f}")
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
