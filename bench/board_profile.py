"""Where a board page's time goes: in-process timings and a profile (issue 8, targets 1-2).

    .venv/bin/python bench/board_profile.py                 # 1k / 5k / 25k boards + show all
    .venv/bin/python bench/board_profile.py --profile 1k    # plus cProfile of the 1k page
    .venv/bin/python bench/board_profile.py --sql           # plus each statement's time

No server and no network: the page is asked of the app through TestClient (routing, auth,
queries, template, gzip off), so the numbers are the app's own cost per page, without the
HTTP server and client that bench/run.py also measures. Data comes from bench/data.py into a
SQLite file under bench/data/ (removed afterwards). On a busy machine re-run it: medians of
--runs pages after a warm-up.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import data  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import event  # noqa: E402

from app.db.migrate import upgrade  # noqa: E402
from app.db.session import Database  # noqa: E402
from app.main import create_app  # noqa: E402

SPECS = {
    "1k": data.BoardSpec("B1K", 1_000),
    "5k": data.BoardSpec("B5K", 5_000),
    "25k": data.BoardSpec("B25K", 25_000),
    "col": data.BoardSpec("COL", 1_000, backlog_only=True),
}


def timed(client: TestClient, url: str, runs: int) -> tuple[float, float, int, int]:
    """(p50 ms, p90 ms, bytes, cards) of GET url."""
    client.get(url)
    times = []
    body = b""
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url, headers={"Accept-Encoding": "identity"})
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:300]
        body = response.content
    times.sort()
    return (
        statistics.median(times),
        times[int(len(times) * 0.9) - 1],
        len(body),
        body.count(b'<article class="card '),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--profile", choices=[*SPECS], default=None)
    parser.add_argument("--sql", action="store_true", help="time each statement of one page")
    args = parser.parse_args()

    url, cleanup = data.new_target("sqlite", None, "board-profile")
    os.environ["FLOWBOARD_DATABASE_URL"] = url
    try:
        upgrade(url)
        database = Database(url)
        started = time.perf_counter()
        infos = data.build(database, list(SPECS.values()))
        print(
            f"data: {sum(s.open_items for s in SPECS.values())} items in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        creds = data.credentials(database)
        boards = dict(zip(SPECS, infos, strict=True))
        app = create_app(database, listen=False)
        with TestClient(app) as client:
            client.cookies.set("flowboard_session", creds.cookie)
            print(f"{'page':<34} {'p50 ms':>8} {'p90 ms':>8} {'KB':>6} {'cards':>6} {'B/card':>7}")
            for name in ("1k", "5k", "25k"):
                p50, p90, size, cards = timed(client, f"/boards/{boards[name].id}", args.runs)
                print(
                    f"board, {name} open items{'':<16} {p50:8.1f} {p90:8.1f} "
                    f"{size / 1024:6.0f} {cards:6d} {size / max(cards, 1):7.0f}"
                )
            col = boards["col"]
            show_all = f"/boards/{col.id}/states/{col.states[0]}/cards?all=1"
            p50, p90, size, cards = timed(client, show_all, max(5, args.runs // 4))
            print(
                f"{'show all, 1,000-card column':<34} {p50:8.1f} {p90:8.1f} "
                f"{size / 1024:6.0f} {cards:6d} {size / max(cards, 1):7.0f}"
            )
            if args.sql:
                sql_times(database, client, f"/boards/{boards['1k'].id}")
            if args.profile:
                profile(database, boards[args.profile])
        database.dispose()
    finally:
        cleanup()


def profile(database: Database, board: data.BoardInfo) -> None:
    """cProfile of building and rendering the board 20 times in this thread (TestClient runs
    the app in another thread, where a profiler in this one sees nothing)."""
    from app.db import queries
    from app.db.board_queries import BoardFilters
    from app.db.models import Board, User
    from app.web.board_view import build_board
    from app.web.templating import env

    template = env.get_template("boards/_board.html")

    def page() -> int:
        with database.unit_of_work(write=False) as session:
            found = session.get(Board, board.id)
            user = session.get(User, 1)
            assert found is not None and user is not None
            view = build_board(
                session,
                board=found,
                role="member",
                user_id=user.id,
                filters=BoardFilters(),
                now=queries.now(),
            )
            return len(template.render(view=view, csrf_token="x", new_item_key="k"))

    page()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(20):
        page()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def sql_times(database: Database, client: TestClient, url: str) -> None:
    found: list[tuple[float, str]] = []

    def before(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
        context._bench_started = time.perf_counter()

    def after(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
        found.append((time.perf_counter() - context._bench_started, statement))

    event.listen(database.engine, "before_cursor_execute", before)
    event.listen(database.engine, "after_cursor_execute", after)
    client.get(url)
    found.clear()
    client.get(url)
    event.remove(database.engine, "before_cursor_execute", before)
    event.remove(database.engine, "after_cursor_execute", after)
    print(f"\n{len(found)} statements, {sum(t for t, _ in found) * 1000:.1f} ms in the database:")
    for seconds, statement in sorted(found, reverse=True):
        print(f"  {seconds * 1000:6.2f} ms  {' '.join(statement.split())[:150]}")


if __name__ == "__main__":
    main()
