"""One error vocabulary, two renderers: HTML for the browser routes, problem+json for /api."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from app.flow.errors import FlowError, NotFound
from app.problems import handle_flow_error, handle_http_error
from app.web.deps import CsrfRefused, LoginRequired, login_url
from app.web.templating import is_htmx, render


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/health", "/docs", "/redoc", "/openapi"))


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(
        request,
        "errors/error.html",
        {"title": title, "message": message},
        fragment="errors/_alert.html",
        status_code=status,
    )


async def on_flow_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, FlowError)
    if _is_api(request):
        return await handle_flow_error(request, error)
    title = "Not found" if isinstance(error, NotFound) else error.title
    return error_page(request, error.status, title, error.detail)


async def on_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    if _is_api(request):
        return await handle_http_error(request, error)
    status = error.status_code
    message = {
        404: "Nothing here: check the address.",
        405: "This address does not accept that method.",
    }.get(status, error.detail if isinstance(error.detail, str) else HTTPStatus(status).phrase)
    return error_page(request, status, HTTPStatus(status).phrase, message)


async def on_login_required(request: Request, error: Exception) -> Response:
    assert isinstance(error, LoginRequired)
    target = "/setup" if error.setup else login_url(error.next_path)
    if is_htmx(request):
        # htmx follows HX-Redirect with a full page load (a 303 would be swapped into #board).
        return Response(status_code=401, headers={"HX-Redirect": target, "Vary": "HX-Request"})
    return RedirectResponse(target, status_code=303)


async def on_csrf_refused(request: Request, _error: Exception) -> Response:
    message = (
        "This form is stale or did not come from Flowboard, so nothing was changed. "
        "Reload the page and try again."
    )
    return error_page(request, 403, "Refused", message)


def install(app: FastAPI) -> None:
    app.add_exception_handler(FlowError, on_flow_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(CsrfRefused, on_csrf_refused)
