"""create_app(): the FastAPI app with its database, static files, API and web routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import docs
from app.api import health, importing, openapi
from app.api.router import api_router
from app.client import trusted_proxy_list
from app.config import get_settings
from app.db.session import Database, get_database
from app.flow.errors import FlowError
from app.live.notify import PostgresListener  # importing it also registers the event hooks
from app.methods import AllowedMethods
from app.middleware import BodySizeLimit, ForwardedHost, HeaderSizeLimit, SecurityHeaders
from app.problems import (
    handle_flow_error,
    handle_http_error,
    handle_unexpected_error,
    handle_validation_error,
)
from app.resilience import ErrorResponses
from app.web.errors import on_unexpected_error
from app.web.router import web_router

ROOT = Path(__file__).resolve().parent.parent


def create_app(database: Database | None = None, *, listen: bool = True) -> FastAPI:
    """The app on `database` (default: the configured one). `listen` starts LISTEN on PostgreSQL."""
    settings = get_settings()
    db = database or get_database()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        listener = None
        if listen and not db.is_sqlite:
            listener = PostgresListener(db.url)
            listener.start()
        app.state.listener = listener
        try:
            yield
        finally:
            if listener is not None:
                listener.stop()

    app = FastAPI(
        title="Flowboard",
        version="1.0.0",
        description="A Lean Just-in-Time flow board: pull, enforced WIP limits, readiness "
        "criteria, recorded blocks and flow analytics.",
        lifespan=lifespan,
        # /docs is served by app.docs from our own files under our CSP; no /redoc.
        docs_url=None,
        redoc_url=None,
    )
    app.state.database = db
    app.state.settings = settings
    app.add_exception_handler(FlowError, handle_flow_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(Exception, handle_unexpected_error)
    # Added first, so it is the innermost middleware: it answers what the routes let through
    # (503 while the database is away, else 500) without dropping the connection, and the
    # middleware added after it still sets their headers on that answer.
    app.add_middleware(ErrorResponses, render=on_unexpected_error)
    app.add_middleware(AllowedMethods)  # OPTIONS answers, and every 405 lists all methods
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeaderSizeLimit, max_bytes=settings.max_header_bytes)
    app.add_middleware(SecurityHeaders)  # outside the limits: their 413 / 431 get headers too
    # Compressed answers for clients that ask (board HTML compresses several-fold); never the
    # live stream: text/event-stream is excluded (Starlette's default too; kept explicit, as a
    # compressor would hold events back until its buffer fills).
    app.add_middleware(
        GZipMiddleware,
        minimum_size=1024,
        compresslevel=6,  # level 9 costs far more CPU for a few % on HTML
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "text/event-stream"),
    )
    # Outermost: the client address, scheme and host forwarded by a trusted reverse proxy
    # (empty setting: nobody's) are in the scope before anything reads them.
    proxies = trusted_proxy_list(settings.trusted_proxies)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    app.add_middleware(ForwardedHost, trusted_hosts=proxies)  # sees the peer before the above
    # Routes are matched in order, router by router: the API, where most requests go, first.
    app.include_router(api_router)
    app.include_router(health.router)
    app.include_router(docs.router)
    web_router.setup(app)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    openapi.install(app, extra_schemas=importing.SCHEMAS)  # problem+json errors, typed import
    return app
