"""The OpenAPI document tells the truth, and schemathesis finds nothing wrong against it.

Schemathesis runs in-process against the ASGI app on each database, signed in as a site admin
with a seeded board, with a fixed budget (MAX_EXAMPLES per operation, derandomised) and these
checks: no 5xx, every status code documented, every answer conforming to its documented schema
and content type. Select alone with `-m schemathesis`; it is part of the normal suite.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.schemas import ImportIn
from app.problems import MEDIA_TYPE
from tests.factories import Seed, token_headers

MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
# Operations that end the admin's own access run last, so the others keep a working token.
LAST = ("/auth/token", "/users/{user_id}", "/users/me/password", "/tokens/{token_id}")


def _order(operation: Any) -> tuple[bool, str]:
    ends_access = operation.method.upper() in ("DELETE", "PATCH", "POST") and any(
        operation.path.endswith(tail) for tail in LAST
    )
    return ends_access, f"{operation.path} {operation.method}"


@pytest.mark.schemathesis
def test_schemathesis_finds_no_server_error_and_no_lie(app: FastAPI, seed: Seed) -> None:
    with TestClient(app) as client:
        headers = token_headers(client, seed.user("admin"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    # An endless Server-Sent Events answer cannot be fuzzed request by request.
    operations = sorted((op for op in operations if not op.path.endswith("/stream")), key=_order)
    assert len(operations) >= 40
    failures: list[str] = []
    statuses: list[int] = []
    for operation in operations:

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            statuses.append(response.status_code)

        try:
            check()
        except Exception as error:  # collect every operation's finding, then fail once
            failures.append(f"{operation.method.upper()} {operation.path}: {error}"[:3000])
    assert not failures, "\n\n".join(failures)
    # The run really went past the door: the admin's token kept working, and many generated
    # requests were accepted, not only refused as invalid.
    assert statuses.count(401) < len(statuses) // 10, statuses
    assert sum(200 <= s < 300 for s in statuses) >= 40, sorted(set(statuses))


# --- the document itself -------------------------------------------------------------------


def test_every_api_error_is_a_documented_problem(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {int(code) for code in responses if int(code) >= 400}
            assert {422, 503} <= errors or not (
                operation.get("parameters") or operation.get("requestBody")
            ), (method, path)
            for code in errors:
                content = responses[str(code)]["content"]
                assert list(content) == [MEDIA_TYPE], (method, path, code)
                assert content[MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}
            if operation.get("security"):
                assert 401 in errors, (method, path)
            if "{" in path:
                assert 404 in errors, (method, path)
            if "requestBody" in operation:
                assert 413 in errors, (method, path)
            if method in ("post", "put", "patch", "delete") and operation.get("security"):
                assert {403, 409} <= errors, (method, path)


def test_the_import_body_is_typed(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/api/v1/boards/{board_id}/import"]["post"]
    body = operation["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/ImportIn"
    schemas = document["components"]["schemas"]
    item = schemas["ImportItemIn"]
    assert set(item["required"]) == {"title", "created_at"}
    assert item["properties"]["created_at"]["format"] == "date-time"
    assert "from" in schemas["ImportBlockIn"]["properties"]
    # The documented example is a body the schema accepts.
    ImportIn.model_validate(body["example"])


def test_the_password_minimum_is_in_the_schema(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["UserIn"]["properties"]["password"]["minLength"] == 8


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/boards", "GET, HEAD, OPTIONS, POST"),
        ("/api/v1/boards/1", "GET, HEAD, OPTIONS, PATCH"),
        ("/api/v1/items/1", "GET, HEAD, OPTIONS, PATCH"),
        ("/boards/1", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_and_405_list_every_method_of_the_address(
    client: TestClient, path: str, allowed: str
) -> None:
    options = client.options(path)
    assert options.status_code == 204
    assert options.headers["allow"] == allowed
    refused = client.put(path) if "PUT" not in allowed else client.delete(path)
    assert refused.status_code == 405
    assert refused.headers["allow"] == allowed


def test_options_on_an_unknown_address_is_404(client: TestClient) -> None:
    assert client.options("/api/v1/nothing-here").status_code == 404


def test_non_json_answers_are_documented_as_what_they_are(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    delays = paths["/api/v1/boards/{board_id}/delays.csv"]["get"]["responses"]["200"]
    assert list(delays["content"]) == ["text/csv"]
    stream = paths["/api/v1/boards/{board_id}/stream"]["get"]["responses"]
    assert list(stream["200"]["content"]) == ["text/event-stream"]
    assert list(stream["401"]["content"]) == [MEDIA_TYPE]
    # Reads only site admins may make say so.
    assert "403" in paths["/api/v1/users"]["get"]["responses"]
    assert "403" in paths["/api/v1/users/{user_id}"]["get"]["responses"]


def test_analytics_answers_with_history_match_their_documented_shapes(
    client: TestClient, seed: Seed
) -> None:
    from pydantic import TypeAdapter

    from app.api.schemas import (
        AgingOut,
        CfdOut,
        CycleTimesOut,
        FlowOut,
        ForecastOut,
        SnapshotOut,
        ThroughputOut,
        WaitingReasonOut,
    )
    from tests.analytics.helpers import block, do_import, item, move, t

    do_import(
        seed,
        [
            item(
                "Delivered",
                t(2),
                [move(t(3), "Build"), move(t(4), "Review"), move(t(6), "Done")],
                [block("Dependency", t(3, 10), t(3, 15))],
            ),
            item("Waiting", t(2), [move(t(5), "Build")], [block("Dependency", t(5, 12))]),
        ],
    )
    headers = token_headers(client, seed.user("viewer"))
    base = f"/api/v1/boards/{seed.board_id}"
    window = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-20T00:00:00Z"}
    shapes: list[tuple[str, dict[str, str], Any]] = [
        ("/metrics/cycle-times", window, CycleTimesOut),
        ("/metrics/throughput", window, list[ThroughputOut]),
        ("/metrics/cfd", window, CfdOut),
        ("/metrics/aging", window, AgingOut),
        ("/metrics/waiting-reasons", window, list[WaitingReasonOut]),
        ("/snapshot", {"at": "2026-03-05T18:00:00Z"}, SnapshotOut),
        ("/flow", window, FlowOut),
        ("/forecast", {**window, "items": "3"}, ForecastOut),
        ("/forecast", {**window, "until": str(date.today() + timedelta(days=30))}, ForecastOut),
    ]
    for path, params, shape in shapes:
        response = client.get(base + path, params=params, headers=headers)
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        TypeAdapter(shape).validate_python(body)
        assert body, path  # something was there to check
    assert client.get(base + "/metrics/cycle-times", params=window, headers=headers).json()["items"]
