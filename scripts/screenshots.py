"""README screenshots from the demo data: `make screenshots` (needs Chromium at /usr/bin/chromium).

Builds a fresh SQLite database in a temporary directory, migrates it, loads the demo, serves
the app with uvicorn on a free port and saves 1280x900 PNGs of the board, an item, My work and
(when the page exists) Bottlenecks to docs/screenshots/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import Page, ViewportSize, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from app.db.migrate import upgrade  # noqa: E402
from app.db.session import Database  # noqa: E402
from app.demo import DOMAIN, load_demo  # noqa: E402
from app.main import create_app  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUT = ROOT / "docs" / "screenshots"
BOARD_NAME = "Document reviews"
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def serve(database: Database) -> tuple[uvicorn.Server, threading.Thread, str]:
    config = uvicorn.Config(
        create_app(database, listen=False),
        host="127.0.0.1",
        port=0,  # a free port, chosen by the OS when binding
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def shoot(page: Page, name: str) -> Path:
    # Hide the caret and settle animations so the pictures are the same run to run.
    path = OUT / name
    page.screenshot(path=str(path), full_page=False, animations="disabled", caret="hide")
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.0f} KB")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--months", type=int, default=6, help="months of demo history")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit("Chromium not installed (apt-get install chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flowboard-shots-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.sqlite3'}"
        upgrade(url)
        database = Database(url)
        started = time.perf_counter()
        demo = load_demo(database, months=args.months)
        assert demo is not None, "the fresh database was not empty"
        print(f"demo loaded in {time.perf_counter() - started:.1f} s")
        board_id = next((i for i, n in demo.boards if n == BOARD_NAME), demo.boards[0][0])
        server, thread, base = serve(database)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                context = browser.new_context(
                    base_url=base, viewport=VIEWPORT, device_scale_factor=1
                )
                page = context.new_page()
                page.goto(f"/login?next=/boards/{board_id}")
                page.get_by_label("Email").fill(f"mia@{DOMAIN}")
                page.get_by_label("Password").fill(demo.password)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"**/boards/{board_id}")
                page.locator("#live-status", has_text="Live").wait_for()
                shoot(page, "board.png")

                # An item with some history: a blocked one in a work state if there is one.
                work = page.locator("section.state.work article.card")
                blocked = work.and_(page.locator(".blocked")).locator("a.title")
                link = (blocked if blocked.count() else work.locator("a.title")).first
                href = link.get_attribute("href")
                assert href, "no item in a work state on the demo board"
                page.goto(href)
                page.locator(".item-title").wait_for()
                shoot(page, "item.png")

                page.goto("/me")
                page.get_by_role("heading", level=1).first.wait_for()
                shoot(page, "my-work.png")

                response = page.goto(f"/boards/{board_id}/flow")
                if response is not None and response.ok:
                    page.get_by_role("heading", level=1).first.wait_for()
                    shoot(page, "bottlenecks.png")
                else:
                    status = response.status if response else "no response"
                    print(f"bottlenecks.png skipped: /boards/{board_id}/flow answered {status}")
                context.close()
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            database.dispose()


if __name__ == "__main__":
    main()
