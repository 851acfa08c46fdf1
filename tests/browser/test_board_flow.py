"""The board in real Chromium: sign in, pull, refusals, blocks, ready, review, drag and drop,
live updates, escaping and keyboard use. State changes are checked through the page after
htmx swapped #board (and, where it matters, in the database)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Browsing, LiveServer, sign_in
from tests.factories import PASSWORD, Seed
from tests.web.helpers import add_item, item_state, key

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

OpenBoard = Callable[[str], Page]
WIP_SENTENCE = "Build is at its WIP limit (3/3)"


def region(page: Page, name: str) -> Locator:
    return page.get_by_role("region", name=name, exact=True)


def doing(page: Page, state: str) -> Locator:
    return region(page, state).locator(".half.doing")


def ready_half(page: Page, state: str) -> Locator:
    return region(page, state).locator(".half.ready")


def card(scope: Page | Locator, item_id: int) -> Locator:
    return scope.locator(f'article.card[data-item-id="{item_id}"]')


def mark_page(page: Page) -> None:
    """A marker only a full page load would lose."""
    page.evaluate("window.__flowboardMarker = 'still here'")


def assert_no_reload(page: Page) -> None:
    assert page.evaluate("window.__flowboardMarker") == "still here"


def test_sign_in_through_the_form(page: Page, board: Seed) -> None:
    sign_in(page, board.user("member").email, next_path=f"/boards/{board.board_id}")
    expect(page.locator(".me .who")).to_have_text("Sam")
    expect(region(page, "Build")).to_be_visible()


def test_wrong_password_is_refused_with_an_alert(page: Page, board: Seed) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(board.user("member").email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()  # still the form: not signed in
    expect(page.locator(".me .who")).to_have_count(0)


def test_pull_moves_the_card_into_doing_without_a_reload(signed_in: OpenBoard, board: Seed) -> None:
    item_id = add_item(board, "Write the brief")
    page = signed_in("member")
    backlog_card = card(region(page, "Backlog"), item_id)
    expect(backlog_card).to_be_visible()
    mark_page(page)

    backlog_card.get_by_role("button", name="Pull").click()

    expect(card(doing(page, "Build"), item_id)).to_be_visible()
    expect(card(region(page, "Backlog"), item_id)).to_have_count(0)
    assert_no_reload(page)
    state_id, stage, _ = item_state(board, item_id)
    assert (state_id, stage) == (board.state_id("Build"), "doing")


def test_a_refused_pull_explains_itself_next_to_the_card(signed_in: OpenBoard, board: Seed) -> None:
    full = [add_item(board, f"Busy {n}", into="Build") for n in range(3)]
    waiting = add_item(board, "One too many")
    page = signed_in("member")
    expect(region(page, "Build").locator(".wip")).to_have_text("3/3 at limit")
    mark_page(page)

    card(region(page, "Backlog"), waiting).get_by_role("button", name="Pull").click()

    alert = region(page, "Backlog").get_by_role("alert")
    expect(alert).to_contain_text(WIP_SENTENCE)
    # The alert sits right before the card it is about, and nothing moved.
    expect(alert.locator("xpath=following-sibling::article[1]")).to_have_attribute(
        "data-item-id", str(waiting)
    )
    expect(card(region(page, "Backlog"), waiting)).to_be_visible()
    expect(region(page, "Build").locator("article.card")).to_have_count(3)
    for item_id in full:
        expect(card(doing(page, "Build"), item_id)).to_be_visible()
    assert_no_reload(page)
    assert item_state(board, waiting)[0] == board.state_id("Backlog")


def test_block_with_a_reason_then_unblock(signed_in: OpenBoard, board: Seed) -> None:
    item_id = add_item(board, "Needs a decision", into="Build")
    page = signed_in("member")
    the_card = card(doing(page, "Build"), item_id)

    # The card's Block link opens the board's one shared Block dialog, named after the item.
    the_card.get_by_role("link", name="Block").click()
    dialog = page.get_by_role("dialog", name=f"Block {key(board, item_id)}")
    dialog.get_by_label("Reason").select_option(label="Waiting for decision")
    dialog.get_by_label("Waiting on").fill("the CFO")
    dialog.get_by_role("button", name="Block", exact=True).click()

    the_card = card(doing(page, "Build"), item_id)
    badge = the_card.locator(".blockbadge")
    expect(badge).to_contain_text("Waiting for decision")
    expect(badge).to_contain_text("waits on the CFO")
    expect(the_card).to_have_class("card standard blocked")

    the_card.get_by_role("button", name="Unblock").click()
    expect(card(doing(page, "Build"), item_id).locator(".blockbadge")).to_have_count(0)
    expect(card(doing(page, "Build"), item_id)).not_to_have_class("card standard blocked")


def test_mark_ready_moves_the_card_into_ready(signed_in: OpenBoard, board: Seed) -> None:
    item_id = add_item(board, "Almost there", into="Build")
    page = signed_in("member")
    mark_page(page)

    card(doing(page, "Build"), item_id).get_by_role("button", name="Mark ready").click()

    expect(card(ready_half(page, "Build"), item_id)).to_be_visible()
    expect(card(doing(page, "Build"), item_id)).to_have_count(0)
    assert_no_reload(page)
    assert item_state(board, item_id)[1] == "ready"


def test_reviewer_pulls_into_review_and_sends_back(signed_in: OpenBoard, board: Seed) -> None:
    item_id = add_item(board, "Check my work", into="Build", ready=True)
    page = signed_in("reviewer")
    ready_card = card(ready_half(page, "Build"), item_id)
    expect(ready_card).to_be_visible()

    ready_card.get_by_role("button", name="Pull").click()
    in_review = card(doing(page, "Review"), item_id)
    expect(in_review).to_be_visible()

    in_review.get_by_role("link", name="Send back").click()
    send_back = page.get_by_role("dialog", name=f"Send back {key(board, item_id)}")
    send_back.get_by_label("Send back to").select_option(label="Build")
    send_back.get_by_label("Reason").fill("The numbers do not add up")
    send_back.get_by_role("button", name="Send back").click()

    expect(card(region(page, "Build"), item_id)).to_be_visible()
    expect(card(region(page, "Review"), item_id)).to_have_count(0)
    assert item_state(board, item_id)[0] == board.state_id("Build")


def test_drag_a_backlog_card_onto_doing_pulls_it(signed_in: OpenBoard, board: Seed) -> None:
    item_id = add_item(board, "Drag me")
    page = signed_in("member")
    source = card(region(page, "Backlog"), item_id).locator(".meta")
    target = doing(page, "Build")
    expect(source).to_be_visible()
    mark_page(page)

    # SortableJS reacts to a real press-move-release with moves in between, not to a jump.
    source.hover()
    page.mouse.down()
    box = target.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y - 10, steps=15)
    page.mouse.move(x, y, steps=5)
    page.mouse.up()

    expect(card(doing(page, "Build"), item_id)).to_be_visible()
    expect(card(region(page, "Backlog"), item_id)).to_have_count(0)
    assert_no_reload(page)
    assert item_state(board, item_id)[:2] == (board.state_id("Build"), "doing")


def test_a_change_by_someone_else_shows_up_live(browsing: Browsing, board: Seed) -> None:
    item_id = add_item(board, "Watch this")
    watcher = browsing.new_page()
    sign_in(watcher, board.user("manager").email, next_path=f"/boards/{board.board_id}")
    expect(watcher.locator("#live-status")).to_have_text("Live")  # the SSE stream is open
    expect(card(region(watcher, "Backlog"), item_id)).to_be_visible()
    mark_page(watcher)

    actor = browsing.new_page()
    sign_in(actor, board.user("member").email, next_path=f"/boards/{board.board_id}")
    card(region(actor, "Backlog"), item_id).get_by_role("button", name="Pull").click()
    expect(card(doing(actor, "Build"), item_id)).to_be_visible()

    expect(card(doing(watcher, "Build"), item_id)).to_be_visible(timeout=2000)
    expect(card(region(watcher, "Backlog"), item_id)).to_have_count(0)
    assert_no_reload(watcher)


XSS = "<img src=x onerror=alert(1)>"


def test_a_hostile_title_is_only_text(
    signed_in: OpenBoard, browsing: Browsing, board: Seed
) -> None:
    page = signed_in("member")
    page.locator("summary", has_text="New item").click()
    page.get_by_label("Title").fill(XSS)
    page.get_by_role("button", name="Create item").click()

    title = region(page, "Backlog").locator("article.card a.title")
    expect(title).to_have_text(XSS)
    assert page.locator("img[src='x']").count() == 0
    item_href = title.get_attribute("href")
    assert item_href is not None

    page.goto(item_href)
    expect(page.locator(".item-title")).to_contain_text(XSS)
    expect(page.get_by_label("Title")).to_have_value(XSS)
    assert page.locator("img[src='x']").count() == 0
    assert browsing.dialogs == []


def test_keyboard_only_pull(signed_in: OpenBoard, board: Seed) -> None:
    item_id = add_item(board, "No mouse needed")
    page = signed_in("member")
    page.locator("body").focus()
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const a = document.activeElement;"
            " return a && a.tagName === 'BUTTON' ? a.textContent.trim() : ''; }"
        )
        if focused == "Pull":
            break
    else:
        pytest.fail("Tab never reached a Pull button")
    page.keyboard.press("Enter")

    expect(card(doing(page, "Build"), item_id)).to_be_visible()
    assert item_state(board, item_id)[:2] == (board.state_id("Build"), "doing")
    # Focus stays with the card that moved (its Pull button went with the move).
    expect(card(doing(page, "Build"), item_id)).to_be_focused()


def test_a_change_through_the_api_shows_up_live(
    browsing: Browsing, board: Seed, server: LiveServer
) -> None:
    """A script with a bearer token (another connection, NOTIFY on PostgreSQL) moves a card."""
    item_id = add_item(board, "Moved by a script")
    watcher = browsing.new_page()
    sign_in(watcher, board.user("viewer").email, next_path=f"/boards/{board.board_id}")
    expect(watcher.locator("#live-status")).to_have_text("Live")
    expect(card(region(watcher, "Backlog"), item_id)).to_be_visible()
    mark_page(watcher)

    with httpx.Client(base_url=server.base_url, timeout=10) as api:
        token = api.post(
            "/api/v1/auth/token",
            data={"username": board.user("member2").email, "password": PASSWORD},
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        pulled = api.post(f"/api/v1/items/{item_id}/pull", headers=headers)
        assert pulled.status_code == 200, pulled.text

    expect(card(doing(watcher, "Build"), item_id)).to_be_visible(timeout=2000)
    expect(card(doing(watcher, "Build"), item_id).locator(".avatar")).to_have_text("MA")
    assert_no_reload(watcher)


def test_changes_arrive_as_deltas_without_fetching_the_board(
    signed_in: OpenBoard, board: Seed
) -> None:
    """An action answers with a delta and the live stream carries ready-made deltas: neither my
    own pull (and its echo) nor another person's pull makes the page fetch the board."""
    mine = add_item(board, "Mine")
    theirs = add_item(board, "Theirs")
    page = signed_in("member")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    refreshes: list[str] = []
    page.on(
        "request",
        lambda r: refreshes.append(r.url) if r.headers.get("x-flowboard-refresh") else None,
    )
    card(region(page, "Backlog"), mine).get_by_role("button", name="Pull").click()
    expect(card(doing(page, "Build"), mine)).to_be_visible()
    page.wait_for_timeout(1200)  # the echo arrives well within this; debounce is 300 ms
    assert refreshes == []

    from app.services import items

    with board.database.unit_of_work() as session:
        items.pull_item(session=session, item_id=theirs, actor=board.user("member2"))
    expect(card(doing(page, "Build"), theirs)).to_be_visible(timeout=2000)
    # Placed after my card (both in Build's Doing, oldest first), the WIP badge counts both.
    cards = doing(page, "Build").locator("article.card")
    expect(cards).to_have_count(2)
    assert cards.nth(1).get_attribute("data-item-id") == str(theirs)
    expect(region(page, "Build").locator(".wip")).to_have_text("2/3")
    page.wait_for_timeout(600)
    assert refreshes == []


def test_a_card_title_opens_the_item_in_the_drawer(signed_in: OpenBoard, board: Seed) -> None:
    item_id = add_item(board, "Read me in the drawer")
    page = signed_in("member")
    mark_page(page)
    title = card(region(page, "Backlog"), item_id).get_by_role("link", name="Read me in the drawer")
    title.click()
    drawer = page.locator("dialog#drawer")
    expect(drawer).to_be_visible()
    expect(drawer.locator(".item-title")).to_contain_text(key(board, item_id))
    expect(drawer.locator(".item-title")).to_be_focused()
    assert_no_reload(page)
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(title).to_be_focused()  # back where the reader was
