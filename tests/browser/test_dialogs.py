"""The board's shared Block and Send back dialogs (one per board, not a form per card), and
the same actions without JavaScript through the card's links (issue 8)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from app.db import queries
from tests.browser.conftest import Browsing, sign_in
from tests.factories import Seed
from tests.web.helpers import add_item, block, item_state, key

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

OpenBoard = Callable[[str], Page]


def region(page: Page, name: str) -> Locator:
    return page.get_by_role("region", name=name, exact=True)


def card(scope: Page | Locator, item_id: int) -> Locator:
    return scope.locator(f'article.card[data-item-id="{item_id}"]')


def open_block(seed: Seed, item_id: int) -> bool:
    with seed.database.unit_of_work(write=False) as session:
        return any(b.resolved_at is None for b in queries.blocks_of_item(session, item_id))


def test_block_through_the_shared_dialog(signed_in: OpenBoard, board: Seed) -> None:
    first = add_item(board, "First", into="Build")
    second = add_item(board, "Second", into="Build")
    page = signed_in("member")
    page.evaluate("window.__flowboardMarker = 'still here'")
    # One Block dialog for the whole board, not one form per card.
    expect(page.locator("dialog#block-dialog")).to_have_count(1)
    expect(page.locator("article.card form, article.card select")).to_have_count(0)

    link = card(page, second).get_by_role("link", name=f"Block {key(board, second)}")
    link.click()
    dialog = page.get_by_role("dialog", name=f"Block {key(board, second)}")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Reason")).to_be_focused()
    # Cancel closes it and hands the focus back to the link that opened it.
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(link).to_be_focused()
    assert not open_block(board, second)

    # Escape cancels too; the dialog then names whichever card opened it.
    card(page, first).get_by_role("link", name="Block").click()
    expect(page.get_by_role("dialog", name=f"Block {key(board, first)}")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog#block-dialog")).to_be_hidden()

    link.click()
    dialog = page.get_by_role("dialog", name=f"Block {key(board, second)}")
    dialog.get_by_label("Reason").select_option(label="Waiting for decision")
    dialog.get_by_label("Note").fill("needs the budget line")
    dialog.get_by_label("Waiting on").fill("the CFO")
    dialog.get_by_role("button", name="Block", exact=True).click()

    expect(dialog).to_be_hidden()
    badge = card(page, second).locator(".blockbadge")
    expect(badge).to_contain_text("Waiting for decision")
    expect(badge).to_contain_text("waits on the CFO")
    expect(card(page, first).locator(".blockbadge")).to_have_count(0)
    assert page.evaluate("window.__flowboardMarker") == "still here"  # no reload
    assert open_block(board, second) and not open_block(board, first)


def test_send_back_offers_only_the_allowed_states(signed_in: OpenBoard, board: Seed) -> None:
    item_id = add_item(board, "Check my work", into="Review")
    page = signed_in("reviewer")
    in_review = card(region(page, "Review"), item_id)
    in_review.get_by_role("link", name=f"Send back {key(board, item_id)}").click()

    dialog = page.get_by_role("dialog", name=f"Send back {key(board, item_id)}")
    expect(dialog).to_be_visible()
    to = dialog.get_by_label("Send back to")
    # Review itself is listed in the shared dialog but not offered for this card.
    expect(to.locator("option:not([disabled])")).to_have_text(["Build"])
    expect(to).to_have_value(str(board.state_id("Build")))
    dialog.get_by_label("Reason").fill("The numbers do not add up")
    dialog.get_by_role("button", name="Send back").click()

    expect(card(region(page, "Build"), item_id)).to_be_visible()
    expect(card(region(page, "Review"), item_id)).to_have_count(0)
    assert item_state(board, item_id)[0] == board.state_id("Build")


def test_a_refused_dialog_action_explains_itself_next_to_the_card(
    signed_in: OpenBoard, board: Seed
) -> None:
    item_id = add_item(board, "Contested", into="Build")
    page = signed_in("member")
    card(page, item_id).get_by_role("link", name="Block").click()
    dialog = page.get_by_role("dialog", name=f"Block {key(board, item_id)}")
    block(board, item_id, by="member2")  # someone else was quicker
    dialog.get_by_role("button", name="Block", exact=True).click()

    alert = region(page, "Build").get_by_role("alert")
    expect(alert).to_contain_text("already blocked")
    expect(alert.locator("xpath=following-sibling::article[1]")).to_have_attribute(
        "data-item-id", str(item_id)
    )


def test_block_and_send_back_without_javascript(browsing: Browsing, board: Seed) -> None:
    blocked = add_item(board, "Plain HTML block", into="Build")
    pulled = add_item(board, "Plain HTML pull")
    returned = add_item(board, "Plain HTML send back", into="Review")
    context = browsing.browser.new_context(
        base_url=browsing.server.base_url, java_script_enabled=False
    )
    browsing.contexts.append(context)
    page = context.new_page()
    sign_in(page, board.user("reviewer").email, next_path=f"/boards/{board.board_id}")

    card(page, blocked).get_by_role("link", name=f"Block {key(board, blocked)}").click()
    page.wait_for_url(f"**/items/{blocked}/forms/block")
    expect(page.get_by_role("heading", name=f"Block {key(board, blocked)}")).to_be_visible()
    page.get_by_label("Reason").select_option(label="Waiting for decision")
    page.get_by_label("Waiting on").fill("Legal")
    page.get_by_role("button", name="Block").click()
    page.wait_for_url(f"**/boards/{board.board_id}")
    expect(card(page, blocked).locator(".blockbadge")).to_contain_text("waits on Legal")
    assert open_block(board, blocked)

    # Pull posts the board's one form to the button's formaction.
    card(page, pulled).get_by_role("button", name=f"Pull {key(board, pulled)}").click()
    page.wait_for_url(f"**/boards/{board.board_id}")
    assert item_state(board, pulled)[:2] == (board.state_id("Build"), "doing")

    card(page, returned).get_by_role("link", name=f"Send back {key(board, returned)}").click()
    page.wait_for_url(f"**/items/{returned}/forms/send-back")
    page.get_by_label("Send back to").select_option(label="Build")
    page.get_by_label("Reason").fill("Missing the appendix")
    page.get_by_role("button", name="Send back").click()
    page.wait_for_url(f"**/boards/{board.board_id}")
    assert item_state(board, returned)[0] == board.state_id("Build")
