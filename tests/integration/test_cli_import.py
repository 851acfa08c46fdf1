"""`flowboard import-history FILE BOARD` explains bad input in one line, exits non-zero, and
never shows a traceback, on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app import cli
from app.config import get_settings
from app.db.models import Item
from app.db.session import get_database
from app.inputs import DB_INT_MAX
from tests.factories import Seed


@pytest.fixture
def cli_seed(seed: Seed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Seed]:
    """The seeded board's database, found by the command through FLOWBOARD_DATABASE_URL."""
    url = seed.database.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("FLOWBOARD_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    get_database.cache_clear()
    yield seed
    get_database().dispose()
    get_settings.cache_clear()
    get_database.cache_clear()


def good_item(**changes: Any) -> dict[str, Any]:
    return {
        "title": "Old one",
        "created_at": "2026-01-05T09:00:00Z",
        "history": [{"at": "2026-01-06T09:00:00Z", "state": "Build"}],
        "blocks": [],
        **changes,
    }


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["import-history", *args])
    captured = capsys.readouterr()
    return code, captured.err


def items(seed: Seed) -> int:
    with seed.database.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(Item)) or 0


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("Nothing was imported: ")
    return lines[0]


def test_a_good_file_imports(
    cli_seed: Seed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "good.json", json.dumps({"items": [good_item()]}))
    assert cli.main(["import-history", path, "TST"]) == 0
    assert "Imported 1 items" in capsys.readouterr().out
    assert items(cli_seed) == 1


@pytest.mark.parametrize(
    ("name", "content", "board", "says"),
    [
        ("missing.json", None, "TST", "there is no file"),
        ("bad.json", '{"items": [', "TST", "is not valid JSON: Expecting value at line 1"),
        ("latin1.json", '{"items": []} é'.encode("latin-1"), "TST", "is not UTF-8 text"),
        ("deep.json", "[" * 100_000 + "]" * 100_000, "TST", "nests too deeply"),
        ("list.json", "[1, 2]", "TST", 'must hold one object like {"items": [...]}'),
        ("shape.json", '{"items": {"title": "x"}}', "TST", "must hold one object like"),
        ("empty.json", "", "TST", "is not valid JSON"),
    ],
)
def test_bad_files_are_explained_in_one_line(
    cli_seed: Seed,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | bytes | None,
    board: str,
    says: str,
) -> None:
    path = str(tmp_path / name) if content is None else write(tmp_path, name, content)
    code, err = run([path, board], capsys)
    assert code == 1
    assert says in one_line(err)
    assert items(cli_seed) == 0


def test_a_folder_is_not_a_file(
    cli_seed: Seed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run([str(tmp_path), "TST"], capsys)
    assert code == 1
    assert "is a folder" in one_line(err)


@pytest.mark.parametrize(
    ("item", "says"),
    [
        (good_item(history=[{"at": "2026-01-06T09:00:00Z", "state": "Testing"}]), "'Testing'"),
        (good_item(title="a\x00b"), "control character U+0000"),
        (good_item(title="\u200b\u202e"), "visible characters"),
        (good_item(created_at="0001-01-01T00:00:00+01:00"), "ISO 8601"),
        (good_item(created_at=17), "ISO 8601"),
        ("not an object", "each item must be an object"),
    ],
)
def test_bad_content_is_explained_in_one_line(
    cli_seed: Seed,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    item: object,
    says: str,
) -> None:
    path = write(tmp_path, "items.json", json.dumps({"items": [good_item(), item]}))
    code, err = run([path, "TST"], capsys)
    assert code == 1
    line = one_line(err)
    assert says in line and "item 1" in line, line
    assert items(cli_seed) == 0  # all or nothing


@pytest.mark.parametrize("board", ["NOPE", str(DB_INT_MAX), str(2**63), "²", "-1", "٣", ""])
def test_unknown_boards_are_explained_in_one_line(
    cli_seed: Seed, tmp_path: Path, capsys: pytest.CaptureFixture[str], board: str
) -> None:
    path = write(tmp_path, "good.json", json.dumps({"items": [good_item()]}))
    code, err = run([path, board], capsys)
    assert code == 1
    assert "there is no board" in one_line(err)
    assert items(cli_seed) == 0


def test_an_unusable_database_is_explained_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A SQLite file that was never migrated: no tables at all.
    monkeypatch.setenv("FLOWBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    get_database.cache_clear()
    try:
        path = write(tmp_path, "good.json", json.dumps({"items": [good_item()]}))
        code, err = run([path, "TST"], capsys)
    finally:
        get_database().dispose()
        get_settings.cache_clear()
        get_database.cache_clear()
    assert code == 1
    assert "the database could not be used: no such table" in one_line(err)
