"""/docs in real Chromium under the app's CSP (issue 7, point 10): Swagger UI starts from
our own files, lists the API, and the browser reports no CSP violation and no request to
another origin."""

from __future__ import annotations

from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import LiveServer


def test_swagger_ui_runs_from_our_files_under_the_csp(page: Page, server: LiveServer) -> None:
    console: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))

    def seen(request: Request) -> None:
        requests.append(request.url)

    page.on("request", seen)
    response = page.goto("/docs")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI fetched /openapi.json and rendered the operations.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Flowboard")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/me").first).to_be_visible()
    expect(page.locator("button.authorize")).to_be_visible()
    violations = [
        line for line in console if "Content Security Policy" in line or "pageerror" in line
    ]
    assert violations == [], console
    foreign = [
        url
        for url in requests
        if not url.startswith(server.base_url) and not url.startswith("data:")
    ]
    assert foreign == [], foreign
