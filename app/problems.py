"""One error vocabulary rendered as RFC 9457 problem+json for the API."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.client import client_ip
from app.flow.errors import FlowError, InsufficientRole
from app.inputs import parse_id
from app.resilience import RETRY_AFTER_SECONDS, is_database_unavailable
from app.services import audit

PROBLEM_TYPE_BASE = "https://flowboard.example/problems/"
MEDIA_TYPE = "application/problem+json"

HTTP_SLUGS = {
    400: "bad-request",
    401: "not-authenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "too-many-requests",
    500: "server-error",
    503: "unavailable",
}


def problem(
    status: int, slug: str, detail: str, *, title: str | None = None, **fields: Any
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **jsonable_encoder(fields),
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def flow_error_response(error: FlowError) -> JSONResponse:
    response = problem(error.status, error.slug, error.detail, title=error.title, **error.fields)
    if isinstance(error.fields.get("retry_after"), int):  # 429 too-many-attempts
        response.headers["Retry-After"] = str(error.fields["retry_after"])
    return response


def record_refusal(request: Request, error: FlowError, *, actor_id: int | None = None) -> None:
    """`permission_refused` in the audit trail for a 403 insufficient-role (API and pages).
    Blocking: call it from a worker thread. The actor is `actor_id` or the bearer token's."""
    bearer = request.headers.get("authorization", "")
    scheme, _, token = bearer.partition(" ")
    params = request.path_params
    audit.record_refusal(
        request.app.state.database,
        actor_id=actor_id,
        bearer_token=token.strip() if scheme.lower() == "bearer" and actor_id is None else None,
        ip=client_ip(request),
        method=request.method,
        path=request.url.path,
        board_id=parse_id(str(params.get("board_id", ""))),
        item_id=parse_id(str(params.get("item_id", ""))),
        detail=error.detail,
    )


async def handle_flow_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, FlowError)
    if isinstance(error, InsufficientRole):
        await run_in_threadpool(record_refusal, request, error)
    return flow_error_response(error)


async def handle_validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in error.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid input"}
    where = ".".join(str(part) for part in first["loc"] if part not in ("body", "query", "path"))
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    return problem(
        422, "validation", f"Invalid input. {detail}.", title="Invalid input", errors=errors
    )


async def handle_http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    status = error.status_code
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(status).phrase
    if status == 404 and detail == "Not Found":
        detail = "Nothing here: check the address."
    if status == 405:
        detail = "This address does not accept that method."
    response = problem(status, HTTP_SLUGS.get(status, "error"), detail)
    for name, value in (error.headers or {}).items():
        response.headers[name] = value
    return response


def server_error_response() -> JSONResponse:
    # The request's transaction was never committed, so nothing it did was stored.
    return problem(
        500,
        "server-error",
        "Something went wrong on our side and nothing was saved; try again, and tell your "
        "administrator if it keeps happening.",
    )


def unavailable_response(retry_after: int) -> JSONResponse:
    """503 `unavailable`: the database cannot be reached or did not answer in time."""
    # A commit whose answer was lost may have been stored: say so, and point at the key.
    response = problem(
        503,
        "unavailable",
        "The database is unavailable or too slow right now; try again in a few seconds. "
        "A create may have been saved before this answer: retry it with the same "
        "Idempotency-Key, or check before sending it again.",
        title="Service unavailable",
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


async def handle_unexpected_error(_request: Request, error: Exception) -> JSONResponse:
    if is_database_unavailable(error):
        return unavailable_response(RETRY_AFTER_SECONDS)
    return server_error_response()
