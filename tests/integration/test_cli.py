"""The `flowboard` command against a real database: migrate, create-user, import-history, demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import cli
from app.config import get_settings
from app.db.models import Board, Event, Item, User
from app.db.session import Database, get_database
from tests.conftest import BACKENDS, drop_postgres_database, fresh_database_url


@pytest.fixture
def cli_database(backend_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """An EMPTY, unmigrated database that the CLI finds through FLOWBOARD_DATABASE_URL."""
    url, pg_name = fresh_database_url(backend_name, tmp_path)
    monkeypatch.setenv("FLOWBOARD_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # var/ (credentials, secret key) goes to the temp dir
    get_settings.cache_clear()
    get_database.cache_clear()
    yield url
    get_database().dispose()
    get_settings.cache_clear()
    get_database.cache_clear()
    if pg_name:
        drop_postgres_database(pg_name)


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def count(url: str, model: type) -> int:
    database = Database(url)
    try:
        with database.unit_of_work(write=False) as session:
            return session.scalar(select(func.count()).select_from(model)) or 0
    finally:
        database.dispose()


def test_migrate_create_user_and_import_history(
    cli_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["migrate"]) == 0
    assert (
        cli.main(
            [
                "create-user",
                "--email",
                "ann@example.org",
                "--name",
                "Ann",
                "--password",
                "long enough password",
                "--admin",
            ]
        )
        == 0
    )
    assert (
        cli.main(
            ["create-user", "--email", "ann@example.org", "--name", "Ann", "--password", "x" * 9]
        )
        == 1
    )  # the same email again: refused, with the service's sentence
    assert "already has an account" in capsys.readouterr().err

    database = Database(cli_database)
    with database.unit_of_work() as session:
        from app.services import boards

        admin = session.scalar(select(User))
        assert admin is not None
        boards.create_board(session=session, actor=admin, name="Imports", key="IMP")
    database.dispose()

    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            {
                "items": [
                    {
                        "title": "Old one",
                        "created_at": "2026-01-05T09:00:00Z",
                        "history": [
                            {"at": "2026-01-06T09:00:00Z", "state": "Doing"},
                            {"at": "2026-01-08T09:00:00Z", "state": "Done"},
                        ],
                        "blocks": [],
                    },
                    {
                        "title": "Still open",
                        "created_at": "2026-01-07T09:00:00Z",
                        "history": [],
                        "blocks": [],
                    },
                ]
            }
        )
    )
    assert cli.main(["import-history", str(good), "IMP"]) == 0
    out = capsys.readouterr()
    assert "Imported 2 items into Imports." in out.out
    assert "2/2" in out.err  # the progress bar reached the end

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "items": [
                    {
                        "title": "Fine",
                        "created_at": "2026-01-05T09:00:00Z",
                        "history": [],
                        "blocks": [],
                    },
                    {
                        "title": "Broken",
                        "created_at": "2026-01-05T09:00:00Z",
                        "history": [{"at": "2026-01-06T09:00:00Z", "state": "No such state"}],
                        "blocks": [],
                    },
                ]
            }
        )
    )
    assert cli.main(["import-history", str(bad), "IMP"]) == 1
    assert "Nothing was imported" in capsys.readouterr().err
    assert count(cli_database, Item) == 2  # all or nothing: the good item of the bad file is not in
    assert cli.main(["import-history", str(good), "NOPE"]) == 1


def test_demo_fills_only_an_empty_database(
    cli_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["migrate"]) == 0
    assert cli.main(["demo", "--months", "1"]) == 0
    out = capsys.readouterr().out
    assert "mia@flowboard.demo" in out and "password is:" in out
    credentials = Path("var/demo-credentials.txt")
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert count(cli_database, Board) == 5
    events = count(cli_database, Event)
    assert cli.main(["demo"]) == 0  # not empty any more: nothing added
    assert "no demo data was added" in capsys.readouterr().out
    assert count(cli_database, Event) == events
