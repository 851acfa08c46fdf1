"""Browser tests: real Chromium (Playwright, sync API) against a real uvicorn server.

Each test gets its own server on the test's `database` (so SQLite and, when configured,
PostgreSQL with LISTEN/NOTIFY), its seeded board and a fresh browser context; one Chromium
serves the whole package. Every test here is marked `browser` and kept on one xdist
worker (`xdist_group("browser")`), so the suite's `-n 2 --dist loadgroup` never runs two
Chromiums side by side.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from app.db.session import Database
from app.main import create_app
from tests.factories import PASSWORD, Seed, seed_board

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
HERE = Path(__file__).resolve().parent
# Playwright's default is 5 s; a loaded CI box with two workers needs a little more room for the
# first page of a test, but assertions that matter (live updates) pass their own timeout.
expect.set_options(timeout=10_000)


@pytest.hookimpl(tryfirst=True)  # before xdist reads xdist_group to build --dist loadgroup
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"))


# ---------------- Server ----------------


@dataclass
class LiveServer:
    base_url: str
    database: Database

    def url(self, path: str) -> str:
        return self.base_url + path


def _start_server(database: Database) -> tuple[uvicorn.Server, threading.Thread, str]:
    app = create_app(database, listen=True)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,  # the OS picks a free port: no race between choosing and binding it
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,  # open SSE streams must not hold the teardown
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-browser-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start for the browser tests")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(base_url + "/login", timeout=10) as response:  # it answers
        assert response.status == 200
    return server, thread, base_url


@pytest.fixture
def server(database: Database) -> Iterator[LiveServer]:
    """A real uvicorn on 127.0.0.1 serving create_app(database, listen=True)."""
    uv, thread, base_url = _start_server(database)
    try:
        yield LiveServer(base_url, database)
    finally:
        uv.should_exit = True
        thread.join(timeout=15)
        if thread.is_alive():
            uv.force_exit = True
            thread.join(timeout=5)


@pytest.fixture
def board(database: Database) -> Seed:
    """The default board: Backlog, Build (limit 3), Review (limit 2, reviewers pull), Done."""
    return seed_board(database)


# ---------------- Browser ----------------


# Package scope, not session: the sync API keeps an asyncio loop running in the main thread
# while Playwright is alive, and any later test on the same xdist worker that calls
# asyncio.run() would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        message = "Chromium not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must run the browser tests", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    chromium = playwright_instance.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield chromium
    finally:
        chromium.close()


@dataclass
class Browsing:
    """Opens fresh contexts on the test's server; all are closed before the server stops."""

    browser: Browser
    server: LiveServer
    contexts: list[BrowserContext] = field(default_factory=list)
    # Messages of every alert()/confirm() any page opened: a script the page did not mean to run.
    dialogs: list[str] = field(default_factory=list)

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def new_page(self) -> Page:
        context = self.browser.new_context(
            base_url=self.server.base_url, viewport={"width": 1400, "height": 900}
        )
        self.contexts.append(context)
        page = context.new_page()
        page.on("dialog", self._on_dialog)
        return page


@pytest.fixture
def browsing(browser: Browser, server: LiveServer) -> Iterator[Browsing]:
    opened = Browsing(browser, server)
    try:
        yield opened
    finally:
        # Close the pages first: their SSE streams would otherwise hold the server's shutdown.
        for context in opened.contexts:
            context.close()


@pytest.fixture
def page(browsing: Browsing) -> Page:
    return browsing.new_page()


def sign_in(page: Page, email: str, *, next_path: str = "/me", password: str = PASSWORD) -> None:
    """Signs in through the real /login form and waits for the page it redirects to."""
    page.goto(f"/login?next={next_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{next_path}")


@pytest.fixture
def signed_in(browsing: Browsing, board: Seed) -> Callable[[str], Page]:
    """signed_in("member") -> a page on the board, signed in as that seeded user, live."""

    def open_board(role: str) -> Page:
        page = browsing.new_page()
        sign_in(page, board.user(role).email, next_path=f"/boards/{board.board_id}")
        expect(page.get_by_role("region", name="Backlog", exact=True)).to_be_visible()
        return page

    return open_board
