"""`flowboard reset-password EMAIL` on both databases: prints a one-time link under the public
URL, keeps only its hash, and the link sets a new password once through the real page."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app import cli
from app.config import get_settings
from app.db.models import PasswordReset
from app.db.session import Database, get_database
from app.main import create_app
from tests.conftest import BACKENDS, drop_postgres_database, fresh_database_url
from tests.web.helpers import form_token

PASSWORD = "correct horse battery"
NEW_PASSWORD = "an even better passphrase"


@pytest.fixture(params=BACKENDS)
def cli_database(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A migrated database with Ann's account, found by the CLI through the environment."""
    url, pg_name = fresh_database_url(str(request.param), tmp_path)
    monkeypatch.setenv("FLOWBOARD_DATABASE_URL", url)
    monkeypatch.setenv("FLOWBOARD_PUBLIC_URL", "https://flow.example.org/")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    get_database.cache_clear()
    assert cli.main(["migrate"]) == 0
    args = ["create-user", "--email", "ann@example.org", "--name", "Ann", "--password", PASSWORD]
    assert cli.main(args) == 0
    yield url
    get_database().dispose()
    get_settings.cache_clear()
    get_database.cache_clear()
    if pg_name:
        drop_postgres_database(pg_name)


def _resets(url: str) -> list[PasswordReset]:
    database = Database(url)
    try:
        with database.unit_of_work(write=False) as session:
            return list(session.scalars(select(PasswordReset)))
    finally:
        database.dispose()


def test_reset_password_prints_a_one_time_link(
    cli_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cli.main(["reset-password", "Ann@Example.org"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"^https://flow\.example\.org/reset-password/(\S+)$", out, re.MULTILINE)
    assert found, out
    secret = found.group(1)
    assert "Ann <ann@example.org>" in out
    [reset] = _resets(cli_database)
    assert reset.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert reset.used_at is None
    assert reset.expires_at - reset.created_at == timedelta(hours=24)

    database = Database(cli_database)
    try:
        with TestClient(create_app(database, listen=False)) as client:
            path = f"/reset-password/{secret}"
            page = client.get(path)
            assert page.status_code == 200
            fields = {
                "new_password": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
                "csrf_token": form_token(page.text),
            }
            assert client.post(path, data=fields).status_code == 200
            assert client.get(path).status_code == 404
            signed_in = client.post(
                "/api/v1/auth/token",
                data={"username": "ann@example.org", "password": NEW_PASSWORD},
            )
            assert signed_in.status_code == 200
    finally:
        database.dispose()
    [used] = _resets(cli_database)
    assert used.used_at is not None


def test_reset_password_for_an_unknown_email_makes_nothing(
    cli_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cli.main(["reset-password", "nobody@example.org"]) == 1
    captured = capsys.readouterr()
    assert "No link made" in captured.err
    assert "reset-password/" not in captured.out
    assert _resets(cli_database) == []
