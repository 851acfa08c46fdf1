"""The board page: structure, WIP wording, signals, buttons per role, fragments, refusals."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.factories import Seed
from tests.web.helpers import (
    add_criterion,
    add_item,
    block,
    event_count,
    htmx_headers,
    item_state,
    key,
    sign_in,
)


def board(client: TestClient, seed: Seed, query: str = "", **headers: str) -> str:
    response = client.get(f"/boards/{seed.board_id}{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.text


def card_html(html: str, key: str) -> str:
    """The <article> of one card (key like TST-1)."""
    for match in re.finditer(r"<article class=\"card.*?</article>", html, re.S):
        if f'<span class="key">{key}</span>' in match.group(0):
            return match.group(0)
    raise AssertionError(f"no card {key}")


def section(html: str, name: str) -> str:
    match = re.search(
        rf'<section class="state [a-z]+" aria-label="{re.escape(name)}".*?</section>', html, re.S
    )
    assert match, f"no section {name}"
    return match.group(0)


def buttons(html: str) -> list[str]:
    """Button texts, including the card's Block / Send back links (styled as buttons)."""
    return re.findall(
        r"<(?:button|summary|a class=\"button\")[^>]*>([^<]+)</(?:button|summary|a)>", html
    )


def post(client: TestClient, url: str, data: dict[str, str] | None = None, htmx: bool = True):  # type: ignore[no-untyped-def]
    if htmx:
        return client.post(url, data=data or {}, headers=htmx_headers(client))
    return client.post(
        url,
        data={"csrf_token": client.csrf_token, **(data or {})},
        follow_redirects=False,  # type: ignore[attr-defined]
    )


def test_structure_like_the_mockup(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    html = board(client, seed)
    for name in ("Backlog", "Build", "Review", "Done"):
        assert f'aria-label="{name}"' in html
        assert f"<h2>{name}" in html
    build = section(html, "Build")
    assert '<div class="halves">' in build
    assert "<h3>Doing</h3>" in build and "<h3>Ready</h3>" in build
    assert f'data-sortable-state="{seed.state_id("Build")}"' in build
    assert f'data-sortable-state="{seed.state_id("Done")}"' in section(html, "Done")
    # SortableJS drags only from a bound container: the Backlog (and each Ready) must be one.
    assert f'data-sortable-state="{seed.state_id("Backlog")}"' in section(html, "Backlog")
    assert '<span class="role">reviewers pull</span>' in section(html, "Review")
    assert "reviewers pull" not in build
    assert 'id="board"' in html and f'data-live-url="/boards/{seed.board_id}/live"' in html
    assert f'data-refresh-url="/boards/{seed.board_id}"' in html
    assert '<dialog id="drawer" class="drawer"' in html and 'id="drawer-body"' in html
    assert "data-drawer-close" in html and 'id="live-status"' in html
    assert 'class="skip-link"' in html
    for href in ("flow", "delays", "history", "settings"):
        assert f'href="/boards/{seed.board_id}/{href}"' in html
    scripts = re.findall(r'<script src="([^"]+)" defer></script>', html)
    assert scripts == [
        "/static/vendor/htmx.min.js",
        "/static/vendor/Sortable.min.js",
        "/static/js/board.js",
    ]
    assert "<style" not in html and " style=" not in html and "<script>" not in html
    assert not re.search(r"\son[a-z]+=", html)
    assert """content='{"includeIndicatorStyles":false,"allowEval":false""" in html


def test_wip_wording_under_at_and_over(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    add_item(seed, "one", into="Build")
    add_item(seed, "two", into="Build")
    wip = f'<span class="wip {{}}" id="wip-{seed.state_id("Build")}">{{}}</span>'
    assert wip.format("under", "2/3") in section(board(client, seed), "Build")
    add_item(seed, "three", into="Build")
    assert wip.format("at", "3/3 at limit") in section(board(client, seed), "Build")
    # Lowering a limit below current WIP is allowed: the state shows as over its limit.
    from app.services import boards as board_service

    with seed.database.unit_of_work() as session:
        board_service.update_state(
            session=session,
            state_id=seed.state_id("Build"),
            actor=seed.user("admin"),
            changes={"wip_limit": 2},
        )
    assert wip.format("over", "3/2 over limit") in section(board(client, seed), "Build")


def test_pull_signals(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    first = add_item(seed, "first", into="Build", ready=True)
    html = board(client, seed)
    review = section(html, "Review")
    review_doing = f"signal-run-{seed.state_id('Review')}-doing"
    room = f"Room for 2: pull {key(seed, first)} from Build"
    signal = f'<div class="signal" id="{review_doing}">{room}</div>'
    assert signal in review
    # Fill Review (limit 2): the Ready half of Build says it waits.
    add_item(seed, "r1", into="Review")
    add_item(seed, "r2", into="Review")
    html = board(client, seed)
    assert "Room for" not in section(html, "Review")
    # An empty signal stays in place (hidden) for deltas to fill.
    assert f'<div class="signal" id="{review_doing}" hidden></div>' in section(html, "Review")
    assert re.search(
        r'<div class="signal" id="signal-run-\d+-ready">Review has no room: this waits \d+m</div>',
        section(html, "Build"),
    )


def test_buttons_per_role(client: TestClient, seed: Seed) -> None:
    backlog_item = add_item(seed, "option")
    doing = add_item(seed, "doing", into="Build")  # owned by member Sam
    ready = add_item(seed, "ready", into="Build", ready=True)
    in_review = add_item(seed, "reviewing", into="Review")
    blocked = add_item(seed, "blocked", into="Build")
    block(seed, blocked)

    sign_in(client, seed.user("viewer"))
    html = board(client, seed)
    assert "data-pull-url" not in html
    assert not set(buttons(html)) & {"Pull", "Mark ready", "Block", "Unblock", "Send back"}
    assert "New item" not in html

    sign_in(client, seed.user("member"))
    html = board(client, seed)
    # One control per action: Block opens the board's shared dialog (no form in the card).
    assert buttons(card_html(html, key(seed, backlog_item))) == ["Pull", "Block"]
    assert "data-pull-url" in card_html(html, key(seed, backlog_item))
    assert buttons(card_html(html, key(seed, doing))) == ["Mark ready", "Block"]
    # Review is a reviewer state: a member may not pull into it nor send work back from it.
    assert "Pull" not in buttons(card_html(html, key(seed, ready)))
    assert "data-pull-url" not in card_html(html, key(seed, ready))
    assert "Send back" not in buttons(card_html(html, key(seed, in_review)))
    assert "Mark ready" not in buttons(card_html(html, key(seed, in_review)))  # not the owner
    assert buttons(card_html(html, key(seed, blocked))) == ["Unblock"]
    assert "New item" in html

    sign_in(client, seed.user("reviewer"))
    html = board(client, seed)
    assert "Pull" in buttons(card_html(html, key(seed, ready)))
    assert f'data-pull-url="/boards/{seed.board_id}/items/{ready}/pull"' in html
    review_buttons = buttons(card_html(html, key(seed, in_review)))
    assert "Send back" in review_buttons and "Mark ready" in review_buttons


def test_card_shows_key_owner_age_class_due_and_criteria(client: TestClient, seed: Seed) -> None:
    add_criterion(seed, "Build", "Spell-checked")
    add_criterion(seed, "Build", "Reviewed by a peer")
    item_id = add_item(seed, "Travel policy", cos="fixed_date", into="Build")
    from datetime import date

    from app.services import items

    with seed.database.unit_of_work() as session:
        detail = items.get_item(session=session, item_id=item_id, actor=seed.user("member"))
        items.edit_item(
            session=session,
            item_id=item_id,
            actor=seed.user("member"),
            version=detail.item.version,
            changes={"due_date": date(2031, 12, 4)},
        )
    sign_in(client, seed.user("member"))
    card = card_html(board(client, seed), key(seed, item_id))
    assert 'class="card fixed_date"' in card
    assert "fixed date · " in card and re.search(r"\d+m in Build", card)
    assert "due 4 Dec 2031" in card
    assert '<span class="avatar" title="Sam" aria-hidden="true">SA</span>' in card
    assert '<span class="sr-only">Owner: Sam</span>' in card
    assert '<span class="crit partial">Exit ✓ 0/2</span>' in card
    # The drawer link: board.js fetches its href into the drawer (a plain link without JS).
    assert f'<a class="title" href="/items/{item_id}" data-drawer>' in card


def test_blocked_badge(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, "waiting", into="Build")
    block(seed, item_id, waiting_on="CFO")
    sign_in(client, seed.user("member"))
    card = card_html(board(client, seed), key(seed, item_id))
    assert 'class="card standard blocked"' in card
    assert re.search(
        r'<span class="blockbadge">Blocked \d+m · Waiting for information · waits on CFO</span>',
        card,
    )


def test_fragment_for_htmx_and_vary_header(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    page = client.get(f"/boards/{seed.board_id}")
    fragment = client.get(f"/boards/{seed.board_id}", headers={"HX-Request": "true"})
    # Vary also names Accept-Encoding when the answer was compressed (gzip).
    assert "HX-Request" in page.headers["vary"].split(", ")
    assert "HX-Request" in fragment.headers["vary"].split(", ")
    assert page.text.startswith("<!doctype html>")
    assert fragment.text.startswith('<div id="board"')
    assert "<html" not in fragment.text and "<header" not in fragment.text
    assert fragment.text.rstrip().endswith("</div>")


def delta_card(html: str, item_id: int) -> tuple[str, str, str]:
    """(run id, id of the card it follows, the card) of one item in a delta."""
    match = re.search(
        rf'<div hidden data-card-for="{item_id}" data-run="([^"]*)" data-after="(\d*)">(.*?)</div>'
        r"(?=<div hidden data-card-for|<span id=\"my-summary\"|</div>$)",
        html,
        re.S,
    )
    assert match, f"no card {item_id} in the delta"
    return match.group(1), match.group(2), match.group(3)


def test_pull_via_htmx_answers_with_only_what_changed(client: TestClient, seed: Seed) -> None:
    others = [add_item(seed, f"waiting {n}") for n in range(3)]
    first = add_item(seed, "in Build", into="Build")
    item_id = add_item(seed)
    sign_in(client, seed.user("member"))
    response = post(client, f"/boards/{seed.board_id}/items/{item_id}/pull")
    assert response.status_code == 200
    assert response.headers["x-flowboard-delta"] == "1"
    assert response.headers["hx-reswap"] == "none"  # htmx alone never swaps a delta in
    html = response.text
    assert html.startswith('<div data-delta data-seen="') and 'id="board"' not in html
    # The pulled card, placed after the card already in Build's Doing half; no other card.
    run, after, card = delta_card(html, item_id)
    assert (run, after) == (f"run-{seed.state_id('Build')}-doing", str(first))
    assert f'data-item-id="{item_id}"' in card and key(seed, item_id) in card
    assert html.count("<article") == 1 and not any(key(seed, o) in html for o in others)
    # Heads: every WIP badge and paging slot, and my header counts.
    assert f'<span class="wip under" id="wip-{seed.state_id("Build")}">2/3</span>' in html
    assert f'id="more-run-{seed.state_id("Backlog")}-all" data-total="3"' in html
    assert '<span id="my-summary">: <b>2 doing</b>' in html
    assert item_state(seed, item_id)[:2] == (seed.state_id("Build"), "doing")


def test_a_card_that_leaves_the_page_is_removed(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, into="Build")
    sign_in(client, seed.user("member"))
    html = client.get(f"/boards/{seed.board_id}?owner={seed.user('member2').id}").text
    assert key(seed, item_id) not in html
    # Filtered to member2's cards, my item's mark ready is answered with its removal only.
    response = post(
        client,
        f"/boards/{seed.board_id}/items/{item_id}/ready?owner={seed.user('member2').id}",
    )
    assert response.status_code == 200
    assert delta_card(response.text, item_id) == ("", "", "")


def test_without_js_actions_redirect_back_with_filters(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed)
    sign_in(client, seed.user("member"))
    response = post(client, f"/boards/{seed.board_id}/items/{item_id}/pull?q=Item", htmx=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/boards/{seed.board_id}?q=Item"
    assert item_state(seed, item_id)[0] == seed.state_id("Build")


def test_drag_to_the_wrong_state_is_refused(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed)
    sign_in(client, seed.user("member"))
    response = post(
        client,
        f"/boards/{seed.board_id}/items/{item_id}/pull",
        {"to_state_id": str(seed.state_id("Review"))},
    )
    assert response.status_code == 409
    assert "can only be pulled into Build" in response.text
    assert item_state(seed, item_id)[1] is None


def _alert_before_card(html: str, item_id: int) -> str:
    match = re.search(
        r'<div class="alert inline" role="alert" tabindex="-1">([^<]*)</div>\s*'
        rf'<article class="card[^"]*" data-item-id="{item_id}"',
        html,
    )
    assert match, "no alert right above the card"
    return match.group(1)


def test_wip_refusal_explains_next_to_the_card(client: TestClient, seed: Seed) -> None:
    for n in range(3):
        add_item(seed, f"b{n}", into="Build")
    item_id = add_item(seed, "fourth")
    sign_in(client, seed.user("member"))
    before = board(client, seed, **{"HX-Request": "true"})
    events = event_count(seed)
    response = post(client, f"/boards/{seed.board_id}/items/{item_id}/pull")
    assert response.status_code == 409
    assert response.headers["x-flowboard-refusal"] == "1"
    assert response.text.startswith('<div id="board"')
    message = _alert_before_card(response.text, item_id)
    assert message == (
        "Build is at its WIP limit (3/3): finish or hand off an item there before pulling "
        f"{key(seed, item_id)}."
    )
    assert key(seed, item_id) in section(response.text, "Backlog")
    assert event_count(seed) == events
    # Apart from the alert, the board is the same as before.
    assert re.sub(r'<div class="alert inline".*?</div>\s*', "", response.text) == before


def test_criteria_refusal_lists_them(client: TestClient, seed: Seed) -> None:
    add_criterion(seed, "Build", "Scope agreed", gate="entry")
    add_criterion(seed, "Build", "Owner named", gate="entry")
    item_id = add_item(seed)
    sign_in(client, seed.user("member"))
    response = post(client, f"/boards/{seed.board_id}/items/{item_id}/pull")
    assert response.status_code == 409
    message = _alert_before_card(response.text, item_id)
    assert "entry criteria" in message and "“Scope agreed”; “Owner named”" in message


def test_blocked_refusal(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, into="Build")
    block(seed, item_id)
    sign_in(client, seed.user("member"))
    response = post(client, f"/boards/{seed.board_id}/items/{item_id}/ready")
    assert response.status_code == 409
    assert "is blocked: resolve its block before marking it ready" in _alert_before_card(
        response.text, item_id
    )


def test_role_refusal(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, into="Build", ready=True)
    sign_in(client, seed.user("member"))
    response = post(client, f"/boards/{seed.board_id}/items/{item_id}/pull")
    assert response.status_code == 403
    assert response.headers["x-flowboard-refusal"] == "1"
    assert "Only reviewers and above can pull into Review" in _alert_before_card(
        response.text, item_id
    )
    assert item_state(seed, item_id)[:2] == (seed.state_id("Build"), "ready")


def test_refusal_without_js_renders_the_page(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, into="Build", ready=True)
    sign_in(client, seed.user("member"))
    response = post(client, f"/boards/{seed.board_id}/items/{item_id}/pull", htmx=False)
    assert response.status_code == 403
    assert response.text.startswith("<!doctype html>")
    assert "Only reviewers and above" in response.text


def test_block_unblock_and_send_back_from_the_board(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, into="Review", puller=None)
    sign_in(client, seed.user("reviewer"))
    from app.db import queries

    with seed.database.unit_of_work(write=False) as session:
        reason = queries.block_reasons(session, seed.board_id)[1]
    response = post(
        client,
        f"/boards/{seed.board_id}/items/{item_id}/block",
        {"reason_id": str(reason.id), "note": "legal", "waiting_on": "Legal team"},
    )
    assert response.status_code == 200
    assert f"{reason.name} · waits on Legal team" in card_html(response.text, key(seed, item_id))
    response = post(client, f"/boards/{seed.board_id}/items/{item_id}/unblock")
    assert response.status_code == 200
    assert "blockbadge" not in card_html(response.text, key(seed, item_id))
    response = post(
        client,
        f"/boards/{seed.board_id}/items/{item_id}/send-back",
        {"to_state_id": str(seed.state_id("Build")), "reason": "missing figures"},
    )
    assert response.status_code == 200
    run, _, card = delta_card(response.text, item_id)
    assert run == f"run-{seed.state_id('Build')}-doing" and key(seed, item_id) in card
    assert item_state(seed, item_id)[:2] == (seed.state_id("Build"), "doing")
    # Send back without a reason is refused (422) next to the card.
    item2 = add_item(seed, into="Review")
    response = post(
        client,
        f"/boards/{seed.board_id}/items/{item2}/send-back",
        {"to_state_id": str(seed.state_id("Build")), "reason": " "},
    )
    assert response.status_code == 422
    assert "a reason is required" in _alert_before_card(response.text, item2)


def test_item_of_another_board_in_the_url_is_not_found(client: TestClient, seed: Seed) -> None:
    from app.services import boards as board_service

    with seed.database.unit_of_work() as session:
        other = board_service.create_board(
            session=session, actor=seed.user("admin"), name="Other", key="OTH"
        )
        board_service.set_member(
            session=session,
            board_id=other.id,
            user_id=seed.user("member").id,
            role="member",
            actor=seed.user("admin"),
        )
        other_id = other.id
    item_id = add_item(seed)
    sign_in(client, seed.user("member"))
    response = post(client, f"/boards/{other_id}/items/{item_id}/pull")
    assert response.status_code == 404
    assert item_state(seed, item_id)[1] is None


def test_non_member_gets_404(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed)
    sign_in(client, seed.user("outsider"))
    for url in (f"/boards/{seed.board_id}", f"/items/{item_id}"):
        response = client.get(url)
        assert response.status_code == 404
        assert 'role="alert"' in response.text and "Test board" not in response.text
    response = post(client, f"/boards/{seed.board_id}/items/{item_id}/pull")
    assert response.status_code == 404
    assert item_state(seed, item_id)[1] is None


def test_expedite_lane(client: TestClient, seed: Seed) -> None:
    urgent = add_item(seed, "urgent", cos="expedite", into="Build")
    normal = add_item(seed, "normal", into="Build")
    sign_in(client, seed.user("member"))
    html = board(client, seed)
    lane = html[
        html.index('<div class="lane"') : html.index(
            '<div class="board">', html.index("</div>", html.index('class="lane-title"')) + 1
        )
    ]
    assert '<div class="lane-title">Expedite</div>' in html
    lane_build = section(html, "Expedite: Build")
    assert key(seed, urgent) in lane_build and key(seed, normal) not in lane_build
    assert key(seed, urgent) not in section(html, "Build")
    assert key(seed, normal) in section(html, "Build")
    assert html.index("Expedite: Build") < html.index('aria-label="Build"')
    assert lane
    # Without expedite items there is no lane.
    with seed.database.unit_of_work() as session:
        from app.services import items

        items.discard_item(session=session, item_id=urgent, actor=seed.user("admin"), reason="x")
    assert "lane-title" not in board(client, seed)


def test_delivered_expedite_items_leave_the_lane_for_done(client: TestClient, seed: Seed) -> None:
    # Build -> Review -> (ready in the last work state delivers to Done at once).
    delivered = add_item(seed, "shipped fast", cos="expedite", into="Review", ready=True)
    sign_in(client, seed.user("member"))
    html = board(client, seed)
    assert "lane-title" not in html
    assert key(seed, delivered) in section(html, "Done")


def test_filters_live_in_the_url(client: TestClient, seed: Seed) -> None:
    mine = add_item(seed, "Expense policy", into="Build")
    theirs = add_item(seed, "Travel rules", by="member2", into="Build")
    blocked = add_item(seed, "Blocked thing", cos="fixed_date")
    block(seed, blocked)
    sign_in(client, seed.user("member"))
    sam = seed.user("member").id
    html = board(client, seed, f"?owner={sam}")
    assert key(seed, mine) in html and key(seed, theirs) not in html
    assert f'<option value="{sam}" selected>' in html
    assert f'data-refresh-url="/boards/{seed.board_id}?owner={sam}"' in html
    html = board(client, seed, "?q=travel")
    assert key(seed, theirs) in html and key(seed, mine) not in html
    assert 'value="travel"' in html
    html = board(client, seed, "?blocked=1")
    assert key(seed, blocked) in html and key(seed, mine) not in html
    html = board(client, seed, "?cos=fixed_date&q=blocked")
    assert key(seed, blocked) in html and key(seed, theirs) not in html
    assert f"/boards/{seed.board_id}/items/{blocked}/unblock?q=blocked&amp;cos=fixed_date" in html
    # WIP counts are the state's, not the filter's.
    assert f'<span class="wip under" id="wip-{seed.state_id("Build")}">2/3</span>' in section(
        html, "Build"
    )


def test_new_item_form(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    response = post(
        client,
        f"/boards/{seed.board_id}/items",
        {"title": "Supplier checklist", "class_of_service": "fixed_date", "due_date": "2031-01-05"},
    )
    assert response.status_code == 200
    card = card_html(response.text, "TST-1")
    assert "Supplier checklist" in card and "fixed_date" in card and "due 5 Jan 2031" in card
    response = post(client, f"/boards/{seed.board_id}/items", {"title": "  "})
    assert response.status_code == 422
    assert 'role="alert"' in response.text and "A title needs" in response.text
    sign_in(client, seed.user("viewer"))
    response = post(client, f"/boards/{seed.board_id}/items", {"title": "sneaky"})
    assert response.status_code == 403
    assert "sneaky" not in board(client, seed)


def test_home_lists_or_redirects(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("member"))
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/boards/{seed.board_id}"


@pytest.mark.parametrize("role", ["admin"])
def test_admin_sees_every_board(client: TestClient, seed: Seed, role: str) -> None:
    sign_in(client, seed.user(role))
    assert "Test board" in board(client, seed)


def test_outsider_posting_a_new_item_gets_the_404_page(client, seed) -> None:  # type: ignore[no-untyped-def]
    from tests.web.helpers import htmx_headers, sign_in

    sign_in(client, seed.user("outsider"))
    response = client.post(
        f"/boards/{seed.board_id}/items",
        data={"title": "Sneaky", "csrf_token": client.csrf_token},  # type: ignore[attr-defined]
        headers={k: v for k, v in htmx_headers(client).items() if k != "HX-Request"},
    )
    assert response.status_code == 404
    assert "Sneaky" not in response.text
