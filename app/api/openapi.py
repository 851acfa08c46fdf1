"""The OpenAPI document, told truthfully: every error answer of /api/v1 is declared as
`application/problem+json` with the Problem schema, with the status codes the route can give.

FastAPI on its own declares a 422 `HTTPValidationError` in `application/json`, which we never
send, and nothing else. The codes follow from what every route shares (app/api/deps.py and the
middleware), so they are derived here from each operation's shape, in one place:

- 401 when the operation needs a bearer token (`security`);
- 403 for writes with a token: a read-scope token, or a board role below the action's;
- 404 when the path names something by id (unknown, or on a board you cannot see);
- 409 for writes: a flow rule refused, a stale version, or a conflicting change at commit;
- 413 when there is a body (over the size limit);
- 422 when there are parameters or a body (`validation`);
- 503 on every /api/v1 operation (the database cannot be reached in time).

A route adds codes of its own with `responses=problems(...)` (for example 403 on a read that
only site admins may make).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from app.problems import MEDIA_TYPE

PROBLEM_REF = "#/components/schemas/Problem"
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. `type` ends in /problems/<slug>; refusals add "
    "their own fields (API.md), validation problems list `errors`.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}

DESCRIPTIONS = {
    401: "Not signed in: the bearer token is missing, unknown, revoked or expired.",
    403: "Not allowed: your role (`insufficient-role`) or token scope (`insufficient-scope`).",
    404: "Unknown, or on a board you are not a member of.",
    409: "A flow rule refused (see the slugs in API.md), or a stale or conflicting change.",
    413: "The request body is over the size limit.",
    422: "Invalid input (`validation`), with the problems listed in `errors`.",
    429: "Too many failed sign-ins (`too-many-attempts`); see Retry-After.",
    503: "The database cannot be reached in time (`unavailable`); see Retry-After.",
}


def problem_response(status: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        "content": {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route decorator: extra problem answers this route can give."""
    return {status: problem_response(status) for status in statuses}


# Signing in answers 401 for bad credentials and 429 when throttled, without a token.
SIGN_IN = ("post", "/api/v1/auth/token")


def _codes(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    codes = {503}
    if (method, path) == SIGN_IN:
        codes |= {401, 429}
    secured = bool(operation.get("security"))
    has_body = "requestBody" in operation
    if secured:
        codes.add(401)
    if secured and method in WRITE_METHODS:
        codes |= {403, 409}
    if re.search(r"\{[^}]+\}", path):
        codes.add(404)
    if has_body:
        codes.add(413)
    if has_body or operation.get("parameters"):
        codes.add(422)
    return codes


def truthful_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrites `document` in place: problem answers on every /api/v1 operation."""
    for path, operations in document.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for status in declared | _codes(path, method, operation):
                responses[str(status)] = problem_response(status)
            operation["responses"] = dict(sorted(responses.items()))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    # FastAPI's own validation error shape is never sent; drop it once nothing refers to it.
    if "/HTTPValidationError'" not in repr(document["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def install(app: FastAPI, *, extra_schemas: dict[str, Any]) -> None:
    """Serve the rewritten document at /openapi.json. FastAPI still builds and caches it (and
    rebuilds it when routes change); each new build is rewritten once."""
    build = app.openapi
    rewritten: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = build()
        if not rewritten or rewritten[0] is not document:
            if extra_schemas:
                document.setdefault("components", {}).setdefault("schemas", {}).update(
                    extra_schemas
                )
            truthful_errors(document)
            rewritten[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schemas of `models` and of the models they use, keyed by name for
    `components.schemas` (for bodies documented with `openapi_extra`)."""
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(
            ref_template="#/components/schemas/{model}", mode="validation"
        )
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found
