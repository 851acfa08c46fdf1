from fastapi.testclient import TestClient

from tests.factories import PASSWORD, Seed


def test_token_issue_use_and_revoke(client: TestClient, seed: Seed) -> None:
    user = seed.user("member")
    response = client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    again = client.delete("/api/v1/auth/token", headers=headers)
    assert again.status_code == 401
    assert again.headers["content-type"].startswith("application/problem+json")


def test_bad_credentials_are_401_problem(client: TestClient, seed: Seed) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": seed.user("member").email, "password": "wrong-one"}
    )
    assert response.status_code == 401
    assert response.json()["type"].endswith("/problems/not-authenticated")


def test_body_over_one_mebibyte_is_413(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/token",
        content=b"x" * (1024 * 1024 + 1),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert response.json()["type"].endswith("/problems/body-too-large")
