"""`flowboard export` and `flowboard restore` through app.cli.main, on both databases.

The cross test moves a board with history SQLite -> PostgreSQL -> SQLite and asks the API the
same questions of all three databases; the others check refusals, corrupted files, secrets
and PostgreSQL sequences after a restore.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import cli
from app.auth.tokens import secret_hash
from app.config import get_settings
from app.db import queries
from app.db.base import Base
from app.db.migrate import upgrade
from app.db.models import ApiToken, Block, Comment, Event, Item, User
from app.db.session import Database, get_database
from app.main import create_app
from app.services import blocks, boards, items, users
from app.services.backup import UNUSABLE_PASSWORD, _JsonStream, _snapshot
from tests.analytics.helpers import block, do_import, item, move, t
from tests.api.helpers import Api
from tests.conftest import (
    drop_postgres_database,
    fresh_database_url,
    require_postgres_url,
)
from tests.factories import PASSWORD, Seed, make_user, seed_board, token_headers

WINDOW = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-21T00:00:00Z"}
# The same bearer token is written into every database after its restore.
TOKEN = "backup-test-token-the-same-everywhere"


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """`new(backend)` -> the URL of a fresh, migrated database, dropped after the test."""
    made: list[str] = []

    def new(backend: str) -> str:
        url, pg_name = fresh_database_url(backend, tmp_path)
        if pg_name:
            made.append(pg_name)
        upgrade(url)
        return url

    yield new
    get_database().dispose()
    for name in made:
        drop_postgres_database(name)


@pytest.fixture
def use_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """`use(url)` points the CLI (FLOWBOARD_DATABASE_URL) at that database."""
    monkeypatch.chdir(tmp_path)  # var/ (the secret key) goes to the temp dir

    def use(url: str) -> None:
        get_database().dispose()
        monkeypatch.setenv("FLOWBOARD_DATABASE_URL", url)
        get_settings.cache_clear()
        get_database.cache_clear()

    yield use
    get_database().dispose()
    get_settings.cache_clear()
    get_database.cache_clear()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def counts(url: str) -> dict[str, int]:
    """Rows in every table of the schema."""
    database = Database(url)
    try:
        with database.engine.connect() as conn:
            return {
                table.name: conn.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }
    finally:
        database.dispose()


def build_history(database: Database) -> Seed:
    """A board with imported history (March 2026) and live work through the API."""
    seed = seed_board(database)
    do_import(
        seed,
        [
            item(
                "Contract review",
                t(2),
                [
                    move(t(2, 10), "Build"),
                    move(t(3, 10), "Build", "ready"),
                    move(t(4, 10), "Review"),
                    move(t(5, 10), "Build"),
                    move(t(5, 16), "Build", "ready"),
                    move(t(6, 10), "Review"),
                    move(t(7, 10), "Done"),
                ],
                [block("Waiting for decision", t(3, 20), t(4, 14), note="Budget owner away")],
                class_of_service="expedite",
            ),
            item(
                "Supplier audit",
                t(3),
                [move(t(4, 9), "Build"), move(t(9, 9), "Build", "ready"), move(t(12), "Done")],
            ),
            item("Policy refresh", t(5), [move(t(6, 8), "Build")], [block("Dependency", t(8))]),
            item("Still an option", t(9)),
        ],
    )
    with TestClient(create_app(database, listen=False)) as client:
        api = Api(client, seed)
        done = api.item_in("done", title="Delivered live")
        criterion = api.ok(
            api.post(
                "manager",
                f"/states/{api.state('Build')}/criteria",
                {"text": "Owner named", "gate": "exit"},
            ),
            201,
        )
        building = api.item_in("build", title="Checked and blocked", class_of_service="intangible")
        api.ok(
            api.put("member", f"/items/{building['id']}/criteria/{criterion['id']}", {"met": True})
        )
        opened = api.ok(
            api.post(
                "member",
                f"/items/{building['id']}/blocks",
                {
                    "reason_id": api.reason_id(),
                    "note": "Needs the legal team",
                    "waiting_on": "Legal",
                },
            ),
            201,
        )
        api.ok(
            api.post("member", f"/items/{done['id']}/comments", {"body": "Shipped. Ünïcode ✓"}), 201
        )
        api.ok(api.post("member", f"/items/{building['id']}/comments", {"body": "Two\nlines"}), 201)
        resolved = api.item_in("build", owner="member2", title="Unblocked later")
        first = api.ok(
            api.post("member2", f"/items/{resolved['id']}/blocks", {"reason_id": api.reason_id()}),
            201,
        )
        api.ok(api.post("member2", f"/blocks/{first['id']}/resolve", {"note": "Answered"}))
        discarded = api.new_item(title="Not needed")
        api.ok(api.post("manager", f"/items/{discarded['id']}/discard", {"reason": "Duplicate"}))
        api.ok(
            api.put(
                "admin",
                f"/boards/{seed.board_id}/members/{seed.user('viewer').id}",
                {"role": "member"},
            )
        )
        assert opened["id"] != first["id"]
    return seed


def answers(url: str, board_id: int, admin_email: str) -> dict[str, Any]:
    """What the API says about the board, asked with the same token in every database."""
    database = Database(url)
    try:
        with database.unit_of_work() as session:
            admin = session.scalar(select(User).where(User.email == admin_email))
            assert admin is not None
            session.add(ApiToken(user_id=admin.id, token_hash=secret_hash(TOKEN)))
        with database.unit_of_work(write=False) as session:
            item_ids = list(session.scalars(select(Item.id).order_by(Item.id)))
            block_ids = list(session.scalars(select(Block.id).order_by(Block.id)))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        found: dict[str, Any] = {}
        with TestClient(create_app(database, listen=False)) as client:

            def get(path: str, **params: Any) -> None:
                response = client.get("/api/v1" + path, params=params, headers=headers)
                assert response.status_code == 200, (path, response.text)
                found[f"{path} {sorted(params.items())}"] = response.json()

            board = f"/boards/{board_id}"
            get("/boards")
            get(board)
            get(f"{board}/members")
            get(f"{board}/block-reasons")
            get(f"{board}/items", include_closed="true", limit=1000)
            get(f"{board}/events", limit=1000)
            get("/users")
            for item_id in item_ids:
                get(f"/items/{item_id}")
                get(f"/items/{item_id}/comments")
                get(f"/items/{item_id}/events")
            for block_id in block_ids:
                get(f"/blocks/{block_id}")
            for path in ("flow", "metrics/cycle-times", "metrics/cfd"):
                get(f"{board}/{path}", **WINDOW)
        return found
    finally:
        database.dispose()


def tables_of(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as file:
        document: dict[str, Any] = json.load(file)
    return document["tables"]


# --- SQLite -> PostgreSQL -> SQLite ---------------------------------------------------------


def test_sqlite_to_postgresql_and_back_answers_identically(
    databases: Callable[[str], str],
    use_cli: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_postgres_url()
    source = databases("sqlite")
    database = Database(source)
    seed = build_history(database)
    database.dispose()
    admin_email = seed.user("admin").email

    first = tmp_path / "from-sqlite.json"
    use_cli(source)
    code, out, err = run(capsys, "export", str(first))
    assert (code, err) == (0, "")
    assert out.startswith("Exported 7 users, 1 boards, 6 memberships, 4 states, 1 criteria")
    assert "without password hashes" in out
    assert list(tmp_path.glob(".*.partial")) == []

    postgres = databases("postgresql")
    use_cli(postgres)
    code, out, err = run(capsys, "restore", str(first))
    assert (code, err) == (0, "")
    assert "7 users were exported without password hashes" in out
    assert "flowboard reset-password EMAIL" in out

    second = tmp_path / "from-postgresql.json.gz"
    code, out, err = run(capsys, "export", str(second))
    assert (code, err) == (0, "")
    assert second.read_bytes()[:2] == b"\x1f\x8b"  # gzip, chosen by the name

    again = databases("sqlite")
    use_cli(again)
    code, out, err = run(capsys, "restore", str(second))
    assert (code, err) == (0, "")
    third = tmp_path / "from-sqlite-again.json"
    assert run(capsys, "export", str(third))[0] == 0

    assert tables_of(first) == tables_of(second) == tables_of(third)
    # Ages of open items count up to "now": ask all three databases at the same moment.
    moment = queries.now() + timedelta(hours=1)
    monkeypatch.setattr(queries, "now", lambda: moment)
    expected = answers(source, seed.board_id, admin_email)
    assert len(expected) > 30
    assert expected[f"/boards/{seed.board_id}/flow {sorted(WINDOW.items())}"]
    assert answers(postgres, seed.board_id, admin_email) == expected
    assert answers(again, seed.board_id, admin_email) == expected


# --- both databases -------------------------------------------------------------------------


def test_restore_refuses_a_non_empty_database_without_force(
    database: Database,
    seed: Seed,
    use_cli: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export = tmp_path / "board.json"
    use_cli(database.url)
    assert run(capsys, "export", str(export))[0] == 0
    with database.unit_of_work() as session:
        admin = session.get(User, seed.user("admin").id)
        assert admin is not None
        items.create_item(session=session, board_id=seed.board_id, actor=admin, title="Later")
    before = counts(database.url)

    code, out, err = run(capsys, "restore", str(export))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "not empty" in err and "--force" in err
    assert counts(database.url) == before

    code, out, err = run(capsys, "restore", str(export), "--force")
    assert (code, err) == (0, "")
    assert out.startswith("Replaced everything with 7 users, 1 boards")
    after = counts(database.url)
    assert after["item"] == before["item"] - 1  # the item made after the export is gone
    assert after["api_token"] == 0 and after["web_session"] == 0


def _corrupt_item_state(document: dict[str, Any]) -> None:
    section = document["tables"]["item"]
    section["rows"][0][section["columns"].index("state_id")] = 999_999


def _corrupt_role(document: dict[str, Any]) -> None:
    section = document["tables"]["membership"]
    section["rows"][-1][section["columns"].index("role")] = "owner"


def _corrupt_board_of_block(document: dict[str, Any]) -> None:
    section = document["tables"]["state"]
    other = dict(document["tables"]["board"])
    other["rows"] = [*other["rows"], [*other["rows"][0]]]
    columns = other["columns"]
    # An id no test board reaches (the shared PostgreSQL test database's ids keep growing).
    other["rows"][-1][columns.index("id")] = 1_000_000_000
    other["rows"][-1][columns.index("key")] = "OTH"
    document["tables"]["board"] = other
    document["counts"]["board"] += 1
    section["rows"][1][section["columns"].index("board_id")] = 1_000_000_000  # a state moves away


def _drop_title(document: dict[str, Any]) -> None:
    section = document["tables"]["item"]
    position = section["columns"].index("title")
    del section["columns"][position]
    for row in section["rows"]:
        del row[position]


def _null_title(document: dict[str, Any]) -> None:
    section = document["tables"]["item"]
    section["rows"][0][section["columns"].index("title")] = None


def _lose_an_event(document: dict[str, Any]) -> None:
    document["tables"]["event"]["rows"].pop()


def _duplicate_email(document: dict[str, Any]) -> None:
    section = document["tables"]["user_account"]
    position = section["columns"].index("email")
    section["rows"][1][position] = section["rows"][0][position]


def _bad_time(document: dict[str, Any]) -> None:
    section = document["tables"]["event"]
    section["rows"][0][section["columns"].index("at")] = "yesterday"


CORRUPTIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "bad-reference": (_corrupt_item_state, "state_id 999999 refers to no state row"),
    "bad-enum": (_corrupt_role, "role 'owner' is not one of viewer, member, reviewer, manager"),
    "cross-board": (_corrupt_board_of_block, "belongs to board 1000000000"),
    "missing-column": (_drop_title, "item: the column title is missing"),
    "null-required": (_null_title, "title is missing (null)"),
    "row-lost": (_lose_an_event, "it is incomplete"),
    "duplicate-unique": (_duplicate_email, "same email"),
    "bad-time": (_bad_time, "'yesterday' is not an ISO 8601 time"),
    "tables-reordered": (
        lambda d: d.update(tables=dict(sorted(d["tables"].items()))),
        "the audit_event table is out of place",
    ),
    "format-version": (lambda d: d.update(format_version=2), "format version 2"),
    "schema-revision": (lambda d: d.update(schema_revision="0002"), "schema revision 0002"),
}


@pytest.mark.parametrize("kind", [*CORRUPTIONS, "truncated", "truncated-gzip", "not-json"])
def test_a_corrupted_file_changes_nothing_and_says_why_in_one_line(
    kind: str,
    database: Database,
    seed: Seed,
    use_cli: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    do_import(seed, [item("Built", t(2), [move(t(3), "Build")]), item("Waiting", t(4))])
    good = tmp_path / "good.json"
    use_cli(database.url)
    assert run(capsys, "export", str(good))[0] == 0
    bad = tmp_path / "bad.json"
    if kind in CORRUPTIONS:
        corrupt, expected = CORRUPTIONS[kind]
        document = json.loads(good.read_text())
        corrupt(document)
        bad.write_text(json.dumps(document))
    elif kind == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        expected = "is not a complete JSON document"
    elif kind == "truncated-gzip":
        bad = tmp_path / "bad.json.gz"
        squeezed = gzip.compress(good.read_bytes())
        bad.write_bytes(squeezed[: len(squeezed) // 2])
        expected = "is cut short"
    else:
        bad.write_text("id,title\n1,not an export\n")
        expected = "is not a Flowboard export (not a JSON object)"
    before = counts(database.url)

    code, out, err = run(capsys, "restore", str(bad), "--force")  # --force: would empty first
    assert code == 1 and out == ""
    assert err.startswith("Nothing was restored: ") and err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in err
    assert counts(database.url) == before


def test_restore_needs_a_migrated_database(
    databases: Callable[[str], str],
    backend: str,
    seed: Seed,
    use_cli: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export = tmp_path / "board.json"
    use_cli(seed.database.url)
    assert run(capsys, "export", str(export))[0] == 0
    url, pg_name = fresh_database_url(backend, tmp_path)
    try:
        use_cli(url)
        code, _, err = run(capsys, "restore", str(export))
        assert code == 1
        assert "run `flowboard migrate` first" in err and err.count("\n") == 1
    finally:
        get_database().dispose()
        if pg_name:
            drop_postgres_database(pg_name)


def test_secrets_only_when_asked_and_never_tokens(
    databases: Callable[[str], str],
    backend: str,
    client: TestClient,
    seed: Seed,
    use_cli: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token_headers(client, seed.user("member"))  # an API token and its hash exist
    with seed.database.unit_of_work(write=False) as session:
        token_hash = session.scalar(select(ApiToken.token_hash))
    assert token_hash
    plain, secret = tmp_path / "plain.json", tmp_path / "secret.json"
    use_cli(seed.database.url)
    assert run(capsys, "export", str(plain))[0] == 0
    code, out, _ = run(capsys, "export", str(secret), "--with-secrets")
    assert code == 0 and "with password hashes" in out
    assert "$argon2" not in plain.read_text() and "password_hash" not in plain.read_text()
    assert secret.read_text().count("$argon2") == 7
    for path in (plain, secret):
        assert token_hash not in path.read_text()
        assert "api_token" not in path.read_text() and "web_session" not in path.read_text()
        assert path.stat().st_mode & 0o777 == 0o600

    for path, signs_in in ((plain, False), (secret, True)):
        target = databases(backend)
        use_cli(target)
        code, out, _ = run(capsys, "restore", str(path))
        assert code == 0
        assert ("reset-password" in out) is not signs_in
        restored = Database(target)
        try:
            with TestClient(create_app(restored, listen=False)) as other:
                response = other.post(
                    "/api/v1/auth/token",
                    data={"username": seed.user("member").email, "password": PASSWORD},
                )
            assert response.status_code == (200 if signs_in else 401), response.text
            with restored.unit_of_work(write=False) as session:
                hashes = set(session.scalars(select(User.password_hash)))
            assert (hashes == {UNUSABLE_PASSWORD}) is not signs_in
            if not signs_in:  # the way back in that the restore points to
                code, out, _ = run(capsys, "reset-password", seed.user("member").email)
                assert code == 0
                link_secret = out.strip().splitlines()[-1].rsplit("/", 1)[-1]
                with restored.unit_of_work() as session:
                    users.use_password_reset(
                        session=session, secret=link_secret, new_password="a brand new password"
                    )
                with TestClient(create_app(restored, listen=False)) as other:
                    response = other.post(
                        "/api/v1/auth/token",
                        data={
                            "username": seed.user("member").email,
                            "password": "a brand new password",
                        },
                    )
                assert response.status_code == 200, response.text
        finally:
            restored.dispose()


def test_new_rows_after_a_restore_get_fresh_ids(
    databases: Callable[[str], str],
    backend: str,
    seed: Seed,
    use_cli: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On PostgreSQL the sequences are moved past the restored ids (SQLite needs nothing)."""
    with seed.database.unit_of_work() as session:
        admin = session.get(User, seed.user("admin").id)
        assert admin is not None
        for n in range(5):
            detail = items.create_item(
                session=session, board_id=seed.board_id, actor=admin, title=f"Item {n}"
            )
        blocks.add_comment(session=session, item_id=detail.item.id, actor=admin, body="Hello")
    export = tmp_path / "board.json"
    use_cli(seed.database.url)
    assert run(capsys, "export", str(export))[0] == 0
    exported = tables_of(export)
    highest = {
        name: max((row[0] for row in section["rows"]), default=0)
        for name, section in exported.items()
        if section["columns"][0] == "id"
    }

    target = databases(backend)
    use_cli(target)
    assert run(capsys, "restore", str(export))[0] == 0
    restored = Database(target)
    try:
        with restored.unit_of_work() as session:
            admin = session.get(User, seed.user("admin").id)
            assert admin is not None
            user = make_user(session, "Newcomer")
            board = boards.create_board(
                session=session,
                actor=admin,
                name="After restore",
                key="NEW",
                template=None,
                states=None,
                personal_wip_limit=None,
                expedite_exceeds_limits=True,
            )
            detail = items.create_item(
                session=session, board_id=seed.board_id, actor=admin, title="After restore"
            )
            comment = blocks.add_comment(
                session=session, item_id=detail.item.id, actor=admin, body="Fresh"
            )
            token = users.issue_token(session=session, user=user)
            new_ids = {
                "user_account": user.id,
                "board": board.id,
                "item": detail.item.id,
                "comment": comment.id,
                "event": session.scalar(select(func.max(Event.id))) or 0,
            }
        assert token
        for name, new_id in new_ids.items():
            assert new_id > highest[name], (name, new_id, highest[name])
        with restored.unit_of_work(write=False) as session:
            assert session.scalar(select(func.count()).select_from(Comment)) == 2
    finally:
        restored.dispose()


def test_an_export_that_cannot_be_written_leaves_nothing_behind(
    seed: Seed,
    use_cli: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_cli(seed.database.url)
    code, out, err = run(capsys, "export", str(tmp_path / "missing" / "board.json"))
    assert code == 1 and out == ""
    assert err.startswith("Nothing was exported: Cannot write ") and err.count("\n") == 1
    # The whole file is written, then renaming it onto a folder fails: the partial file goes.
    taken = tmp_path / "taken.json"
    taken.mkdir()
    code, out, err = run(capsys, "export", str(taken))
    assert code == 1 and out == ""
    assert f"Cannot write {taken}: Is a directory." in err
    assert [p.name for p in tmp_path.iterdir() if p.name != "var"] == ["taken.json"]
    assert list(taken.iterdir()) == []


def test_a_reformatted_export_still_restores(
    databases: Callable[[str], str],
    backend: str,
    seed: Seed,
    use_cli: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The restore reads any JSON layout, even when every value straddles two chunks."""
    do_import(seed, [item('Ünïcode \u2603 and "quotes"', t(2), [move(t(3), "Build")])])
    export = tmp_path / "board.json"
    use_cli(seed.database.url)
    assert run(capsys, "export", str(export))[0] == 0
    document = json.loads(export.read_text())
    pretty = tmp_path / "pretty.json.gz"
    pretty.write_bytes(gzip.compress(json.dumps(document, indent=3).encode()))
    monkeypatch.setattr(_JsonStream, "CHUNK_CHARS", 7)

    target = databases(backend)
    use_cli(target)
    code, out, err = run(capsys, "restore", str(pretty))
    assert (code, err) == (0, ""), err
    assert out.startswith("Restored 7 users, 1 boards")
    again = tmp_path / "again.json"
    assert run(capsys, "export", str(again))[0] == 0
    assert tables_of(again) == document["tables"]


def test_the_export_reads_one_snapshot(seed: Seed) -> None:
    """A write committed while the export's transaction is open is not seen by it."""
    database = seed.database

    def event_count(conn: Any) -> int:
        return int(conn.scalar(select(func.count()).select_from(Event)))

    with _snapshot(database) as conn:
        before = event_count(conn)
        with database.unit_of_work() as session:
            admin = session.get(User, seed.user("admin").id)
            assert admin is not None
            items.create_item(session=session, board_id=seed.board_id, actor=admin, title="New")
        assert event_count(conn) == before
    with database.engine.connect() as conn:
        assert event_count(conn) == before + 1


def test_an_unreachable_database_is_explained_in_one_line(
    backend: str,
    seed: Seed,
    use_cli: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export = tmp_path / "board.json"
    use_cli(seed.database.url)
    assert run(capsys, "export", str(export))[0] == 0
    unreachable = (
        f"sqlite:///{tmp_path}/missing/flowboard.sqlite3"
        if backend == "sqlite"
        else "postgresql+psycopg://postgres@127.0.0.1:1/flowboard"  # nothing listens on port 1
    )
    use_cli(unreachable)
    code, out, err = run(capsys, "export", str(tmp_path / "other.json"))
    assert code == 1 and out == ""
    assert (
        err.startswith("Nothing was exported: Cannot read the database (") and err.count("\n") == 1
    )
    assert not (tmp_path / "other.json").exists()
    code, out, err = run(capsys, "restore", str(export))
    assert code == 1 and out == ""
    assert err.startswith("Nothing was restored: The database could not complete the restore (")
    assert err.count("\n") == 1
