"""Which methods an address allows: answers OPTIONS, and corrects `Allow` on 405 answers.

Starlette builds a 405's `Allow` from the first route whose path matches, so an address
served by two routes (GET and POST /api/v1/boards) listed only one of them, and the pages'
405 had no `Allow` at all. Here every route is asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    for route in routes:
        # FastAPI keeps included routers as one entry that lists their effective routes.
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            yield from _routes(contexts())
        else:
            yield route


def allowed_methods(app: Any, path: str) -> set[str]:
    """Every method some route of `app` answers at `path` (HEAD with GET, OPTIONS with any)."""
    methods: set[str] = set()
    for route in _routes(app.router.routes):
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods |= set(route_methods)
    if "GET" in methods:
        methods.add("HEAD")
    if methods:
        methods.add("OPTIONS")
    return methods


class AllowedMethods:
    """OPTIONS on a known address: 204 with `Allow`. Any 405: `Allow` lists every route's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if scope["method"] == "OPTIONS":
            methods = allowed_methods(scope["app"], path)
            if methods:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", ", ".join(sorted(methods)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return

        async def correct_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = ", ".join(sorted(allowed_methods(scope["app"], path))).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message["headers"] = [*headers, (b"allow", allow)]
            await send(message)

        await self.app(scope, receive, correct_allow)
