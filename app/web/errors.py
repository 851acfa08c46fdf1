"""One error vocabulary, two renderers: HTML for the browser routes, problem+json for /api."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from sqlalchemy import inspect
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from app.flow.errors import FlowError, InsufficientRole, NotFound
from app.problems import (
    handle_flow_error,
    handle_http_error,
    record_refusal,
    server_error_response,
    unavailable_response,
)
from app.resilience import RETRY_AFTER_SECONDS, is_database_unavailable
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


def note_refusal(request: Request, error: FlowError) -> None:
    """`permission_refused` in the audit trail when a page refuses for the role. Blocking, and
    on SQLite it needs the write lock: call it after the request's session is rolled back."""
    if not isinstance(error, InsufficientRole):
        return
    user = getattr(request.state, "user", None)
    # The identity, not user.id: the user may be expired by a rollback and must not reload.
    identity = inspect(user).identity if user is not None else None
    record_refusal(request, error, actor_id=int(identity[0]) if identity else None)


async def on_flow_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, FlowError)
    if _is_api(request):
        return await handle_flow_error(request, error)
    await run_in_threadpool(note_refusal, request, error)
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


def _standalone_page(request: Request, status: int, title: str, message: str) -> Response:
    """An error page that touches nothing the failure may have broken: no signed-in user (it
    may be expired and unloadable), no database."""
    return render(
        request,
        "errors/error.html",
        {"title": title, "message": message, "user": None},
        fragment="errors/_alert.html",
        status_code=status,
    )


async def on_unexpected_error(request: Request, error: Exception) -> Response:
    """The last resort (app.resilience.ErrorResponses): 503 while the database is away, else 500;
    problem+json on the API, a readable page on the browser routes."""
    if is_database_unavailable(error):
        if _is_api(request):
            return unavailable_response(RETRY_AFTER_SECONDS)
        response = _standalone_page(
            request,
            503,
            "Temporarily unavailable",
            "Flowboard cannot reach its database right now. Wait a few seconds and reload "
            "the page. If you were saving something, check whether it is there before "
            "doing it again.",
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if _is_api(request):
        return server_error_response()
    return _standalone_page(
        request,
        500,
        "Something went wrong",
        "Something went wrong on our side and nothing was saved. Reload the page and try "
        "again; tell your administrator if it keeps happening.",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(FlowError, on_flow_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(CsrfRefused, on_csrf_refused)
