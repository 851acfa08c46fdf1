from fastapi.testclient import TestClient

from app.db.session import Database
from app.main import create_app


def test_healthz_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_503_when_database_unreachable() -> None:
    # Port 1 on loopback refuses at once: the database "cannot be reached".
    unreachable = Database(
        "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2", pool_pre_ping=False
    )
    with TestClient(create_app(unreachable, listen=False)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


def test_unexpected_error_is_problem_json(client: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.services import users

    def explode(**_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(users, "authenticate", explode)
    with TestClient(client.app, raise_server_exceptions=False) as raw:
        response = raw.post("/api/v1/auth/token", data={"username": "a@b.cd", "password": "x"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "nothing was saved" in response.json()["detail"]
