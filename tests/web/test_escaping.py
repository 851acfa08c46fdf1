"""User text is escaped on every page and fragment (stored XSS stays text)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.services import blocks, boards, items
from tests.factories import Seed
from tests.web.helpers import add_item, sign_in

EVIL = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def test_titles_notes_names_and_reasons_are_escaped(client: TestClient, seed: Seed) -> None:
    item_id = add_item(seed, EVIL, into="Build")
    with seed.database.unit_of_work() as session:
        admin = seed.user("admin")
        reason = boards.add_block_reason(
            session=session, board_id=seed.board_id, actor=admin, name="<b>bold</b> reason"
        )
        boards.add_criterion(
            session=session,
            state_id=seed.state_id("Build"),
            actor=admin,
            text="<script>x()</script>",
            gate="exit",
        )
        blocks.block_item(
            session=session,
            item_id=item_id,
            actor=seed.user("member"),
            reason_id=reason.id,
            note=EVIL,
            waiting_on='"><svg onload=alert(2)>',
        )
        blocks.add_comment(session=session, item_id=item_id, actor=seed.user("member"), body=EVIL)
        detail = items.get_item(session=session, item_id=item_id, actor=admin)
        items.edit_item(
            session=session,
            item_id=item_id,
            actor=admin,
            version=detail.item.version,
            changes={"description": EVIL},
        )
    sign_in(client, seed.user("member"))
    pages = {
        "board": client.get(f"/boards/{seed.board_id}"),
        "board fragment": client.get(f"/boards/{seed.board_id}", headers={"HX-Request": "true"}),
        "item": client.get(f"/items/{item_id}"),
        "drawer": client.get(f"/items/{item_id}", headers={"HX-Request": "true"}),
        "me": client.get("/me"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        html = response.text
        assert EVIL not in html, name
        assert "<svg" not in html and "<b>bold</b>" not in html, name
        assert "<script>x()" not in html, name
        assert ESCAPED in html, name
    item_html = pages["item"].text
    assert "&lt;b&gt;bold&lt;/b&gt; reason" in item_html
    assert "&lt;script&gt;x()&lt;/script&gt;" in item_html
    assert "&#34;&gt;&lt;svg onload=alert(2)&gt;" in item_html


def test_names_are_escaped(client: TestClient, seed: Seed) -> None:
    from app.db.models import User

    with seed.database.unit_of_work() as session:
        user = session.get(User, seed.user("member").id)
        assert user is not None
        user.name = EVIL
    add_item(seed, "plain", into="Build")
    sign_in(client, seed.user("member"))
    for url in (f"/boards/{seed.board_id}", "/me"):
        html = client.get(url).text
        assert EVIL not in html and ESCAPED in html
