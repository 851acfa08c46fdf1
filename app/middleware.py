"""ASGI middleware: request limits (431 headers, 413 bodies), the host a trusted reverse proxy
forwards, and the security and caching headers of every answer."""

from __future__ import annotations

import ipaddress
import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.problems import MEDIA_TYPE, PROBLEM_TYPE_BASE

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
HSTS = b"max-age=31536000; includeSubDomains"
# Answers that may be cached: the static files (they keep StaticFiles' validators) and the
# OpenAPI document. Everything else may carry personal data and is never stored.
CACHEABLE_PREFIXES = ("/static/",)
CACHEABLE_PATHS = frozenset({"/openapi.json"})
# A host name or address with an optional port, as a Host header may carry it.
HOST_PATTERN = re.compile(rb"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


async def send_problem(
    send: Send, *, status: int, slug: str, title: str, detail: str, close: bool = False
) -> None:
    """A complete problem+json answer; `close` asks the server to close the connection."""
    body = json.dumps(
        {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    ).encode()
    headers = [
        (b"content-type", MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HeaderSizeLimit:
    """Refuses a request whose headers add up to more than `max_bytes` with 431.

    uvicorn with httptools (what `flowboard serve` runs) hands the app headers of any size,
    so the limit is kept here. The answer closes the connection: a client sending headers
    that size is not one to keep talking to.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Each header line is "name: value\r\n" on the wire.
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.max_bytes:
                await send_problem(
                    send,
                    status=431,
                    slug="header-too-large",
                    title="Request headers too large",
                    detail=f"The request headers are over {self.max_bytes // 1024} KiB; "
                    "send fewer or shorter headers (cookies included).",
                    close=True,
                )
                return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Refuses a request body over `max_bytes` with 413, by its Content-Length or, for a
    chunked body, as soon as the bytes read pass the limit.

    The 413 is sent from here the moment the limit is passed, and the route is then told the
    client went away and its own answer is dropped: a route (or FastAPI's body parsing) that
    turned an exception from `receive` into its own error would otherwise answer 400. The
    server discards the rest of the body, so the connection stays usable.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        received = 0
        started = False
        over = refused = False

        async def limited_receive() -> Message:
            nonlocal received, over, refused
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    if not started:  # else too late for a 413: the route sees a client gone
                        refused = True
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; whatever the route makes of it is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not refused:
                raise
            # The route failed on the body it never got; the client already has its 413.

    async def _refuse(self, send: Send) -> None:
        await send_problem(
            send,
            status=413,
            slug="body-too-large",
            title="Request body too large",
            detail=f"The request body is over {self.max_bytes // 1024} KiB; send less.",
        )


def _trusted(
    raw: list[str],
) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    literals: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in raw:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            literals.add(entry)  # e.g. "testclient", a unix socket's name
    return literals, networks


class ForwardedHost:
    """Believes `X-Forwarded-Host` from the trusted reverse proxies only, by making it the
    request's Host, so URLs and the Origin check see the host the browser used.

    It must run before uvicorn's ProxyHeadersMiddleware, which replaces the peer address with
    the forwarded client's. An empty list trusts nobody: the header is then ignored.
    """

    def __init__(self, app: ASGIApp, trusted_hosts: list[str]) -> None:
        self.app = app
        self.literals, self.networks = _trusted(trusted_hosts)

    def _is_trusted(self, peer: str) -> bool:
        if peer in self.literals:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (self.literals or self.networks):
            client = scope.get("client")
            forwarded = [v for n, v in scope["headers"] if n == b"x-forwarded-host"]
            if client and forwarded and self._is_trusted(client[0]):
                # The proxy right in front appends last; earlier values came from further out.
                host = b",".join(forwarded).split(b",")[-1].strip()
                if HOST_PATTERN.match(host):
                    headers = [(n, v) for n, v in scope["headers"] if n != b"host"]
                    scope = {**scope, "headers": [(b"host", host), *headers]}
        await self.app(scope, receive, send)


class SecurityHeaders:
    """CSP allowing only our own scripts and styles (the API docs included), the usual
    hardening headers, HSTS over https, and `Cache-Control: no-store` on every answer except
    the static files and the OpenAPI document."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        cacheable = path in CACHEABLE_PATHS or path.startswith(CACHEABLE_PREFIXES)
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", CSP.encode()),
                ]
                if https:
                    extra.append((b"strict-transport-security", HSTS))
                if not cacheable:
                    # Replaces a route's own weaker choice (SSE's no-cache, for one).
                    headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
                    extra.append((b"cache-control", b"no-store"))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in extra if n not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
