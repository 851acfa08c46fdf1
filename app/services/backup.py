"""Export and restore: the whole database as one JSON document, and back again.

The export is one consistent snapshot (a single read transaction; REPEATABLE READ and read-only
on PostgreSQL) streamed row by row into a temporary file that is renamed into place only when
complete, so a reader never sees half a backup. A name ending in `.gz` gets gzip.

Layout (format version 1)::

    {"format": "flowboard-export", "format_version": 1, "schema_revision": "0003",
     "exported_at": "...", "source": "sqlite", "with_secrets": false,
     "tables": {"user_account": {"columns": ["id", "email", ...], "rows": [[1, "..."], ...]},
                ...},
     "counts": {"user_account": 7, ...}}

Tables come parents first, rows in primary-key order, one row a line. Password hashes are
left out unless asked for; API tokens, browser sessions, reset links, sign-in throttling and
Idempotency-Key answers are never exported (secrets or short-lived state).

A restore checks the whole file first (format, schema revision, columns, types, lengths, enum
values, unique keys, references between rows) and only then writes, in one transaction: all
or nothing. Ids are kept as exported; PostgreSQL sequences are then moved past them.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    Integer,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from app.db import backup_queries as bq
from app.db import models
from app.db.base import Base, UTCDateTime, utcnow
from app.db.migrate import alembic_config
from app.db.session import Database

FORMAT = "flowboard-export"
FORMAT_VERSION = 1

# What a backup holds, with the words the summaries use. Parents come before children in
# Base.metadata.sorted_tables, which fixes the order of both the file and the inserts.
LABELS = {
    "user_account": "users",
    "board": "boards",
    "membership": "memberships",
    "state": "states",
    "criterion": "criteria",
    "block_reason": "block reasons",
    "item": "items",
    "criterion_check": "criterion checks",
    "block": "blocks",
    "comment": "comments",
    "event": "events",
    "audit_event": "audit events",
}
PASSWORD_COLUMN = "password_hash"
# Not an Argon2 hash, so it verifies no password: such a user needs a reset link first.
UNUSABLE_PASSWORD = "!restored-without-password"

ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("membership", "role"): models.ROLES,
    ("state", "kind"): models.STATE_KINDS,
    ("state", "pull_role"): ("member", "reviewer"),
    ("criterion", "gate"): models.GATES,
    ("item", "stage"): models.STAGES,
    ("item", "class_of_service"): models.CLASSES_OF_SERVICE,
    ("event", "stage"): models.STAGES,
}
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # PostgreSQL's integer columns
INSERT_BATCH_ROWS = 1_000


class BackupError(Exception):
    """A one-line explanation of why nothing was exported or restored."""


def exported_tables() -> list[Table]:
    return [table for table in Base.metadata.sorted_tables if table.name in LABELS]


def describe(counts: dict[str, int]) -> str:
    """'7 users, 2 boards, ...' in the file's table order."""
    return ", ".join(f"{counts.get(name, 0)} {label}" for name, label in LABELS.items())


# --- export ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: Path
    counts: dict[str, int]
    with_secrets: bool

    def line(self) -> str:
        secrets = (
            "with password hashes" if self.with_secrets else "without password hashes"
        ) + "; tokens and sessions are never exported"
        return f"Exported {describe(self.counts)} to {self.path} ({secrets})."


def export_database(*, database: Database, path: Path, with_secrets: bool = False) -> ExportSummary:
    """Writes one consistent snapshot of the database to `path` (gzip if it ends in .gz).

    Raises BackupError (and leaves no file behind) when the database has no schema or the
    file cannot be written.
    """
    tables = exported_tables()
    with _snapshot(database) as conn:
        revision = bq.schema_revision(conn)
        if revision is None:
            raise BackupError("The database has no schema yet, so there is nothing to export.")
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "schema_revision": revision,
            "exported_at": utcnow().isoformat(),
            "source": conn.dialect.name,
            "with_secrets": with_secrets,
        }
        counts = _write_atomically(
            path, lambda out: _write_document(out, conn, tables, header, with_secrets)
        )
    return ExportSummary(path=path, counts=counts, with_secrets=with_secrets)


@contextmanager
def _snapshot(database: Database) -> Iterator[Connection]:
    """One read transaction: every table is read as of the same moment."""
    with database.engine.connect() as conn:
        if not database.is_sqlite:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        # SQLite (WAL): the deferred BEGIN's first read fixes the snapshot for the transaction.
        with conn.begin():
            yield conn


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _write_document(
    out: TextIO,
    conn: Connection,
    tables: list[Table],
    header: dict[str, Any],
    with_secrets: bool,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    out.write(json.dumps(header)[:-1] + ',\n"tables": {')
    for n, table in enumerate(tables):
        columns = [c for c in table.columns if with_secrets or c.name != PASSWORD_COLUMN]
        names = _dumps([c.name for c in columns])
        out.write(("," if n else "") + f'\n"{table.name}": {{"columns": {names}, "rows": [')
        count = 0
        for row in bq.table_rows(conn, table, columns):
            out.write(("," if count else "") + "\n" + _dumps([_jsonable(v) for v in row]))
            count += 1
        out.write("\n]}")
        counts[table.name] = count
    out.write('\n},\n"counts": ' + _dumps(counts) + "}\n")
    return counts


def _write_atomically(path: Path, write: Callable[[TextIO], dict[str, int]]) -> dict[str, int]:
    """Writes into a temporary file beside `path` (mode 0600), then renames it into place."""
    try:
        fd, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
        )
    except OSError as error:
        raise BackupError(f"Cannot write {path}: {error.strerror or error}.") from None
    try:
        with os.fdopen(fd, "wb") as raw:
            sink: io.BufferedIOBase = (
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.name.endswith(".gz") else raw
            )
            out = io.TextIOWrapper(cast(BinaryIO, sink), encoding="utf-8", newline="\n")
            result = write(out)
            out.flush()
            out.detach()
            if sink is not raw:
                sink.close()  # writes the gzip trailer; leaves `raw` open
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise BackupError(f"Cannot write {path}: {error.strerror or error}.") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)
    return result


def _sync_directory(directory: Path) -> None:
    """Makes the rename itself durable (best effort: not every platform allows it)."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- restore -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    path: Path
    counts: dict[str, int]
    replaced: bool
    users_without_password: list[str]

    def lines(self) -> list[str]:
        done = "Replaced everything with" if self.replaced else "Restored"
        lines = [f"{done} {describe(self.counts)} from {self.path}."]
        if self.users_without_password:
            lines.append(
                f"{len(self.users_without_password)} users were exported without password "
                "hashes and cannot sign in until they set a new one: give each a reset link "
                "with `flowboard reset-password EMAIL`."
            )
        return lines


@dataclass(slots=True)
class _Section:
    table: Table
    columns: list[Column[Any]]
    rows: list[list[Any]]


@dataclass(slots=True)
class _Plan:
    """A checked file: rows converted to Python values, ready to insert in this order."""

    revision: str
    sections: list[_Section] = field(default_factory=list)
    users_without_password: list[str] = field(default_factory=list)


def restore_database(*, database: Database, path: Path, force: bool = False) -> RestoreSummary:
    """Loads an export into the database in one transaction, keeping its ids.

    Raises BackupError, having written nothing, when the file is unreadable or inconsistent
    in any way, when the database's schema is not the file's, or when the database holds
    data and `force` is not given (with `force` its tables are emptied in the same transaction).
    """
    plan = check_export(read_export(path), path=path)
    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    if plan.revision != head:
        raise BackupError(
            f"{path} was exported at schema revision {plan.revision}, but this Flowboard "
            f"restores revision {head} only: restore it with the Flowboard version that wrote "
            "it, run `flowboard migrate`, and export again."
        )
    all_tables = list(reversed(Base.metadata.sorted_tables))  # children first
    try:
        with database.unit_of_work() as session:
            conn = session.connection()
            current = bq.schema_revision(conn)
            if current != head:
                raise BackupError(
                    "This database has no schema yet: run `flowboard migrate` first."
                    if current is None
                    else f"This database is at schema revision {current}, not {head}: "
                    "run `flowboard migrate` first."
                )
            occupied = bq.tables_with_rows(conn, all_tables)
            if occupied and not force:
                raise BackupError(
                    f"The database is not empty ({', '.join(sorted(occupied))} hold rows): "
                    "restore into an empty database, or pass --force to replace everything in it."
                )
            if occupied:
                _empty(conn, all_tables, sqlite=database.is_sqlite)
            for section in plan.sections:
                _insert(conn, section)
            if not database.is_sqlite:
                _move_sequences(conn, [s.table for s in plan.sections])
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise BackupError(f"The database refused the restore ({reason}).") from None
    return RestoreSummary(
        path=path,
        counts={s.table.name: len(s.rows) for s in plan.sections},
        replaced=bool(occupied),
        users_without_password=plan.users_without_password,
    )


def read_export(path: Path) -> Any:
    """The file's JSON (gzip recognised by its magic bytes, whatever the name)."""
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            return json.load(stream)
    except FileNotFoundError:
        raise BackupError(f"There is no file {path}.") from None
    except EOFError:
        raise BackupError(f"{path} is cut short (its gzip stream ends early).") from None
    except UnicodeDecodeError:
        raise BackupError(f"{path} is not UTF-8 text, so it is not a Flowboard export.") from None
    except json.JSONDecodeError as error:
        raise BackupError(
            f"{path} is not a complete JSON document ({error.msg} at line {error.lineno}, "
            f"column {error.colno})."
        ) from None
    except RecursionError:
        raise BackupError(f"{path} is nested too deeply to be a Flowboard export.") from None
    except OSError as error:  # includes gzip.BadGzipFile
        raise BackupError(f"Cannot read {path}: {error.strerror or error}.") from None


def check_export(document: Any, *, path: Path) -> _Plan:
    """Checks everything in a parsed export; raises BackupError naming the first problem."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupError(f'{path} is not a Flowboard export (no "format": "{FORMAT}").')
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise BackupError(
            f"{path} has format version {version!r}; this Flowboard reads version {FORMAT_VERSION}."
        )
    revision = document.get("schema_revision")
    if not isinstance(revision, str) or not revision:
        raise BackupError(f"{path} does not say which schema revision it was exported at.")
    tables = document.get("tables")
    counts = document.get("counts")
    if not isinstance(tables, dict) or not isinstance(counts, dict):
        raise BackupError(f'{path} lacks its "tables" or its "counts".')
    unknown = sorted(set(tables) - set(LABELS))
    if unknown:
        raise BackupError(f"{path} holds a table this Flowboard does not know: {unknown[0]}.")
    checker = _Checker()
    plan = _Plan(revision=revision)
    for table in exported_tables():
        section = tables.get(table.name)
        if not isinstance(section, dict):
            raise BackupError(f"{path} lacks the {table.name} table.")
        plan.sections.append(checker.check_table(table, section, counts.get(table.name)))
    users = next(s for s in plan.sections if s.table.name == "user_account")
    names = [c.name for c in users.columns]
    if PASSWORD_COLUMN not in names:
        plan.users_without_password = [row[names.index("email")] for row in users.rows]
    return plan


Convert = Callable[[Any], Any]


class _Checker:
    """Row checks, remembering ids (and each row's board) for the references that follow."""

    def __init__(self) -> None:
        self.ids: dict[str, set[int]] = {}
        self.board_of: dict[str, dict[int, int]] = {"state": {}, "item": {}, "block_reason": {}}
        self.state_of_criterion: dict[int, int] = {}
        self.items_with_open_block: set[int] = set()

    def check_table(self, table: Table, section: dict[str, Any], count: Any) -> _Section:
        name = table.name
        given = section.get("columns")
        rows = section.get("rows")
        if not isinstance(given, list) or not isinstance(rows, list):
            raise BackupError(f'{name}: "columns" and "rows" must be lists.')
        if count != len(rows):
            raise BackupError(
                f"{name}: the file says {count!r} rows but holds {len(rows)}; it is incomplete."
            )
        known = {c.name: c for c in table.columns}
        for column_name in given:
            if column_name not in known:
                raise BackupError(f"{name}: there is no column {column_name!r}.")
        if len(set(given)) != len(given):
            raise BackupError(f"{name}: a column is listed twice.")
        optional = {PASSWORD_COLUMN} if name == "user_account" else set()
        missing = [c for c in known if c not in given and c not in optional]
        if missing:
            raise BackupError(f"{name}: the column {missing[0]} is missing.")
        columns = [known[c] for c in given]
        converters = [_converter(c) for c in columns]
        enums = [ENUMS.get((name, c.name)) for c in columns]
        single_id = len(table.primary_key.columns) == 1 and "id" in given
        id_position = given.index("id") if single_id else None
        ids: set[int] = set()
        unique_sets = _unique_keys(table, given)
        for number, row in enumerate(rows, start=1):
            where = f"{name} row {number}"
            if not isinstance(row, list) or len(row) != len(columns):
                raise BackupError(f"{where}: expected a list of {len(columns)} values.")
            if id_position is not None and isinstance(row[id_position], int):
                where += f" (id {row[id_position]})"
            for position, (column, convert, allowed) in enumerate(
                zip(columns, converters, enums, strict=True)
            ):
                value = row[position]
                if value is None:
                    if not column.nullable:
                        raise BackupError(f"{where}: {column.name} is missing (null).")
                    continue
                try:
                    value = convert(value)
                except (TypeError, ValueError, OverflowError) as error:
                    raise BackupError(f"{where}: {column.name} {error}.") from None
                if allowed is not None and value not in allowed:
                    raise BackupError(
                        f"{where}: {column.name} {value!r} is not one of {', '.join(allowed)}."
                    )
                row[position] = value
            values = dict(zip(given, row, strict=True))
            for key_columns, seen in unique_sets:
                key = tuple(values[c] for c in key_columns)
                if None in key:
                    continue
                if key in seen:
                    shown = ", ".join(f"{c} {values[c]!r}" for c in key_columns)
                    raise BackupError(f"{where}: another {name} row has the same {shown}.")
                seen.add(key)
            self._check_references(table, values, where)
            if id_position is not None:
                ids.add(values["id"])
            self._remember(name, values, where)
        if id_position is not None:
            self.ids[name] = ids
        return _Section(table=table, columns=columns, rows=rows)

    def _check_references(self, table: Table, values: dict[str, Any], where: str) -> None:
        for foreign_key in table.foreign_keys:
            column = foreign_key.parent.name
            parent = foreign_key.column.table.name
            value = values.get(column)
            if value is None or parent not in self.ids:
                continue
            if value not in self.ids[parent]:
                raise BackupError(f"{where}: {column} {value} refers to no {parent} row.")

    def _same_board(self, where: str, values: dict[str, Any], column: str, kind: str) -> None:
        value = values.get(column)
        if value is None:
            return
        board = self.board_of[kind].get(value)
        if board != values["board_id"]:
            raise BackupError(
                f"{where}: {column} {value} belongs to board {board}, not board "
                f"{values['board_id']}."
            )

    def _remember(self, name: str, values: dict[str, Any], where: str) -> None:
        """Board-level consistency the foreign keys cannot express, and what later rows need."""
        if name in self.board_of:
            self.board_of[name][values["id"]] = values["board_id"]
        if name == "item":
            self._same_board(where, values, "state_id", "state")
        elif name == "criterion":
            self.state_of_criterion[values["id"]] = values["state_id"]
        elif name == "block":
            self._same_board(where, values, "item_id", "item")
            self._same_board(where, values, "reason_id", "block_reason")
            self._same_board(where, values, "state_id", "state")
            if values["resolved_at"] is None:
                if values["item_id"] in self.items_with_open_block:
                    raise BackupError(f"{where}: item {values['item_id']} has two open blocks.")
                self.items_with_open_block.add(values["item_id"])
        elif name == "event":
            self._same_board(where, values, "item_id", "item")
        elif name == "criterion_check":
            state = self.state_of_criterion[values["criterion_id"]]
            criterion_board = self.board_of["state"][state]
            item_board = self.board_of["item"][values["item_id"]]
            if criterion_board != item_board:
                raise BackupError(
                    f"{where}: criterion {values['criterion_id']} is on board {criterion_board}, "
                    f"item {values['item_id']} on board {item_board}."
                )


def _unique_keys(table: Table, given: list[str]) -> list[tuple[tuple[str, ...], set[Any]]]:
    """The column sets that must be unique: the primary key, unique constraints and indexes."""
    keys = [tuple(c.name for c in table.primary_key.columns)]
    keys += [
        tuple(c.name for c in constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    # Partial unique indexes (one open block per item) are checked by _Checker._remember.
    keys += [
        tuple(c.name for c in index.columns)
        for index in table.indexes
        if index.unique and index.dialect_options["postgresql"].get("where") is None
    ]
    unique = list(dict.fromkeys(k for k in keys if k and all(c in given for c in k)))
    return [(key, set()) for key in unique]


def _converter(column: Column[Any]) -> Convert:
    """Turns a JSON value into the column's Python value, or raises saying what is wrong."""
    type_ = column.type
    if isinstance(type_, UTCDateTime):
        return _to_datetime
    if isinstance(type_, Date):
        return _to_date
    if isinstance(type_, Boolean):
        return _to_bool
    if isinstance(type_, Integer):
        return _to_id if column.primary_key else _to_int
    if isinstance(type_, String):
        return _text_converter(type_.length)
    if isinstance(type_, JSON):
        return _to_object
    raise TypeError(f"no backup converter for {column.table.name}.{column.name}")


def _to_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("must be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value[:40]!r} has no time zone")
    return parsed


def _to_date(value: Any) -> date:
    if not isinstance(value, str):
        raise TypeError("must be an ISO 8601 date")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 date") from None


def _to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("must be true or false")
    return value


def _to_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("must be a whole number")
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"{value} is out of range")
    return value


def _to_id(value: Any) -> int:
    value = _to_int(value)
    if value < 1:
        raise ValueError(f"{value} is not a valid id")
    return value


def _text_converter(length: int | None) -> Convert:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError("must be text")
        if length is not None and len(value) > length:
            raise ValueError(f"is longer than {length} characters")
        if "\x00" in value:  # PostgreSQL cannot store it
            raise ValueError("contains a NUL character")
        return value

    return convert


def _to_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("must be a JSON object")
    return value


# --- writing -----------------------------------------------------------------------------


def _empty(conn: Connection, tables: list[Table], *, sqlite: bool) -> None:
    """Empties every table (children first), inside the restore's transaction."""
    if sqlite:
        for table in tables:
            conn.execute(delete(table))
    else:
        # Transactional on PostgreSQL, and far quicker than DELETE on large tables.
        names = ", ".join(f'"{table.name}"' for table in tables)
        conn.execute(text(f"TRUNCATE {names}"))


def _insert(conn: Connection, section: _Section) -> None:
    keys = [c.key for c in section.columns]
    extra: dict[str, Any] = {}
    if section.table.name == "user_account" and PASSWORD_COLUMN not in keys:
        extra[PASSWORD_COLUMN] = UNUSABLE_PASSWORD
    rows = section.rows
    for start in range(0, len(rows), INSERT_BATCH_ROWS):
        batch = [
            dict(zip(keys, row, strict=True)) | extra
            for row in rows[start : start + INSERT_BATCH_ROWS]
        ]
        conn.execute(section.table.insert(), batch)


def _move_sequences(conn: Connection, tables: list[Table]) -> None:
    """PostgreSQL: the next id of each restored table comes after the highest restored one."""
    for table in tables:
        primary = list(table.primary_key.columns)
        if len(primary) != 1 or not isinstance(primary[0].type, Integer):
            continue
        sequence = conn.scalar(
            text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": table.name, "column": primary[0].name},
        )
        if sequence is None:
            continue
        highest = conn.scalar(select(func.max(primary[0]))) or 0
        conn.execute(
            text("SELECT setval(:sequence, :next, false)"),
            {"sequence": sequence, "next": highest + 1},
        )
