"""Input validation at the edge of the JSON API, walked from the OpenAPI document.

Every operation, every integer parameter (path, query, and the body's integer fields) gets
values outside the database's integer range: the answer is 404 or 422, never a 5xx, on both
databases. Text fields refuse control characters and visually empty names with 422.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.inputs import DB_INT_MAX
from tests.api.helpers import Api, problem
from tests.factories import Seed, token_headers

OUT_OF_RANGE = [DB_INT_MAX + 1, 2**63, 2**64, -(2**63) - 1, -(2**31)]
BAD_TEXT = ["a\x00b", "a\x07b", "\x1b[31m", "a\x7fb", "\x85"]
INVISIBLE = ["\u200b", "\u200e\u200f", "\u202e", "\u2066\u2069", "\ufeff", " \u200b\t "]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def _non_null(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    schema = _resolve(doc, schema)
    for option in schema.get("anyOf", []):
        option = _resolve(doc, option)
        if option.get("type") != "null":
            return option
    return schema


def _is_integer(doc: dict[str, Any], schema: dict[str, Any]) -> bool:
    return _non_null(doc, schema).get("type") == "integer"


def sample(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A small value the schema accepts (required fields only), so one field can be bad."""
    schema = _non_null(doc, schema)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        return {
            name: sample(doc, prop)
            for name, prop in schema.get("properties", {}).items()
            if name in schema.get("required", [])
        }
    if kind == "array":
        return [sample(doc, schema["items"])] * schema.get("minItems", 0)
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if kind == "string":
        if schema.get("format") == "date-time":
            return "2026-01-05T09:00:00Z"
        if schema.get("format") == "date":
            return "2026-01-05"
        return "x" * max(schema.get("minLength", 1), 8)
    return None


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path.endswith("/stream"):
                continue  # an endless SSE response; its ids are checked in test_stream_ids
            yield method.upper(), path, op


def json_body_schema(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, Any] | None:
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return _resolve(doc, content["application/json"]["schema"])


def integer_cases(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, path, where, name) for every integer parameter of every operation."""
    cases = []
    for method, path, op in operations(doc):
        for param in op.get("parameters", []):
            if _is_integer(doc, param["schema"]):
                cases.append((method, path, param["in"], param["name"]))
        body = json_body_schema(doc, op)
        if body is not None:
            for name, prop in body.get("properties", {}).items():
                if _is_integer(doc, prop):
                    cases.append((method, path, "body", name))
    return cases


def request_for(
    doc: dict[str, Any], method: str, path: str, op: dict[str, Any], seed: Seed
) -> tuple[str, dict[str, Any], Any]:
    """A request the schema accepts, with real ids of the seeded board in the path."""
    real = {"board_id": seed.board_id, "state_id": seed.state_id("Build")}
    url = path
    params: dict[str, Any] = {}
    for param in op.get("parameters", []):
        value = real.get(param["name"], sample(doc, param["schema"]))
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", str(value))
        elif param.get("required"):
            params[param["name"]] = value
    body_schema = json_body_schema(doc, op)
    body = sample(doc, body_schema) if body_schema is not None else None
    return url, params, body


@pytest.fixture
def raw_client(app: FastAPI) -> Iterator[TestClient]:
    # A 500 must come back as a response here, so the walk can list every one of them.
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_no_integer_parameter_answers_5xx(raw_client: TestClient, seed: Seed) -> None:
    doc = raw_client.get("/openapi.json").json()
    headers = token_headers(raw_client, seed.user("admin"))
    cases = integer_cases(doc)
    # Every id kind of API.md is among the walked parameters.
    names = {name for *_, name in cases}
    assert {"board_id", "item_id", "state_id", "criterion_id", "block_id", "user_id"} <= names
    assert {"owner_id", "reason_id", "to_state_id", "after_id", "offset", "limit"} <= names
    failures = []
    for method, path, where, name in cases:
        op = doc["paths"][path][method.lower()]
        for value in [*OUT_OF_RANGE, DB_INT_MAX]:
            url, params, body = request_for(doc, method, path, op, seed)
            if where == "path":
                url = path.replace("{" + name + "}", str(value))
                url = request_for(doc, method, url, op, seed)[0]
            elif where == "query":
                params[name] = value
            else:
                body = {**(body or {}), name: value}
            response = raw_client.request(method, url, params=params, json=body, headers=headers)
            in_range = value == DB_INT_MAX
            allowed = response.status_code < 500 if in_range else response.status_code in (404, 422)
            if not allowed:
                failures.append(f"{method} {url} {where}.{name}={value}: {response.status_code}")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 40


def test_path_ids_out_of_range_are_validation_problems(api: Api) -> None:
    body = problem(api.get("admin", f"/boards/{2**31}"), 422, "validation")
    assert body["errors"][0]["loc"] == ["path", "board_id"]
    problem(api.get("admin", f"/items/{2**63}"), 422, "validation")
    problem(api.get("admin", f"/items/{DB_INT_MAX}"), 404, "not-found")
    problem(api.get("admin", "/items/-5"), 422, "validation")


def test_query_and_body_integers_out_of_range(api: Api) -> None:
    board = api.board_id
    problem(api.get("admin", f"/boards/{board}/items", offset=2**63), 422, "validation")
    problem(api.get("admin", f"/boards/{board}/items", owner_id=2**31), 422, "validation")
    problem(api.get("admin", f"/boards/{board}/events", after_id=-(2**63)), 422, "validation")
    item = api.new_item()
    patch = {"version": item["version"], "owner_id": 2**31}
    problem(api.patch("manager", f"/items/{item['id']}", patch), 422, "validation")
    problem(
        api.post("member", f"/items/{item['id']}/blocks", {"reason_id": 2**63}), 422, "validation"
    )


# --- text -----------------------------------------------------------------------------------


def text_cases(api: Api) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, body with {} for the text, role) for every text field of the API."""
    item = api.new_item()
    doing = api.item_in("build")
    build = api.state("Build")
    reason = api.reason_id()
    board = api.board_id
    return [
        ("POST", "/users", {"email": "{}@example.org", "name": "N", "password": "p" * 9}, "admin"),
        ("POST", "/users", {"email": "n@example.org", "name": "{}", "password": "p" * 9}, "admin"),
        ("POST", "/boards", {"name": "{}"}, "admin"),
        ("POST", "/boards", {"name": "B", "states": [{"name": "{}", "kind": "backlog"}]}, "admin"),
        ("PATCH", f"/boards/{board}", {"name": "{}"}, "manager"),
        ("POST", f"/boards/{board}/states", {"name": "{}"}, "manager"),
        ("PATCH", f"/states/{build}", {"name": "{}"}, "manager"),
        ("POST", f"/states/{build}/criteria", {"text": "{}", "gate": "exit"}, "manager"),
        ("POST", f"/boards/{board}/block-reasons", {"name": "{}"}, "manager"),
        ("POST", f"/boards/{board}/items", {"title": "{}"}, "member"),
        ("POST", f"/boards/{board}/items", {"title": "T", "description": "{}"}, "member"),
        ("PATCH", f"/items/{item['id']}", {"version": 1, "title": "{}"}, "member"),
        ("PATCH", f"/items/{item['id']}", {"version": 1, "description": "{}"}, "member"),
        ("POST", f"/items/{item['id']}/discard", {"reason": "{}"}, "member"),
        (
            "POST",
            f"/items/{doing['id']}/send-back",
            {"to_state_id": build, "reason": "{}"},
            "manager",
        ),
        ("POST", f"/items/{item['id']}/pull", {"override_reason": "{}"}, "manager"),
        ("POST", f"/items/{item['id']}/blocks", {"reason_id": reason, "note": "{}"}, "member"),
        (
            "POST",
            f"/items/{item['id']}/blocks",
            {"reason_id": reason, "waiting_on": "{}"},
            "member",
        ),
        ("POST", f"/items/{item['id']}/comments", {"body": "{}"}, "member"),
    ]


def _fill(body: Any, text: str) -> Any:
    if isinstance(body, dict):
        return {k: _fill(v, text) for k, v in body.items()}
    if isinstance(body, list):
        return [_fill(v, text) for v in body]
    return body.replace("{}", text) if isinstance(body, str) else body


def test_control_characters_are_refused_in_every_text_field(api: Api) -> None:
    for method, path, body, role in text_cases(api):
        for bad in BAD_TEXT:
            response = api.call(role, method, path, _fill(body, bad))
            problem(response, 422, "validation")
    # Nothing reached the database.
    items = api.ok(api.get("admin", f"/boards/{api.board_id}/items"))
    assert all("\x00" not in i["title"] and "\x00" not in i["description"] for i in items)


def test_visually_empty_names_and_titles_are_refused(api: Api) -> None:
    board = api.board_id
    for blank in INVISIBLE:
        for method, path, body in [
            ("POST", f"/boards/{board}/items", {"title": blank}),
            ("POST", "/boards", {"name": blank}),
            ("POST", f"/boards/{board}/states", {"name": blank}),
            ("POST", f"/boards/{board}/block-reasons", {"name": blank}),
        ]:
            problem(api.call("admin", method, path, body), 422, "validation")


def test_line_breaks_where_text_is_multi_line_only(api: Api) -> None:
    item = api.new_item(description="First line\r\nsecond line\tand a tab")
    assert item["description"] == "First line\r\nsecond line\tand a tab"
    comment = api.post("member", f"/items/{item['id']}/comments", {"body": "one\ntwo"})
    assert api.ok(comment, 201)["body"] == "one\ntwo"
    problem(
        api.post("member", f"/boards/{api.board_id}/items", {"title": "a\nb"}), 422, "validation"
    )
    # A tab is a blank (titles keep single spaces); accents, emoji and right-to-left script
    # are ordinary text.
    titled = api.new_item(title="Café\tréunion 📋 اجتماع")
    assert titled["title"] == "Café réunion 📋 اجتماع"


def test_search_text_with_control_characters_is_refused(api: Api) -> None:
    problem(api.get("member", f"/boards/{api.board_id}/items", q="a\x00"), 422, "validation")


def test_openapi_states_the_text_rule(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    title = schemas["ItemIn"]["properties"]["title"]
    assert "\\x00" in title["pattern"]
    password = schemas["UserIn"]["properties"]["password"]
    assert password["minLength"] == 8


def test_delays_csv_neutralises_hidden_and_full_width_formula_starts(api: Api) -> None:
    item = api.new_item(title="\ufeff=HYPERLINK(1)")
    body = {"reason_id": api.reason_id(), "waiting_on": "＝cmd", "note": "\u200b+1"}
    api.ok(api.post("member", f"/items/{item['id']}/blocks", body), 201)
    response = api.get("member", f"/boards/{api.board_id}/delays.csv")
    assert response.status_code == 200
    text = response.text
    assert "'\ufeff=HYPERLINK(1)" in text
    assert "'＝cmd" in text
    assert "'\u200b+1" in text


def test_text_in_query_parameters_refuses_control_characters(api: Api) -> None:
    problem(api.get("admin", "/audit", type="sign\x00ed_in"), 422, "validation")
    problem(api.get("admin", f"/boards/{api.board_id}/items", q="\x1b[2J"), 422, "validation")


def test_the_stream_address_states_the_id_range(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    stream = document["paths"]["/api/v1/boards/{board_id}/stream"]["get"]
    board_id = next(p for p in stream["parameters"] if p["name"] == "board_id")
    assert board_id["schema"]["maximum"] == DB_INT_MAX


def test_signing_in_with_control_characters_is_a_plain_401(client: TestClient) -> None:
    for username in ["a\x00b@example.org", "\x00", "ann@example.org\x07"]:
        response = client.post(
            "/api/v1/auth/token", data={"username": username, "password": "pw\x00"}
        )
        problem(response, 401, "not-authenticated")


def test_adding_a_member_by_an_email_with_control_characters_is_refused(api: Api) -> None:
    body = {"email": "ann\x00@example.org", "role": "member"}
    problem(api.post("manager", f"/boards/{api.board_id}/members", body), 422, "validation")
