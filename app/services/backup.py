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

A restore reads the file twice, streaming: first it checks all of it (format, schema
revision, columns, types, lengths, enum values, unique keys, references between rows), then,
in one transaction, it inserts it: all or nothing. Ids are kept as exported; PostgreSQL
sequences are then moved past them.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
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
# Tables whose rows _Checker._remember checks or remembers beyond keys and references.
CONSISTENCY_CHECKED = frozenset(
    {"state", "item", "block_reason", "criterion", "block", "event", "criterion_check"}
)
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # PostgreSQL's integer columns
INSERT_BATCH_ROWS = 1_000


class BackupError(Exception):
    """A one-line explanation of why nothing was exported or restored."""


def exported_tables() -> list[Table]:
    return [table for table in Base.metadata.sorted_tables if table.name in LABELS]


def describe(counts: dict[str, int]) -> str:
    """'7 users, 2 boards, ...' (every table, always in the same order)."""
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
    try:
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
    except SQLAlchemyError as error:
        raise BackupError(f"Cannot read the database ({_first_line(error)}).") from None
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
        count = len(self.users_without_password)
        if count:
            who = "1 user was" if count == 1 else f"{count} users were"
            lines.append(
                f"{who} exported without password hashes and cannot sign in until they set "
                "a new password: give each a reset link with `flowboard reset-password EMAIL`."
            )
        return lines


def restore_database(*, database: Database, path: Path, force: bool = False) -> RestoreSummary:
    """Loads an export into the database in one transaction, keeping its ids.

    The file is read twice, streaming: once to check all of it, then inside the transaction
    to insert it, so neither pass holds more than a batch of rows. Raises BackupError, having
    written nothing, when the file is unreadable or inconsistent in any way, when the
    database's schema is not the file's, or when the database holds data and `force` is not
    given (with `force` its tables are emptied in the same transaction).
    """
    checked = _read_export(path, insert=None)
    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    if checked.revision != head:
        raise BackupError(
            f"{path} was exported at schema revision {checked.revision}, but this Flowboard "
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
            loaded = _read_export(
                path, insert=lambda table, rows: conn.execute(table.insert(), rows)
            )
            if loaded.counts != checked.counts:
                raise BackupError(f"{path} changed while it was being restored.")
            if not database.is_sqlite:
                _move_sequences(conn, exported_tables())
    except SQLAlchemyError as error:
        raise BackupError(
            f"The database could not complete the restore ({_first_line(error)})."
        ) from None
    return RestoreSummary(
        path=path,
        counts=checked.counts,
        replaced=bool(occupied),
        users_without_password=checked.users_without_password,
    )


def _first_line(error: SQLAlchemyError) -> str:
    """The driver's own message, without SQLAlchemy's statement and parameters."""
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


Insert = Callable[[Table, list[dict[str, Any]]], object]


@dataclass(slots=True)
class _Checked:
    """What a full read of an export found."""

    revision: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    users_without_password: list[str] = field(default_factory=list)


def _read_export(path: Path, *, insert: Insert | None) -> _Checked:
    """Reads and checks the whole export; with `insert`, hands it each batch of checked rows.

    Raises BackupError naming the first problem.
    """
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"  # gzip, whatever the file's name
            raw.seek(0)
            binary = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            text = io.TextIOWrapper(cast(BinaryIO, binary), encoding="utf-8-sig")  # BOM or not
            return _Reader(path, insert).read(_JsonStream(text))
    except FileNotFoundError:
        raise BackupError(f"There is no file {path}.") from None
    except EOFError:
        raise BackupError(f"{path} is cut short (its gzip stream ends early).") from None
    except UnicodeDecodeError:
        raise BackupError(f"{path} is not UTF-8 text, so it is not a Flowboard export.") from None
    except _Malformed as error:
        raise BackupError(f"{path} is not a complete JSON document ({error}).") from None
    except RecursionError:
        raise BackupError(f"{path} is nested too deeply to be a Flowboard export.") from None
    except OSError as error:  # includes gzip.BadGzipFile
        raise BackupError(f"Cannot read {path}: {error.strerror or error}.") from None


class _Reader:
    """One pass over an export: the header first, then each table's rows in order."""

    def __init__(self, path: Path, insert: Insert | None) -> None:
        self.path = path
        self.insert = insert
        # The inserting pass re-reads a file the checking pass has just read in full.
        self.checker = _Checker(full=insert is None)
        self.header: dict[str, Any] = {}
        self.found = _Checked()
        self.header_checked = False

    def read(self, stream: _JsonStream) -> _Checked:
        if stream.peek() != "{":
            raise BackupError(f"{self.path} is not a Flowboard export (not a JSON object).")
        for key in stream.members():
            if key == "tables":
                self._check_header()
                self._tables(stream)
            else:
                self.header[key] = stream.value()
        stream.end()
        self._check_header()
        if "tables" not in self.header and not self.found.counts:
            raise BackupError(f'{self.path} lacks its "tables".')
        counts = self.header.get("counts")
        if not isinstance(counts, dict):
            raise BackupError(f'{self.path} lacks its "counts".')
        for name, count in self.found.counts.items():
            if counts.get(name) != count:
                raise BackupError(
                    f"{name}: the file says {counts.get(name)!r} rows but holds {count}; "
                    "it is incomplete."
                )
        return self.found

    def _check_header(self) -> None:
        if self.header_checked:
            return
        header, path = self.header, self.path
        if header.get("format") != FORMAT:
            raise BackupError(f'{path} is not a Flowboard export (no "format": "{FORMAT}" first).')
        version = header.get("format_version")
        if version != FORMAT_VERSION:
            raise BackupError(
                f"{path} has format version {version!r}; this Flowboard reads version "
                f"{FORMAT_VERSION}."
            )
        revision = header.get("schema_revision")
        if not isinstance(revision, str) or not revision:
            raise BackupError(f"{path} does not say which schema revision it was exported at.")
        self.found.revision = revision
        self.header_checked = True

    def _tables(self, stream: _JsonStream) -> None:
        if stream.peek() != "{":
            raise BackupError(f'{self.path}: "tables" must be an object.')
        expected = iter(exported_tables())
        for name in stream.members():
            table = next(expected, None)
            if name not in LABELS:
                raise BackupError(
                    f"{self.path} holds a table this Flowboard does not know: {name}."
                )
            if table is None or name != table.name:
                raise BackupError(
                    f"{self.path}: the {name} table is out of place; tables must stay in the "
                    "order `flowboard export` writes them (parents first)."
                )
            self._table(stream, table)
        missing = next(expected, None)
        if missing is not None:
            raise BackupError(f"{self.path} lacks the {missing.name} table.")

    def _table(self, stream: _JsonStream, table: Table) -> None:
        if stream.peek() != "{":
            raise BackupError(f"{table.name}: expected an object with columns and rows.")
        shape: _TableShape | None = None
        rows_read = False
        for part in stream.members():
            if part == "columns":
                shape = self.checker.begin(table, stream.value())
            elif part == "rows" and shape is not None:
                self._rows(stream, shape)
                rows_read = True
            else:
                raise BackupError(f'{table.name}: expected "columns", then "rows", not {part!r}.')
        if shape is None or not rows_read:
            raise BackupError(f'{table.name}: "columns" or "rows" is missing.')
        self.found.counts[table.name] = shape.count

    def _rows(self, stream: _JsonStream, shape: _TableShape) -> None:
        if stream.peek() != "[":
            raise BackupError(f'{shape.table.name}: "rows" must be a list.')
        without_password = shape.table.name == "user_account" and PASSWORD_COLUMN not in shape.keys
        email = shape.keys.index("email") if without_password else -1
        batch: list[dict[str, Any]] = []
        for _ in stream.elements():
            row = self.checker.row(shape, stream.value())
            if without_password:
                self.found.users_without_password.append(row[email])
            if self.insert is not None:
                batch.append(dict(zip(shape.keys, row, strict=True)) | shape.extra)
                if len(batch) >= INSERT_BATCH_ROWS:
                    self.insert(shape.table, batch)
                    batch = []
        if batch and self.insert is not None:
            self.insert(shape.table, batch)


class _Malformed(Exception):
    """The text is not the JSON expected here; the message says what and where."""


_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _JsonStream:
    """One JSON document read piece by piece: objects and arrays are walked, other values
    decoded whole. Holds one chunk of text and the value being read, never the document."""

    CHUNK_CHARS = 1 << 16
    # No value of an export comes near this; a bigger one means a broken file, not a long row.
    MAX_VALUE_CHARS = 64 << 20

    def __init__(self, text: TextIO) -> None:
        self._text = text
        self._buffer = ""
        self._pos = 0
        self._dropped = 0  # characters before the buffer
        self._eof = False

    def _more(self) -> bool:
        """Reads on (keeping the unread part); False at the end of the file."""
        if self._eof:
            return False
        # Growing geometrically keeps a value that spans many chunks linear to read.
        chunk = self._text.read(max(self.CHUNK_CHARS, len(self._buffer) - self._pos))
        if not chunk:
            self._eof = True
            return False
        self._dropped += self._pos
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def _where(self, pos: int | None = None) -> str:
        return f"at character {self._dropped + (self._pos if pos is None else pos) + 1}"

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end), left unread."""
        while True:
            match = _WHITESPACE.match(self._buffer, self._pos)
            self._pos = match.end() if match else self._pos
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._more():
                return ""

    def _take(self, expected: str) -> str:
        found = self.peek()
        if found == "":
            raise _Malformed(f"the file ends early {self._where()}")
        if found not in expected:
            raise _Malformed(f"expected {' or '.join(expected)} {self._where()}")
        self._pos += 1
        return found

    def value(self) -> Any:
        if self.peek() == "":
            raise _Malformed(f"the file ends early {self._where()}")
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                if len(self._buffer) - self._pos < self.MAX_VALUE_CHARS and self._more():
                    continue  # the value may go on in the next chunk
                if self._eof and error.pos >= len(self._buffer) - 1:
                    raise _Malformed(f"the file ends early {self._where(error.pos)}") from None
                raise _Malformed(f"{error.msg} {self._where(error.pos)}") from None
            if end == len(self._buffer) and self._more():
                continue  # a number may go on in the next chunk
            self._pos = end
            return value

    def members(self) -> Iterator[str]:
        """The keys of the object that starts here; read each key's value before the next."""
        self._take("{")
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            if self.peek() != '"':
                raise _Malformed(f"expected a key {self._where()}")
            key = self.value()
            self._take(":")
            yield key
            if self._take(",}") == "}":
                return

    def elements(self) -> Iterator[None]:
        """Steps through the array that starts here; read each element before the next."""
        self._take("[")
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            yield None
            if self._take(",]") == "]":
                return

    def end(self) -> None:
        if self.peek() != "":
            raise _Malformed(f"more text after the document {self._where()}")


Convert = Callable[[Any], Any]


# (position, column name, nullable, lowest whole number or None, converter, allowed values)
_ColumnCheck = tuple[int, str, bool, int | None, Convert, tuple[str, ...] | None]
# (position, column name, parent table, the parent's ids so far)
_Reference = tuple[int, str, str, set[int]]


@dataclass(slots=True)
class _TableShape:
    """A table's columns as the file lists them, with what each row is checked against."""

    table: Table
    keys: list[str]
    checks: list[_ColumnCheck]
    id_position: int | None
    ids: set[int]
    unique: list[tuple[tuple[str, ...], set[Any]]]
    references: list[_Reference]
    extra: dict[str, Any]
    count: int = 0


class _Checker:
    """Row checks, remembering ids (and each row's board) for the references that follow.

    With `full=False` rows are only converted (the second, inserting pass: the first pass
    checked the same file, and the database's own constraints remain as a backstop).
    """

    def __init__(self, *, full: bool = True) -> None:
        self.full = full
        self.ids: dict[str, set[int]] = {}
        self.board_of: dict[str, dict[int, int]] = {"state": {}, "item": {}, "block_reason": {}}
        self.state_of_criterion: dict[int, int] = {}
        self.items_with_open_block: set[int] = set()

    def begin(self, table: Table, given: Any) -> _TableShape:
        name = table.name
        if not isinstance(given, list) or not all(isinstance(c, str) for c in given):
            raise BackupError(f'{name}: "columns" must be a list of names.')
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
        checks: list[_ColumnCheck] = []
        for position, column in enumerate(columns):
            lowest = None
            if isinstance(column.type, Integer):
                lowest = 1 if column.primary_key else INT_MIN
            checks.append(
                (
                    position,
                    column.name,
                    bool(column.nullable),
                    lowest,
                    _converter(column),
                    ENUMS.get((name, column.name)),
                )
            )
        single_id = [c.name for c in table.primary_key.columns] == ["id"]
        ids: set[int] = set()
        if single_id:
            self.ids[name] = ids
        references: list[_Reference] = []
        for foreign_key in table.foreign_keys:
            parent = foreign_key.column.table.name
            if parent in self.ids and parent != name:
                column_name = foreign_key.parent.name
                references.append((given.index(column_name), column_name, parent, self.ids[parent]))
        extra = {}
        if name == "user_account" and PASSWORD_COLUMN not in given:
            extra[PASSWORD_COLUMN] = UNUSABLE_PASSWORD
        return _TableShape(
            table=table,
            keys=[c.key for c in columns],
            checks=checks,
            id_position=given.index("id") if single_id else None,
            ids=ids,
            unique=_unique_keys(table, given, skip_primary=single_id),
            references=references,
            extra=extra,
        )

    def row(self, shape: _TableShape, row: Any) -> list[Any]:
        """The row with Python values, or BackupError saying what is wrong with it."""
        shape.count += 1
        if type(row) is not list or len(row) != len(shape.checks):
            raise BackupError(
                f"{_where(shape, row)}: expected a list of {len(shape.checks)} values."
            )
        for position, name, nullable, lowest, convert, allowed in shape.checks:
            value = row[position]
            if value is None:
                if not nullable:
                    raise BackupError(f"{_where(shape, row)}: {name} is missing (null).")
                continue
            if lowest is not None and type(value) is int and lowest <= value <= INT_MAX:
                continue  # most values: a whole number in range, kept as it is
            try:
                value = convert(value)
            except (TypeError, ValueError, OverflowError) as error:
                raise BackupError(f"{_where(shape, row)}: {name} {error}.") from None
            if allowed is not None and value not in allowed:
                raise BackupError(
                    f"{_where(shape, row)}: {name} {value!r} is not one of {', '.join(allowed)}."
                )
            row[position] = value
        if self.full:
            self._check(shape, row)
        return row

    def _check(self, shape: _TableShape, row: list[Any]) -> None:
        """Unique keys and references to earlier rows."""
        name = shape.table.name
        if shape.id_position is not None:
            if row[shape.id_position] in shape.ids:
                raise BackupError(f"{_where(shape, row)}: another {name} row has the same id.")
            shape.ids.add(row[shape.id_position])
        values = dict(zip(shape.keys, row, strict=True))
        for key_columns, seen in shape.unique:
            key = tuple(values[c] for c in key_columns)
            if None in key:
                continue
            if key in seen:
                shown = ", ".join(f"{c} {values[c]!r}" for c in key_columns)
                raise BackupError(f"{_where(shape, row)}: another {name} row has the same {shown}.")
            seen.add(key)
        for position, column, parent, parent_ids in shape.references:
            value = row[position]
            if value is not None and value not in parent_ids:
                raise BackupError(
                    f"{_where(shape, row)}: {column} {value} refers to no {parent} row."
                )
        if name in CONSISTENCY_CHECKED:
            self._remember(name, values, lambda: _where(shape, row))

    def _same_board(
        self, where: Callable[[], str], values: dict[str, Any], column: str, kind: str
    ) -> None:
        value = values[column]
        if value is None:
            return
        board = self.board_of[kind].get(value)
        if board != values["board_id"]:
            raise BackupError(
                f"{where()}: {column} {value} belongs to board {board}, not board "
                f"{values['board_id']}."
            )

    def _remember(self, name: str, values: dict[str, Any], where: Callable[[], str]) -> None:
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
                    raise BackupError(f"{where()}: item {values['item_id']} has two open blocks.")
                self.items_with_open_block.add(values["item_id"])
        elif name == "event":
            self._same_board(where, values, "item_id", "item")
        elif name == "criterion_check":
            state = self.state_of_criterion[values["criterion_id"]]
            criterion_board = self.board_of["state"][state]
            item_board = self.board_of["item"][values["item_id"]]
            if criterion_board != item_board:
                raise BackupError(
                    f"{where()}: criterion {values['criterion_id']} is on board "
                    f"{criterion_board}, item {values['item_id']} on board {item_board}."
                )


def _where(shape: _TableShape, row: Any) -> str:
    """'item row 17 (id 230)': built only for an error message."""
    where = f"{shape.table.name} row {shape.count}"
    position = shape.id_position
    if position is not None and isinstance(row, list) and len(row) > position:
        where += f" (id {row[position]!r})"
    return where


def _unique_keys(
    table: Table, given: list[str], *, skip_primary: bool
) -> list[tuple[tuple[str, ...], set[Any]]]:
    """The column sets that must be unique: the primary key (unless the caller tracks it),
    unique constraints and unique indexes."""
    keys = [] if skip_primary else [tuple(c.name for c in table.primary_key.columns)]
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
