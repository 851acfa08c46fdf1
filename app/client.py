"""Who is asking: the client's address and scheme, believing forwarded headers only from
the reverse proxies named in FLOWBOARD_TRUSTED_PROXIES (uvicorn's ProxyHeadersMiddleware
applies them to the request scope, so every route sees the real client and scheme)."""

from __future__ import annotations

from fastapi import Request


def trusted_proxy_list(raw: str) -> list[str]:
    """The setting as a list of addresses / networks (empty: trust nobody's forwarded headers)."""
    return [part.strip() for part in raw.split(",") if part.strip()]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"
