"""/admin/audit and /admin/audit.csv: site admins only, filters, paging, neutralised CSV;
and the pages' 403 refusals recorded as `permission_refused`."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db.models import AuditEvent
from app.db.session import Database
from app.services import audit, items, users
from tests.factories import PASSWORD, Seed
from tests.web.helpers import sign_in


def add_event(database: Database, *, at: datetime | None = None, **fields: object) -> None:
    with database.unit_of_work() as session:
        audit.record(session, now=at, **fields)  # type: ignore[arg-type]


def refusals(database: Database) -> list[AuditEvent]:
    with database.unit_of_work() as session:
        query = select(AuditEvent).where(AuditEvent.type == "permission_refused")
        return list(session.scalars(query.order_by(AuditEvent.id)))


def rows_of(page_html: str) -> int:
    return page_html.count('<tr id="audit-')


def test_admins_see_the_trail_newest_first(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("admin"))
    page = client.get("/admin/audit")
    assert page.status_code == 200
    assert '<a href="/admin/audit" aria-current="page">Audit trail</a>' in page.text
    assert "<h1>Audit trail</h1>" in page.text
    # The seed's five memberships and the admin's sign-in; the sign-in is the newest.
    assert rows_of(page.text) == 6
    first_row = page.text.index('<tr id="audit-')
    assert "signed_in" in page.text[first_row : first_row + 400]
    assert seed.user("admin").email in page.text
    assert page.text.count("<td>member_added</td>") == 5


def test_the_admin_nav_links_the_trail(client: TestClient, seed: Seed) -> None:
    sign_in(client, seed.user("admin"))
    assert 'href="/admin/audit"' in client.get("/admin/users").text


@pytest.mark.parametrize("role", ["manager", "member", "viewer", "outsider"])
def test_others_get_a_403_page_and_the_refusal_is_recorded(
    client: TestClient, seed: Seed, role: str
) -> None:
    sign_in(client, seed.user(role))
    for path in ("/admin/audit", "/admin/audit.csv"):
        refused = client.get(path)
        assert refused.status_code == 403
        assert "site admins" in refused.text
        assert "<table" not in refused.text
    found = refusals(seed.database)
    assert [(r.actor_id, r.ip, r.data["method"], r.data["path"]) for r in found] == [
        (seed.user(role).id, "testclient", "GET", "/admin/audit"),
        (seed.user(role).id, "testclient", "GET", "/admin/audit.csv"),
    ]


def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient, seed: Seed) -> None:
    response = client.get("/admin/audit", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    assert refusals(seed.database) == []


def test_a_refused_board_action_on_a_page_is_recorded(client: TestClient, seed: Seed) -> None:
    viewer = sign_in(client, seed.user("viewer"))
    refused = viewer.post(
        f"/boards/{seed.board_id}/items",
        data={"csrf_token": viewer.csrf_token, "title": "Not mine to add"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    (refusal,) = refusals(seed.database)
    assert (refusal.actor_id, refusal.board_id, refusal.data["method"]) == (
        seed.user("viewer").id,
        seed.board_id,
        "POST",
    )
    assert refusal.data["path"] == f"/boards/{seed.board_id}/items"


def test_filter_by_type_actor_and_dates(client: TestClient, seed: Seed) -> None:
    database = seed.database
    member = seed.user("member")
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    add_event(database, type="token_created", actor_id=member.id, data={"name": "ci"}, at=today)
    add_event(
        database,
        type="token_created",
        actor_id=seed.user("manager").id,
        data={"name": "old"},
        at=today - timedelta(days=10),
    )
    admin = sign_in(client, seed.user("admin"))

    by_type = admin.get("/admin/audit", params={"type": "token_created"})
    assert rows_of(by_type.text) == 2
    assert '<option value="token_created" selected>' in by_type.text

    by_actor = admin.get("/admin/audit", params={"type": "token_created", "actor": member.email})
    assert rows_of(by_actor.text) == 1 and "name: ci" in by_actor.text
    assert f'value="{member.email}"' in by_actor.text

    day = (today - timedelta(days=10)).date().isoformat()
    by_date = admin.get("/admin/audit", params={"since": day, "until": day})
    assert rows_of(by_date.text) == 1 and "name: old" in by_date.text

    nobody = admin.get("/admin/audit", params={"actor": "nobody@example.org"})
    assert rows_of(nobody.text) == 0 and "No events match." in nobody.text


@pytest.mark.parametrize(
    "params",
    [
        {"type": "no_such_type"},
        {"since": "yesterday"},
        {"since": "2026-12-08", "until": "2026-12-01"},
        {"before": "-1"},
        {"before": "99999999999999"},
    ],
)
def test_bad_filters_show_a_readable_alert(
    client: TestClient, seed: Seed, params: dict[str, str]
) -> None:
    admin = sign_in(client, seed.user("admin"))
    page = admin.get("/admin/audit", params=params)
    assert page.status_code == 422
    assert 'role="alert"' in page.text
    assert rows_of(page.text) == 0


def test_paging_goes_back_in_time(client: TestClient, seed: Seed) -> None:
    with seed.database.unit_of_work() as session:
        for n in range(130):
            audit.record(session, type="throttled", ip=f"192.0.2.{n}", data={"n": n})
    admin = sign_in(client, seed.user("admin"))
    first = admin.get("/admin/audit", params={"type": "throttled"})
    assert rows_of(first.text) == 100
    assert "n: 129" in first.text and "n: 30<" in first.text and "n: 29<" not in first.text
    older = first.text.split('href="/admin/audit?', 1)[1].split('">Older events', 1)[0]
    assert "type=throttled" in older and "before=" in older
    second = admin.get("/admin/audit?" + older.replace("&amp;", "&"))
    assert rows_of(second.text) == 30
    assert "n: 29<" in second.text and "n: 0<" in second.text and "n: 30<" not in second.text
    assert "Older events" not in second.text
    assert ">Newest</a>" in second.text


def test_the_csv_has_the_same_filters_and_every_match(client: TestClient, seed: Seed) -> None:
    database = seed.database
    member = seed.user("member")
    add_event(database, type="token_revoked", actor_id=member.id, ip="192.0.2.1", data={"id": 7})
    admin = sign_in(client, seed.user("admin"))
    response = admin.get("/admin/audit.csv", params={"type": "token_revoked"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="audit.csv"'
    assert response.headers["cache-control"] == "no-store"
    assert response.text.endswith("\r\n")
    table = list(csv.reader(io.StringIO(response.text, newline="")))
    assert table[0] == list(audit.CSV_COLUMNS)
    assert len(table) == 2
    row = dict(zip(table[0], table[1], strict=True))
    assert (row["type"], row["actor_id"], row["actor_email"], row["ip"], row["board_id"]) == (
        "token_revoked",
        str(member.id),
        member.email,
        "192.0.2.1",
        "",
    )
    assert row["data"] == '{"id": 7}'
    everything = admin.get("/admin/audit.csv")
    assert len(list(csv.reader(io.StringIO(everything.text, newline="")))) == 1 + 6 + 1
    page_link = admin.get("/admin/audit", params={"type": "token_revoked"}).text
    assert 'href="/admin/audit.csv?type=token_revoked"' in page_link


def test_csv_cells_are_neutralised(client: TestClient, app: FastAPI, seed: Seed) -> None:
    with seed.database.unit_of_work() as session:
        users.create_user(
            session=session, email="=1+2@example.org", name="Formula", password=PASSWORD
        )
    with TestClient(app, client=("=cmd|' /C calc'!A0", 40000)) as odd:
        assert (
            odd.post(
                "/api/v1/auth/token",
                data={"username": "=1+2@example.org", "password": PASSWORD},
            ).status_code
            == 200
        )
    admin = sign_in(client, seed.user("admin"))
    text = admin.get("/admin/audit.csv", params={"actor": "=1+2@example.org"}).text
    table = list(csv.reader(io.StringIO(text, newline="")))
    row = dict(zip(table[0], table[1], strict=True))
    assert row["type"] == "signed_in"
    assert row["actor_email"] == "'=1+2@example.org"
    assert row["ip"] == "'=cmd|' /C calc'!A0"


def test_event_details_are_escaped_on_the_page(client: TestClient, seed: Seed) -> None:
    add_event(
        seed.database,
        type="wip_override",
        actor_id=seed.user("manager").id,
        board_id=seed.board_id,
        data={"reason": "<script>alert(1)</script>"},
    )
    admin = sign_in(client, seed.user("admin"))
    page = admin.get("/admin/audit", params={"type": "wip_override"})
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert f'href="/boards/{seed.board_id}"' in page.text


def test_a_refused_item_action_on_a_page_names_the_item_board(
    client: TestClient, seed: Seed
) -> None:
    with seed.database.unit_of_work() as session:
        item_id = items.create_item(
            session=session, board_id=seed.board_id, actor=seed.user("member"), title="Policy"
        ).item.id
    viewer = sign_in(client, seed.user("viewer"))
    refused = viewer.post(
        f"/items/{item_id}/pull", data={"csrf_token": viewer.csrf_token}, follow_redirects=False
    )
    assert refused.status_code == 403
    (refusal,) = refusals(seed.database)
    assert (refusal.actor_id, refusal.board_id, refusal.data["path"]) == (
        seed.user("viewer").id,
        seed.board_id,
        f"/items/{item_id}/pull",
    )


def test_a_refused_settings_change_is_recorded(client: TestClient, seed: Seed) -> None:
    """The settings pages re-raise the refusal to the central error page (a write request)."""
    member = sign_in(client, seed.user("member"))
    refused = member.post(
        f"/boards/{seed.board_id}/settings/board",
        data={"csrf_token": member.csrf_token, "name": "Mine now"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    (refusal,) = refusals(seed.database)
    assert (refusal.actor_id, refusal.board_id, refusal.data["method"]) == (
        seed.user("member").id,
        seed.board_id,
        "POST",
    )
