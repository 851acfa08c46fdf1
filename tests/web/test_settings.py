"""Board settings pages: states, criteria, block reasons, members; refusals, access, CSRF."""

from __future__ import annotations

import html as html_lib
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import queries
from app.db.models import Board, Criterion, Event, Membership, State
from app.services import boards, items
from tests.factories import Seed, make_user
from tests.web.helpers import SignedIn, htmx_headers, sign_in


def url(seed: Seed, path: str = "") -> str:
    return f"/boards/{seed.board_id}/settings{path}"


def post(client: SignedIn, target: str, **data: object) -> httpx.Response:
    return client.post(
        target, data={"csrf_token": client.csrf_token, **data}, follow_redirects=False
    )


def states(seed: Seed) -> list[tuple[str, int | None, str]]:
    """(name, WIP limit, pull role) of the board's states, in flow order, read afresh."""
    with seed.database.unit_of_work(write=False) as session:
        return [
            (s.name, s.wip_limit, s.pull_role) for s in queries.states_of(session, seed.board_id)
        ]


def criteria(seed: Seed, state_name: str) -> list[tuple[str, str]]:
    with seed.database.unit_of_work(write=False) as session:
        rows = session.scalars(
            select(Criterion)
            .join(State, State.id == Criterion.state_id)
            .where(State.board_id == seed.board_id, State.name == state_name)
            .order_by(Criterion.gate, Criterion.position)
        )
        return [(c.gate, c.text) for c in rows]


def roles(seed: Seed) -> dict[str, str]:
    with seed.database.unit_of_work(write=False) as session:
        return {u.name: m.role for m, u in queries.members(session, seed.board_id)}


def event_count(seed: Seed) -> int:
    with seed.database.unit_of_work(write=False) as session:
        return len(list(session.scalars(select(Event.id).where(Event.board_id == seed.board_id))))


def alert_text(html: str) -> str:
    found = re.search(r'<div class="alert" role="alert"[^>]*>([^<]*)</div>', html)
    assert found, "no role=alert message in the page"
    return html_lib.unescape(found.group(1))


@pytest.fixture
def manager(client: TestClient, seed: Seed) -> SignedIn:
    return sign_in(client, seed.user("manager"))


def test_manager_sees_every_section_with_labelled_fields(manager: SignedIn, seed: Seed) -> None:
    page = manager.get(url(seed))
    assert page.status_code == 200
    html = page.text
    for heading in ("Board", "States and criteria", "Block reasons", "Members and roles"):
        assert f">{heading}</h2>" in html
    for name in ("Backlog", "Build", "Review", "Done"):
        assert f'value="{name}"' in html
    build = seed.state_id("Build")
    assert f'<label for="state-{build}-limit">WIP limit</label>' in html
    assert f'id="state-{build}-limit" name="wip_limit" type="number"' in html
    assert f'<label for="state-{build}-role">' in html
    # Every visible input has a label pointing at it.
    ids = re.findall(r'<(?:input|select)[^>]* id="([^"]+)"', html)
    assert ids
    for field_id in ids:
        assert f'for="{field_id}"' in html, field_id
    # Delete only for work states; move buttons only where a move is possible.
    assert html.count(">Delete state<") == 2
    assert html.count(">Move up<") == 1 and html.count(">Move down<") == 1
    assert html.count('name="csrf_token"') > 10
    assert "Waiting for information" in html  # a default block reason


def test_admin_who_is_not_a_member_may_configure(client: TestClient, seed: Seed) -> None:
    with seed.database.unit_of_work() as session:
        other_admin = make_user(session, "Ada", is_admin=True)
    signed = sign_in(client, other_admin)
    assert signed.get(url(seed)).status_code == 200


def test_add_state_redirects_back_and_adds_it_before_done(manager: SignedIn, seed: Seed) -> None:
    response = post(manager, url(seed, "/states"), name="Test", wip_limit="4", pull_role="reviewer")
    assert response.status_code == 303
    assert response.headers["location"] == url(seed) + "#settings-states"
    assert states(seed) == [
        ("Backlog", None, "member"),
        ("Build", 3, "member"),
        ("Review", 2, "reviewer"),
        ("Test", 4, "reviewer"),
        ("Done", None, "member"),
    ]
    assert 'value="Test"' in manager.get(url(seed)).text


def test_add_state_without_limit_means_no_limit(manager: SignedIn, seed: Seed) -> None:
    assert post(manager, url(seed, "/states"), name="Polish", wip_limit="").status_code == 303
    assert ("Polish", None, "member") in states(seed)


def test_rename_limit_and_pull_role_of_a_state(manager: SignedIn, seed: Seed) -> None:
    build = seed.state_id("Build")
    response = post(
        manager, url(seed, f"/states/{build}"), name="Make", wip_limit="5", pull_role="reviewer"
    )
    assert response.status_code == 303
    assert states(seed)[1] == ("Make", 5, "reviewer")
    # Emptying the limit removes it.
    post(manager, url(seed, f"/states/{build}"), name="Make", wip_limit="", pull_role="member")
    assert states(seed)[1] == ("Make", None, "member")


def test_limit_on_the_backlog_and_rename_done(manager: SignedIn, seed: Seed) -> None:
    post(manager, url(seed, f"/states/{seed.state_id('Backlog')}"), name="Options", wip_limit="9")
    post(manager, url(seed, f"/states/{seed.state_id('Done')}"), name="Delivered")
    assert states(seed)[0] == ("Options", 9, "member")
    assert states(seed)[-1][0] == "Delivered"


def test_duplicate_state_name_is_refused_next_to_the_form(manager: SignedIn, seed: Seed) -> None:
    before = event_count(seed)
    review = seed.state_id("Review")
    response = post(manager, url(seed, f"/states/{review}"), name="build", wip_limit="2")
    assert response.status_code == 422
    assert alert_text(response.text) == "This board already has a state named build."
    # The alert sits in the Review state's block, and what was typed is kept.
    block = response.text.split(f'<li id="state-{review}">', 1)[1].split("</li>", 1)[0]
    assert 'role="alert"' in block and 'value="build"' in block
    assert [s[0] for s in states(seed)] == ["Backlog", "Build", "Review", "Done"]
    assert event_count(seed) == before


def test_bad_limit_is_refused(manager: SignedIn, seed: Seed) -> None:
    build = seed.state_id("Build")
    response = post(manager, url(seed, f"/states/{build}"), name="Build", wip_limit="0")
    assert response.status_code == 422
    assert "wip_limit must be empty or between 1 and 10000." in alert_text(response.text)
    response = post(manager, url(seed, f"/states/{build}"), name="Build", wip_limit="many")
    assert response.status_code == 422
    assert alert_text(response.text) == "WIP limit must be a number."
    assert states(seed)[1] == ("Build", 3, "member")


def test_move_states_up_and_down(manager: SignedIn, seed: Seed) -> None:
    review = seed.state_id("Review")
    response = post(manager, url(seed, f"/states/{review}/move"), direction="up")
    assert response.status_code == 303
    assert [s[0] for s in states(seed)] == ["Backlog", "Review", "Build", "Done"]
    post(manager, url(seed, f"/states/{review}/move"), direction="down")
    assert [s[0] for s in states(seed)] == ["Backlog", "Build", "Review", "Done"]
    # The first work state cannot move above the backlog: refused, nothing changed.
    refused = post(manager, url(seed, f"/states/{seed.state_id('Build')}/move"), direction="up")
    assert refused.status_code == 422
    assert "position is 1 to 2" in alert_text(refused.text)
    assert [s[0] for s in states(seed)] == ["Backlog", "Build", "Review", "Done"]


def test_move_buttons_are_plain_keyboard_buttons(manager: SignedIn, seed: Seed) -> None:
    html = manager.get(url(seed)).text
    review = seed.state_id("Review")
    assert f'action="/boards/{seed.board_id}/settings/states/{review}/move"' in html
    assert '<button type="submit">Move up<span class="sr-only">: Review</span></button>' in html
    assert '<button type="submit">Move down<span class="sr-only">: Build</span></button>' in html


def test_delete_an_empty_work_state(manager: SignedIn, seed: Seed) -> None:
    response = post(manager, url(seed, f"/states/{seed.state_id('Review')}/delete"))
    assert response.status_code == 303
    assert [s[0] for s in states(seed)] == ["Backlog", "Build", "Done"]


def test_delete_a_state_holding_items_shows_the_rule_and_keeps_it(
    manager: SignedIn, seed: Seed
) -> None:
    with seed.database.unit_of_work() as session:
        detail = items.create_item(
            session=session, board_id=seed.board_id, actor=seed.user("member"), title="Report"
        )
        items.pull_item(session=session, item_id=detail.item.id, actor=seed.user("member"))
    build = seed.state_id("Build")
    before = event_count(seed)
    response = post(manager, url(seed, f"/states/{build}/delete"))
    assert response.status_code == 409
    assert alert_text(response.text) == (
        "Build still holds 1 item(s): move them on or discard them first."
    )
    block = response.text.split(f'<li id="state-{build}">', 1)[1].split("</li>", 1)[0]
    assert 'role="alert"' in block
    assert [s[0] for s in states(seed)] == ["Backlog", "Build", "Review", "Done"]
    assert event_count(seed) == before

    # With htmx: the states panel alone, with the alert, swapped in (200 + refusal header).
    htmx = manager.post(url(seed, f"/states/{build}/delete"), headers=htmx_headers(manager))
    assert htmx.status_code == 200
    assert htmx.headers["x-flowboard-refusal"] == "1"
    assert "HX-Request" in htmx.headers["vary"].split(", ")
    assert htmx.text.lstrip().startswith('<section id="settings-states"')
    assert "<html" not in htmx.text
    assert "Build still holds 1 item(s)" in alert_text(htmx.text)
    assert [s[0] for s in states(seed)] == ["Backlog", "Build", "Review", "Done"]


def test_backlog_and_done_cannot_be_deleted(manager: SignedIn, seed: Seed) -> None:
    response = post(manager, url(seed, f"/states/{seed.state_id('Done')}/delete"))
    assert response.status_code == 409
    assert alert_text(response.text) == "Done is the board's done state and cannot be deleted."
    assert len(states(seed)) == 4


def test_htmx_add_state_returns_the_states_panel(manager: SignedIn, seed: Seed) -> None:
    response = manager.post(
        url(seed, "/states"),
        data={"name": "Check", "wip_limit": "2"},
        headers=htmx_headers(manager),
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="settings-states"')
    assert 'value="Check"' in response.text
    assert 'role="alert"' not in response.text
    assert "x-flowboard-refusal" not in response.headers
    assert ("Check", 2, "member") in states(seed)


def test_add_and_delete_criteria(manager: SignedIn, seed: Seed) -> None:
    review = seed.state_id("Review")
    assert (
        post(
            manager, url(seed, f"/states/{review}/criteria"), text="Self-check done", gate="entry"
        ).status_code
        == 303
    )
    post(manager, url(seed, f"/states/{review}/criteria"), text="Comments resolved", gate="exit")
    assert criteria(seed, "Review") == [("entry", "Self-check done"), ("exit", "Comments resolved")]
    html = manager.get(url(seed)).text
    assert "Self-check done" in html and "Entry criteria (definition of ready)" in html
    with seed.database.unit_of_work(write=False) as session:
        entry_id = session.scalar(select(Criterion.id).where(Criterion.text == "Self-check done"))
    response = post(manager, url(seed, f"/criteria/{entry_id}/delete"))
    assert response.status_code == 303
    assert criteria(seed, "Review") == [("exit", "Comments resolved")]


def test_criterion_the_gate_does_not_allow_is_refused(manager: SignedIn, seed: Seed) -> None:
    backlog = seed.state_id("Backlog")
    response = post(manager, url(seed, f"/states/{backlog}/criteria"), text="Sized", gate="entry")
    assert response.status_code == 422
    assert alert_text(response.text) == (
        "Nothing is pulled into the backlog, so it has no entry criteria."
    )
    assert 'value="Sized"' in response.text
    assert criteria(seed, "Backlog") == []


def test_add_block_reason_and_refuse_a_duplicate(manager: SignedIn, seed: Seed) -> None:
    assert post(manager, url(seed, "/reasons"), name="Legal hold").status_code == 303
    assert "<li>Legal hold</li>" in manager.get(url(seed)).text
    response = post(manager, url(seed, "/reasons"), name="legal hold")
    assert response.status_code == 422
    assert alert_text(response.text) == "This board already has the block reason legal hold."
    with seed.database.unit_of_work(write=False) as session:
        names = [r.name for r in queries.block_reasons(session, seed.board_id)]
    assert names.count("Legal hold") == 1 and "legal hold" not in names


def test_board_name_personal_limit_and_expedite(manager: SignedIn, seed: Seed) -> None:
    response = post(manager, url(seed, "/board"), name="Reviews", personal_wip_limit="2")
    assert response.status_code == 303
    with seed.database.unit_of_work(write=False) as session:
        board = session.get(Board, seed.board_id)
        assert board is not None
        assert (board.name, board.personal_wip_limit) == ("Reviews", 2)
        assert board.expedite_exceeds_limits is False  # the unchecked box
    post(
        manager,
        url(seed, "/board"),
        name="Reviews",
        personal_wip_limit="",
        expedite_exceeds_limits="1",
    )
    with seed.database.unit_of_work(write=False) as session:
        board = session.get(Board, seed.board_id)
        assert board is not None
        assert (board.personal_wip_limit, board.expedite_exceeds_limits) == (None, True)
    refused = post(manager, url(seed, "/board"), name="   ")
    assert refused.status_code == 422
    assert alert_text(refused.text) == "A board name needs 1 to 120 characters."


def test_members_add_change_and_remove(manager: SignedIn, seed: Seed) -> None:
    otto = seed.user("outsider")
    response = post(manager, url(seed, "/members"), email="OTTO@example.org", role="reviewer")
    assert response.status_code == 303
    assert response.headers["location"] == url(seed) + "?notice=member-added#settings-members"
    assert roles(seed)["Otto"] == "reviewer"
    assert post(manager, url(seed, f"/members/{otto.id}"), role="viewer").status_code == 303
    assert roles(seed)["Otto"] == "viewer"
    assert post(manager, url(seed, f"/members/{otto.id}/remove")).status_code == 303
    assert "Otto" not in roles(seed)
    assert "otto@example.org" not in manager.get(url(seed)).text


def test_adding_an_unknown_email_or_a_member_again_changes_nothing(
    manager: SignedIn, seed: Seed
) -> None:
    # The same answer either way (no account enumeration): tests/web/test_members.py.
    before = roles(seed)
    for email in ("nobody@example.org", "sam@example.org"):
        response = post(manager, url(seed, "/members"), email=email, role="viewer")
        assert response.status_code == 303
    assert roles(seed) == before


def test_the_last_manager_cannot_step_down(manager: SignedIn, seed: Seed) -> None:
    admin = seed.user("admin")  # the board's creator, also a manager; only they may leave
    with seed.database.unit_of_work() as session:
        boards.remove_member(session=session, board_id=seed.board_id, user_id=admin.id, actor=admin)
    mia = seed.user("manager")
    for response in (
        post(manager, url(seed, f"/members/{mia.id}"), role="member"),
        post(manager, url(seed, f"/members/{mia.id}/remove")),
    ):
        assert response.status_code == 422
        assert alert_text(response.text) == (
            "A board needs at least one manager; appoint another one first."
        )
        row = response.text.split(f'<tr id="member-{mia.id}">', 1)[1].split("</tr>", 1)[0]
        assert 'role="alert"' in row
    assert roles(seed)["Mia"] == "manager"


def test_a_manager_who_steps_down_leaves_the_settings(manager: SignedIn, seed: Seed) -> None:
    mia = seed.user("manager")
    response = post(manager, url(seed, f"/members/{mia.id}"), role="member")
    assert response.status_code == 303
    assert response.headers["location"] == f"/boards/{seed.board_id}"
    htmx = manager.post(url(seed, f"/members/{mia.id}/remove"), headers=htmx_headers(manager))
    assert htmx.status_code == 403  # no longer a manager: refused, nothing changed
    assert roles(seed)["Mia"] == "member"


@pytest.mark.parametrize("role", ["member", "reviewer", "viewer"])
def test_members_below_manager_are_refused(client: TestClient, seed: Seed, role: str) -> None:
    signed = sign_in(client, seed.user(role))
    page = signed.get(url(seed))
    assert page.status_code == 403
    assert "Only managers and above can change board settings" in alert_text(page.text)
    before = event_count(seed)
    for target, data in (
        (url(seed, "/states"), {"name": "Sneaky"}),
        (url(seed, f"/states/{seed.state_id('Review')}/delete"), {}),
        (url(seed, "/reasons"), {"name": "Sneaky"}),
        (url(seed, "/members"), {"email": "otto@example.org", "role": "manager"}),
        (url(seed, f"/members/{seed.user(role).id}"), {"role": "manager"}),
    ):
        assert post(signed, target, **data).status_code == 403
    assert event_count(seed) == before
    assert roles(seed)[seed.user(role).name] == role
    assert len(states(seed)) == 4


def test_outsiders_get_404(client: TestClient, seed: Seed) -> None:
    signed = sign_in(client, seed.user("outsider"))
    page = signed.get(url(seed))
    assert page.status_code == 404
    assert "Test board" not in page.text
    response = post(signed, url(seed, "/states"), name="Sneaky")
    assert response.status_code == 404
    assert (
        post(signed, url(seed, "/members"), email="otto@example.org", role="manager").status_code
        == 404
    )
    assert "Sneaky" not in [s[0] for s in states(seed)]
    assert "Otto" not in roles(seed)
    assert signed.get("/boards/999999/settings").status_code == 404


def test_ids_from_another_board_are_404(manager: SignedIn, seed: Seed) -> None:
    """A state or criterion id of another board in this board's URL changes nothing."""
    with seed.database.unit_of_work() as session:
        other = boards.create_board(session=session, actor=seed.user("admin"), name="Other")
        boards.set_member(
            session=session,
            board_id=other.id,
            user_id=seed.user("manager").id,
            role="manager",
            actor=seed.user("admin"),
        )
        foreign = queries.states_of(session, other.id)[1]
        criterion = boards.add_criterion(
            session=session, state_id=foreign.id, actor=seed.user("admin"), text="X", gate="exit"
        )
        foreign_id, criterion_id = foreign.id, criterion.id
    assert post(manager, url(seed, f"/states/{foreign_id}"), name="Hijack").status_code == 404
    assert post(manager, url(seed, f"/states/{foreign_id}/delete")).status_code == 404
    assert post(manager, url(seed, f"/criteria/{criterion_id}/delete")).status_code == 404
    with seed.database.unit_of_work(write=False) as session:
        state = session.get(State, foreign_id)
        assert state is not None and state.name == "Doing"
        assert session.get(Criterion, criterion_id) is not None


def test_missing_or_wrong_csrf_token_is_403_and_changes_nothing(
    manager: SignedIn, seed: Seed
) -> None:
    before = event_count(seed)
    build = seed.state_id("Build")
    for token in (None, "not-the-token"):
        data = {"name": "Gone"} if token is None else {"name": "Gone", "csrf_token": token}
        for target in (url(seed, "/states"), url(seed, f"/states/{build}"), url(seed, "/reasons")):
            response = manager.post(target, data=data, follow_redirects=False)
            assert response.status_code == 403
            assert "nothing was changed" in response.text
        response = manager.post(url(seed, f"/states/{build}/delete"), follow_redirects=False)
        assert response.status_code == 403
    assert [s[0] for s in states(seed)] == ["Backlog", "Build", "Review", "Done"]
    assert event_count(seed) == before


def test_user_text_is_escaped(manager: SignedIn, seed: Seed) -> None:
    evil = "<script>x</script>"
    assert post(manager, url(seed, "/states"), name=evil).status_code == 303
    post(manager, url(seed, "/reasons"), name=evil + "!")
    post(manager, url(seed, f"/states/{seed.state_id('Build')}/criteria"), text=evil, gate="exit")
    html = manager.get(url(seed)).text
    assert evil not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert ("<script>x</script>", None, "member") in states(seed)
    # Also in a refusal that echoes the name back.
    refused = post(manager, url(seed, "/states"), name=evil)
    assert refused.status_code == 422
    assert evil not in refused.text
    assert "already has a state named &lt;script&gt;x&lt;/script&gt;." in refused.text


def test_settings_changes_are_recorded_as_events(manager: SignedIn, seed: Seed) -> None:
    post(manager, url(seed, f"/states/{seed.state_id('Build')}"), name="Build", wip_limit="1")
    with seed.database.unit_of_work(write=False) as session:
        last = session.scalars(
            select(Event).where(Event.board_id == seed.board_id).order_by(Event.id.desc())
        ).first()
        assert last is not None and last.type == "state_changed"
        assert last.actor_id == seed.user("manager").id
        assert last.data["changes"] == {"wip_limit": [3, 1]}
        assert session.get(Membership, (seed.board_id, seed.user("manager").id)) is not None


def test_htmx_step_down_redirects_the_whole_page_to_the_board(
    manager: SignedIn, seed: Seed
) -> None:
    mia = seed.user("manager")
    response = manager.post(
        url(seed, f"/members/{mia.id}"), data={"role": "reviewer"}, headers=htmx_headers(manager)
    )
    assert response.status_code == 204
    assert response.headers["hx-redirect"] == f"/boards/{seed.board_id}"
    assert roles(seed)["Mia"] == "reviewer"
