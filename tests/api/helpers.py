"""API test helpers: a client that speaks for a seeded role, builders, problem assertions."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.factories import Seed, token_headers


class Api:
    """`api.post("member", "/boards/1/items", {...})`: the request as that seeded user."""

    def __init__(self, client: TestClient, seed: Seed) -> None:
        self.client = client
        self.seed = seed
        self.board_id = seed.board_id
        self._headers: dict[str, dict[str, str]] = {}

    def headers(self, role: str | None) -> dict[str, str]:
        if role is None:
            return {}
        if role not in self._headers:
            self._headers[role] = token_headers(self.client, self.seed.user(role))
        return self._headers[role]

    def call(
        self, role: str | None, method: str, path: str, body: Any = None, **params: Any
    ) -> httpx.Response:
        return self.client.request(
            method,
            "/api/v1" + path,
            json=body,
            params=params or None,
            headers=self.headers(role),
        )

    def get(self, role: str | None, path: str, **params: Any) -> httpx.Response:
        return self.call(role, "GET", path, **params)

    def post(self, role: str | None, path: str, body: Any = None) -> httpx.Response:
        return self.call(role, "POST", path, body)

    def put(self, role: str | None, path: str, body: Any = None) -> httpx.Response:
        return self.call(role, "PUT", path, body)

    def patch(self, role: str | None, path: str, body: Any = None) -> httpx.Response:
        return self.call(role, "PATCH", path, body)

    def delete(self, role: str | None, path: str) -> httpx.Response:
        return self.call(role, "DELETE", path)

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    # --- builders through the API itself -----------------------------------------------

    def state(self, name: str) -> int:
        return self.seed.state_id(name)

    def reason_id(self, name: str = "Dependency") -> int:
        reasons = self.ok(self.get("member", f"/boards/{self.board_id}/block-reasons"))
        return next(r["id"] for r in reasons if r["name"] == name)

    def new_item(self, by: str = "member", **fields: Any) -> dict[str, Any]:
        body = {"title": "Write the policy", **fields}
        return self.ok(self.post(by, f"/boards/{self.board_id}/items", body), 201)

    def item_in(self, where: str, *, owner: str = "member", **fields: Any) -> dict[str, Any]:
        """A new item at `where`: backlog, build, build-ready, review or done."""
        item = self.new_item(**fields)
        steps = {
            "backlog": [],
            "build": [("pull", owner)],
            "build-ready": [("pull", owner), ("ready", owner)],
            "review": [("pull", owner), ("ready", owner), ("pull", "reviewer")],
            # Review is the last work state: its ready delivers the item to Done at once.
            "done": [
                ("pull", owner),
                ("ready", owner),
                ("pull", "reviewer"),
                ("ready", "reviewer"),
            ],
        }[where]
        for action, role in steps:
            item = self.ok(self.post(role, f"/items/{item['id']}/{action}"))
        return item


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """Asserts an RFC 9457 problem with this status and slug and returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(f"/problems/{slug}"), body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body
