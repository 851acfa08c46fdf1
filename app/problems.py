"""One error vocabulary rendered as RFC 9457 problem+json for the API."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.flow.errors import FlowError

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
    return problem(error.status, error.slug, error.detail, title=error.title, **error.fields)


async def handle_flow_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, FlowError)
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


async def handle_unexpected_error(_request: Request, _error: Exception) -> JSONResponse:
    # The request's transaction was never committed, so nothing it did was stored.
    return problem(
        500,
        "server-error",
        "Something went wrong on our side and nothing was saved; try again, and tell your "
        "administrator if it keeps happening.",
    )
