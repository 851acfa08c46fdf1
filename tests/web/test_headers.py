"""Security and caching headers (issue 7, point 10), on both databases: no-store on signed-in
pages, CSV downloads and API answers; static files and the OpenAPI document stay cacheable;
HSTS over https only; /docs from our own vendored, hashed files under the app's CSP."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.middleware import CSP
from tests.factories import Seed, token_headers
from tests.web.helpers import sign_in

ROOT = Path(__file__).resolve().parents[2]
HSTS = "max-age=31536000; includeSubDomains"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/me", 200),
        ("/", 200),
        ("/boards/{board}", 200),
        ("/boards/{board}/settings", 200),
        ("/boards/{board}/delays", 200),
        ("/boards/{board}/delays.csv", 200),
        ("/no-such-page", 404),
    ],
)
def test_signed_in_pages_and_downloads_are_never_stored(
    client: TestClient, seed: Seed, path: str, status: int
) -> None:
    sign_in(client, seed.user("manager"))
    response = client.get(path.format(board=seed.board_id))
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == CSP


def test_the_sign_in_page_is_never_stored(client: TestClient, seed: Seed) -> None:
    assert client.get("/login").headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/me", 200),
        ("/api/v1/boards", 200),
        ("/api/v1/boards/{board}/members", 200),
        ("/api/v1/boards/{board}/items", 200),
        ("/api/v1/boards/{board}/delays.csv", 200),
        ("/api/v1/boards/999999", 404),
    ],
)
def test_api_answers_are_never_stored(
    client: TestClient, seed: Seed, path: str, status: int
) -> None:
    response = client.get(
        path.format(board=seed.board_id), headers=token_headers(client, seed.user("member"))
    )
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == CSP


def test_refusals_are_never_stored_either(client: TestClient, seed: Seed) -> None:
    unauthenticated = client.get("/api/v1/me")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["cache-control"] == "no-store"
    too_large = client.post("/api/v1/users", content=b"x" * (2 * 1024 * 1024))
    assert too_large.status_code == 413
    assert too_large.headers["cache-control"] == "no-store"
    assert too_large.headers["content-security-policy"] == CSP


def test_static_files_and_the_openapi_document_keep_their_caching(
    client: TestClient, seed: Seed
) -> None:
    static = client.get("/static/css/app.css")
    assert static.status_code == 200
    assert "cache-control" not in static.headers
    assert static.headers["etag"] and static.headers["last-modified"]
    revalidated = client.get(
        "/static/css/app.css", headers={"If-None-Match": static.headers["etag"]}
    )
    assert revalidated.status_code == 304
    document = client.get("/openapi.json")
    assert document.status_code == 200 and "cache-control" not in document.headers


def test_hsts_only_over_https(app: FastAPI, seed: Seed) -> None:
    with TestClient(app, base_url="https://testserver") as secure:
        assert secure.get("/login").headers["strict-transport-security"] == HSTS
        assert secure.get("/api/v1/me").headers["strict-transport-security"] == HSTS
        assert secure.get("/static/css/app.css").headers["strict-transport-security"] == HSTS
    with TestClient(app) as plain:
        assert "strict-transport-security" not in plain.get("/login").headers


def test_an_oversized_header_is_431(client: TestClient, seed: Seed) -> None:
    response = client.get("/api/v1/me", headers={"X-Padding": "a" * 1024 * 1024})
    assert response.status_code == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/problems/header-too-large")
    assert response.headers["connection"] == "close"
    assert response.headers["cache-control"] == "no-store"


# --- /docs ---------------------------------------------------------------------------------


def vendored_hashes() -> dict[str, str]:
    """File name -> SHA-256 from the table in static/vendor/VERSIONS.md."""
    text = (ROOT / "static/vendor/VERSIONS.md").read_text()
    return dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", text, re.M))


def test_docs_use_our_own_files_under_the_csp(client: TestClient, seed: Seed) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    html = page.text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert [attrs.strip() for attrs, _ in scripts] == [
        'src="/static/vendor/swagger-ui/swagger-ui-bundle.js"',
        'src="/static/js/swagger-init.js"',
    ]
    assert all(body.strip() == "" for _, body in scripts)  # no inline script
    assert "//" not in re.sub(r"<!doctype html>", "", html, flags=re.I).replace("://", "")
    assert "cdn" not in html.lower() and "http" not in html.lower()
    assert 'href="/static/vendor/swagger-ui/swagger-ui.css"' in html
    assert 'data-openapi-url="/openapi.json"' in html


def test_docs_assets_are_served_and_match_their_recorded_hashes(
    client: TestClient, seed: Seed
) -> None:
    hashes = vendored_hashes()
    for name in ("swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css"):
        served = client.get(f"/static/vendor/{name}")
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() == hashes[name]
    init = client.get("/static/js/swagger-init.js")
    assert init.status_code == 200 and "SwaggerUIBundle(" in init.text


def test_no_redoc_and_docs_are_not_in_the_api_document(client: TestClient, seed: Seed) -> None:
    assert client.get("/redoc").status_code == 404
    assert "/docs" not in client.get("/openapi.json").json()["paths"]
