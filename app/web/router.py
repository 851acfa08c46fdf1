"""The HTML side: `web_router.setup(app)` installs the browser routes and their error pages."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from app.web import (
    account,
    admin,
    analytics,
    audit,
    auth,
    boards,
    errors,
    items,
    live,
    me,
    settings,
)
from app.web.common import known_path_ids


class WebRouter:
    def __init__(self) -> None:
        # Ids in the address are checked before any page runs a query with them.
        self.router = APIRouter(include_in_schema=False, dependencies=[Depends(known_path_ids)])
        for module in (auth, boards, items, me, settings, admin, audit, analytics, account):
            self.router.include_router(module.router)
        self.router.include_router(live.router)

    def setup(self, app: FastAPI) -> None:
        errors.install(app)
        app.include_router(self.router)
        # The JSON API's stream lives under /api/v1 next to the other API routes.
        app.include_router(
            live.api_router, prefix="/api/v1", dependencies=[Depends(known_path_ids)]
        )


web_router = WebRouter()
