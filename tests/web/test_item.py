"""The item page and drawer: edits, criteria, blocks, send back, comments, timeline."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.services import items
from tests.factories import Seed
from tests.web.helpers import add_criterion, add_item, block, htmx_headers, item_state, sign_in


def detail_post(client: TestClient, url: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(url, data=data, headers=htmx_headers(client))


def test_page_and_drawer_fragment(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, "Expense policy", into="Build")
    sign_in(client, seed.user("member"))
    page = client.get(f"/items/{item_id}")
    assert page.status_code == 200 and page.text.startswith("<!doctype html>")
    assert 'id="item-detail"' in page.text and "Expense policy" in page.text
    drawer = client.get(f"/items/{item_id}", headers={"HX-Request": "true"})
    assert "HX-Request" in drawer.headers["vary"].split(", ")
    assert drawer.text.startswith('<div id="item-detail"') and "<html" not in drawer.text
    assert "Sam is working on it" in drawer.text


def test_edit_fields(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, "Old title", into="Build")
    version = item_state(seed, item_id)[2]
    sign_in(client, seed.user("member"))
    response = detail_post(
        client,
        f"/items/{item_id}/edit",
        {
            "version": str(version),
            "title": "New title",
            "description": "Longer text",
            "class_of_service": "intangible",
            "due_date": "2031-02-03",
            "owner_id": str(seed.user("member2").id),
        },
    )
    assert response.status_code == 200, response.text
    assert "New title" in response.text and "Longer text" in response.text
    assert "Owner: Max" in response.text and "due 3 Feb 2031" in response.text
    assert item_state(seed, item_id)[2] == version + 1
    assert "edited class_of_service, description, due_date, title" in response.text
    assert "assigned it to Max" in response.text
    # Without JS: the same form redirects back to the item page.
    plain = client.post(
        f"/items/{item_id}/edit",
        data={"csrf_token": client.csrf_token, "version": str(version + 1), "title": "Plain"},  # type: ignore[attr-defined]
        follow_redirects=False,
    )
    assert plain.status_code == 303 and plain.headers["location"] == f"/items/{item_id}"


def test_stale_edit_says_so_and_shows_newer_values(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, "Original", into="Build")
    stale = item_state(seed, item_id)[2]
    with seed.database.unit_of_work() as session:
        items.edit_item(
            session=session,
            item_id=item_id,
            actor=seed.user("member2"),
            version=stale,
            changes={"title": "Changed by Max"},
        )
    sign_in(client, seed.user("member"))
    response = detail_post(
        client, f"/items/{item_id}/edit", {"version": str(stale), "title": "My overwrite"}
    )
    assert response.status_code == 409
    assert response.headers["x-flowboard-refusal"] == "1"
    assert re.search(
        r'role="alert"[^>]*>Someone changed this item after you loaded it', response.text
    )
    assert 'value="Changed by Max"' in response.text
    assert f'name="version" value="{stale + 1}"' in response.text
    assert "My overwrite" not in response.text
    page = client.get(f"/items/{item_id}")
    assert "Changed by Max" in page.text and "My overwrite" not in page.text


def test_criteria_toggle_and_rerender(client: TestClient, seed: Seed) -> None:
    exit_id = add_criterion(seed, "Build", "Spell-checked")
    entry_id = add_criterion(seed, "Review", "Reviewer named", gate="entry")
    item_id = add_item(seed, into="Build")
    sign_in(client, seed.user("member"))
    page = client.get(f"/items/{item_id}").text
    assert "Exit (Build): Spell-checked" in page and "Entry (Review): Reviewer named" in page
    response = detail_post(client, f"/items/{item_id}/criteria/{exit_id}", {"met": "1"})
    assert response.status_code == 200
    assert re.search(
        r'name="met" value="1" checked>\s*Exit \(Build\): Spell-checked', response.text
    )
    assert "checked “Spell-checked”" in response.text
    response = detail_post(client, f"/items/{item_id}/criteria/{exit_id}", {})
    assert re.search(r'name="met" value="1">\s*Exit \(Build\): Spell-checked', response.text)
    assert "unchecked “Spell-checked”" in response.text
    response = detail_post(client, f"/items/{item_id}/criteria/{entry_id}", {"met": "1"})
    assert response.status_code == 200
    # Mark ready is refused while the exit criterion is unmet, naming it.
    refused = client.post(
        f"/boards/{seed.board_id}/items/{item_id}/ready", headers=htmx_headers(client)
    )
    assert refused.status_code == 409 and "“Spell-checked”" in refused.text


def test_viewer_cannot_toggle(client: TestClient, seed: Seed) -> None:
    exit_id = add_criterion(seed, "Build", "Spell-checked")
    item_id = add_item(seed, into="Build")
    sign_in(client, seed.user("viewer"))
    page = client.get(f"/items/{item_id}").text
    assert "disabled" in page and "Edit</summary>" not in page
    response = detail_post(client, f"/items/{item_id}/criteria/{exit_id}", {"met": "1"})
    assert response.status_code == 403
    assert "Only members and above can check criteria" in response.text


def test_block_and_unblock_with_resolution(client: TestClient, seed: Seed) -> None:
    from app.db import queries

    item_id = add_item(seed, into="Build")
    with seed.database.unit_of_work(write=False) as session:
        reason = queries.block_reasons(session, seed.board_id)[1]
    sign_in(client, seed.user("member"))
    response = detail_post(
        client,
        f"/items/{item_id}/block",
        {"reason_id": str(reason.id), "note": "needs sign-off", "waiting_on": "CFO"},
    )
    assert response.status_code == 200
    assert f"{reason.name} · waits on CFO · needs sign-off" in response.text
    assert "Resolution note" in response.text
    again = detail_post(client, f"/items/{item_id}/block", {"reason_id": str(reason.id)})
    assert again.status_code == 409 and "already blocked" in again.text
    response = detail_post(client, f"/items/{item_id}/unblock", {"note": "CFO said yes"})
    assert response.status_code == 200
    assert "blockbadge" not in response.text
    assert "resolved: CFO said yes" in response.text
    assert f"resolved the block ({reason.name}): CFO said yes" in response.text


def test_send_back_and_discard(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, into="Review")
    sign_in(client, seed.user("reviewer"))
    response = detail_post(
        client,
        f"/items/{item_id}/send-back",
        {"to_state_id": str(seed.state_id("Build")), "reason": "figures missing"},
    )
    assert response.status_code == 200
    assert "sent it back from Review to Build: figures missing" in response.text
    assert item_state(seed, item_id)[0] == seed.state_id("Build")
    option = add_item(seed, "an option")
    sign_in(client, seed.user("member"))
    refused = detail_post(client, f"/items/{option}/discard", {"reason": ""})
    assert refused.status_code == 422 and "a reason is required" in refused.text
    response = detail_post(client, f"/items/{option}/discard", {"reason": "duplicate"})
    assert response.status_code == 200
    assert "Discarded: duplicate" in response.text


def test_comments(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed)
    sign_in(client, seed.user("member"))
    response = detail_post(client, f"/items/{item_id}/comments", {"body": "Looks good to me"})
    assert response.status_code == 200
    assert "<b>Sam</b>" in response.text and "Looks good to me" in response.text
    empty = detail_post(client, f"/items/{item_id}/comments", {"body": "  "})
    assert empty.status_code == 422 and 'role="alert"' in empty.text


def test_timeline_lists_every_event_with_durations(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, into="Build", ready=True)
    block(seed, item_id)
    sign_in(client, seed.user("member"))
    page = client.get(f"/items/{item_id}").text
    timeline = page[page.index('<ol class="timeline">') : page.index("</ol>")]
    entries = re.findall(r"<li class=\"([a-z_]+)\"><b>([^<]+)</b> ([^<·]+)", timeline)
    assert [(t, who) for t, who, _ in entries] == [
        ("created", "Sam"),
        ("pulled", "Sam"),
        ("marked_ready", "Sam"),
        ("blocked", "Sam"),
    ]
    assert "pulled it from Backlog into Build" in timeline
    assert timeline.count("after the previous event") == 3
