"""API tokens: named, scoped, optionally expiring, shown once, stored hashed, listed, revocable."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.db.models import ApiToken, AuditEvent
from app.db.session import Database
from tests.api.helpers import Api, problem


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _create(api: Api, role: str = "member", **body: Any) -> dict[str, Any]:
    created: dict[str, Any] = api.ok(
        api.post(role, "/tokens", {"name": "Report script", "scope": "read", **body}), 201
    )
    return created


def _token_row(database: Database, token_id: int) -> ApiToken:
    with database.unit_of_work(write=False) as session:
        row = session.get(ApiToken, token_id)
        assert row is not None
        return row


def _set_token(database: Database, token_id: int, **values: Any) -> None:
    with database.unit_of_work() as session:
        row = session.get(ApiToken, token_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)


def _audit_types(database: Database) -> list[str]:
    with database.unit_of_work(write=False) as session:
        return list(session.scalars(select(AuditEvent.type).order_by(AuditEvent.id)))


def test_create_shows_the_token_once_and_stores_only_its_hash(api: Api, database: Database) -> None:
    response = api.post("member", "/tokens", {"name": "Report script", "scope": "read"})
    created = api.ok(response, 201)
    assert set(created) == {
        "id",
        "name",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "token",
    }
    assert created["name"] == "Report script"
    assert created["scope"] == "read"
    assert created["expires_at"] is None
    assert response.headers["location"] == f"/api/v1/tokens/{created['id']}"
    row = _token_row(database, created["id"])
    assert row.token_hash == hashlib.sha256(created["token"].encode()).hexdigest()
    assert created["token"] not in row.token_hash
    # The new token works, and the list never shows a secret again.
    me = api.client.get("/api/v1/me", headers=_bearer(created["token"]))
    assert me.status_code == 200
    assert me.json()["id"] == api.seed.user("member").id
    listed = api.ok(api.get("member", "/tokens"))
    mine = next(t for t in listed if t["id"] == created["id"])
    assert "token" not in mine
    assert mine["name"] == "Report script"


def test_tokens_from_signing_in_are_listed_without_a_name(api: Api) -> None:
    api.headers("member")  # signs in through POST /auth/token
    listed = api.ok(api.get("member", "/tokens"))
    assert len(listed) == 1
    assert listed[0]["name"] is None
    assert listed[0]["scope"] == "write"
    # Only my own tokens are listed.
    api.headers("member2")
    assert len(api.ok(api.get("member", "/tokens"))) == 1


def test_read_token_is_refused_every_write_with_insufficient_scope(api: Api) -> None:
    token = _create(api, scope="read")["token"]
    headers = _bearer(token)
    client = api.client
    board = f"/api/v1/boards/{api.board_id}"
    assert client.get(f"{board}/items", headers=headers).status_code == 200
    item = api.new_item()
    writes = [
        ("POST", f"{board}/items", {"title": "Sneaky"}),
        ("PATCH", f"/api/v1/items/{item['id']}", {"title": "Renamed"}),
        ("POST", f"/api/v1/items/{item['id']}/pull", None),
        ("POST", "/api/v1/tokens", {"name": "More", "scope": "write"}),
        ("DELETE", "/api/v1/tokens/1", None),
        ("POST", "/api/v1/users/me/password", {"current_password": "x", "new_password": "y" * 9}),
    ]
    for method, path, body in writes:
        response = client.request(method, path, json=body, headers=headers)
        problem(response, 403, "insufficient-scope")
    assert api.ok(api.get("member", f"/items/{item['id']}"))["title"] == "Write the policy"


def test_read_token_may_still_revoke_itself(api: Api) -> None:
    token = _create(api, scope="read")["token"]
    assert api.client.delete("/api/v1/auth/token", headers=_bearer(token)).status_code == 204
    problem(api.client.get("/api/v1/me", headers=_bearer(token)), 401, "not-authenticated")


def test_write_token_may_write(api: Api) -> None:
    token = _create(api, scope="write")["token"]
    response = api.client.post(
        f"/api/v1/boards/{api.board_id}/items", json={"title": "Scripted"}, headers=_bearer(token)
    )
    assert response.status_code == 201, response.text


def test_expired_token_is_401(api: Api, database: Database) -> None:
    later = datetime.now(UTC) + timedelta(days=7)
    created = _create(api, expires_at=later.isoformat())
    assert abs(datetime.fromisoformat(created["expires_at"]) - later) < timedelta(seconds=1)
    headers = _bearer(created["token"])
    assert api.client.get("/api/v1/me", headers=headers).status_code == 200
    _set_token(database, created["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    problem(api.client.get("/api/v1/me", headers=headers), 401, "not-authenticated")
    # Still listed (marked by its expiry), so it can be tidied away.
    assert any(t["id"] == created["id"] for t in api.ok(api.get("member", "/tokens")))


def test_bad_token_requests_are_422(api: Api) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body in (
        {"name": "x", "scope": "admin"},
        {"name": "", "scope": "read"},
        {"name": "   ", "scope": "read"},
        {"name": "x" * 121, "scope": "read"},
        {"scope": "read"},
        {"name": "x"},
        {"name": "x", "scope": "read", "expires_at": past},
        {"name": "x", "scope": "read", "expires_at": "tomorrow"},
        {"name": "x", "scope": "read", "user_id": 1},
    ):
        problem(api.post("member", "/tokens", body), 422, "validation")
    # Nothing was created: only the token the requests were signed in with.
    assert [t["name"] for t in api.ok(api.get("member", "/tokens"))] == [None]


def test_revoke_ends_the_token_and_only_the_owner_may(api: Api, database: Database) -> None:
    created = _create(api)
    headers = _bearer(created["token"])
    problem(api.delete("member2", f"/tokens/{created['id']}"), 404, "not-found")
    assert api.client.get("/api/v1/me", headers=headers).status_code == 200
    assert api.delete("member", f"/tokens/{created['id']}").status_code == 204
    problem(api.client.get("/api/v1/me", headers=headers), 401, "not-authenticated")
    problem(api.delete("member", f"/tokens/{created['id']}"), 404, "not-found")
    assert all(t["id"] != created["id"] for t in api.ok(api.get("member", "/tokens")))
    problem(api.delete("member", "/tokens/2147483648"), 422, "validation")
    types = _audit_types(database)
    assert types.count("token_created") == 1
    assert types.count("token_revoked") == 1


def test_last_used_is_written_at_most_once_a_minute(api: Api, database: Database) -> None:
    created = _create(api, scope="write")
    headers = _bearer(created["token"])
    assert created["last_used_at"] is None
    assert api.client.get("/api/v1/me", headers=headers).status_code == 200
    first = _token_row(database, created["id"]).last_used_at
    assert first is not None
    assert api.client.get("/api/v1/me", headers=headers).status_code == 200
    assert _token_row(database, created["id"]).last_used_at == first
    # A minute later the next use (a write this time) moves it on.
    earlier = first - timedelta(minutes=2)
    _set_token(database, created["id"], last_used_at=earlier)
    response = api.client.post(
        f"/api/v1/boards/{api.board_id}/items", json={"title": "Used"}, headers=headers
    )
    assert response.status_code == 201
    moved = _token_row(database, created["id"]).last_used_at
    assert moved is not None and moved > earlier
    listed = next(t for t in api.ok(api.get("member", "/tokens")) if t["id"] == created["id"])
    assert listed["last_used_at"] is not None
