"""The interactive API docs at /docs: Swagger UI from our own static files (vendored, pinned
and hashed in static/vendor/VERSIONS.md) and started by static/js/swagger-init.js, so the
page loads nothing from a CDN and runs no inline script under the app's CSP.

FastAPI's get_swagger_ui_html always writes an inline <script>, hence this small page.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

SWAGGER_JS = "/static/vendor/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = "/static/vendor/swagger-ui/swagger-ui.css"
INIT_JS = "/static/js/swagger-init.js"


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    title = escape(f"{request.app.title} API")
    openapi_url = escape(request.app.openapi_url or "/openapi.json")
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/static/favicon.svg">
<link rel="stylesheet" href="{SWAGGER_CSS}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{SWAGGER_JS}"></script>
<script src="{INIT_JS}"></script>
</body>
</html>
"""
    )
