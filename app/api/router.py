"""The versioned JSON API: every router under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import analytics, audit, auth, boards, events, importing, items, tokens, users

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(auth.router)
api_router.include_router(users.router)
api_router.include_router(tokens.router)
api_router.include_router(boards.router)
api_router.include_router(items.router)
api_router.include_router(events.router)
api_router.include_router(importing.router)
api_router.include_router(analytics.router)
api_router.include_router(audit.router)
