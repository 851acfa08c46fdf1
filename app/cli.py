"""The `flowboard` command: serve, migrate, create-user, demo, import-history, export, restore."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from app.config import VAR_DIR, get_settings

CREDENTIALS_FILE = VAR_DIR / "demo-credentials.txt"


# glibc gives each thread that allocates a malloc arena of its own (up to 8 per core), and
# pages freed in one stay with that arena: the threadpool's threads left ~8 MB more RSS per
# process after 16 concurrent clients. Python holds the GIL anyway, so two arenas lose nothing.
MALLOC_ARENAS = 2


def _database_url() -> str:
    return get_settings().resolved_database_url()


def _limit_malloc_arenas() -> None:
    """MALLOC_ARENA_MAX for this process and the workers it starts (an operator's own value
    stays). Before any thread exists: arenas are made as threads first allocate."""
    import contextlib
    import ctypes
    import os

    if "MALLOC_ARENA_MAX" in os.environ:
        return  # glibc read it when this process started
    os.environ["MALLOC_ARENA_MAX"] = str(MALLOC_ARENAS)  # worker processes read it at start
    # Not glibc (no mallopt): that allocator has no per-thread arenas to bound.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX, for this running process


def cmd_migrate(_args: argparse.Namespace) -> int:
    from app.db.migrate import upgrade

    upgrade(_database_url())
    print("Database schema is at the newest migration.")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from app.db.session import WORKERS_ENV

    if args.workers < 1:
        print("flowboard serve: --workers must be 1 or more.", file=sys.stderr)
        return 2
    if args.workers > 1 and _database_url().startswith("sqlite"):
        print(
            f"flowboard serve: --workers {args.workers} needs PostgreSQL. On SQLite one process "
            "is the limit: SQLite allows one writer at a time, and only inside one process do "
            "writers wait their turn in order (across processes they poll for the lock, and "
            "the slowest requests wait seconds). Set FLOWBOARD_DATABASE_URL to a PostgreSQL URL "
            "to run more.",
            file=sys.stderr,
        )
        return 2
    # Each worker process sizes its connection pool by how many share the database.
    os.environ[WORKERS_ENV] = str(args.workers)
    _limit_malloc_arenas()
    cmd_migrate(args)
    print(f"Flowboard is serving on http://{args.host}:{args.port}/  (Ctrl+C stops it)")
    if CREDENTIALS_FILE.exists():
        print(CREDENTIALS_FILE.read_text().strip())
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # Forwarded headers are believed by the app's own middleware, from
        # FLOWBOARD_TRUSTED_PROXIES only (uvicorn's default would trust 127.0.0.1).
        proxy_headers=False,
        # httptools hands over oversized headers, so the app answers them 431 itself
        # (h11 would refuse a 1 MB header with a 400 and may reset the connection).
        http="httptools",
        log_level="info",
    )
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    from app.db.session import get_database
    from app.flow.errors import FlowError
    from app.services import users

    password = args.password
    if password is None:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            print("The passwords differ; nothing was created.", file=sys.stderr)
            return 1
    try:
        with get_database().unit_of_work() as session:
            user = users.create_user(
                session=session,
                email=args.email,
                name=args.name,
                password=password,
                is_admin=args.admin,
            )
            print(f"Created {'admin ' if user.is_admin else ''}user {user.name} <{user.email}>.")
    except FlowError as error:
        print(f"Not created: {error.detail}", file=sys.stderr)
        return 1
    return 0


def cmd_reset_password(args: argparse.Namespace) -> int:
    from app.db.session import get_database
    from app.flow.errors import FlowError
    from app.services import users

    try:
        with get_database().unit_of_work() as session:
            user, secret, _ = users.issue_password_reset(session=session, email=args.email)
    except FlowError as error:
        print(f"No link made: {error.detail}", file=sys.stderr)
        return 1
    link = f"{get_settings().public_url.rstrip('/')}/reset-password/{secret}"
    print(f"A one-time link for {user.name} <{user.email}> to set a new password")
    print(f"(valid {users.RESET_LINK_HOURS} hours; hand it over privately):")
    print(link)
    return 0


def write_credentials(text: str) -> None:
    VAR_DIR.mkdir(exist_ok=True)
    CREDENTIALS_FILE.write_text(text + "\n")
    CREDENTIALS_FILE.chmod(0o600)


def cmd_demo(args: argparse.Namespace) -> int:
    from app.db.session import get_database
    from app.demo import load_demo

    result = load_demo(get_database(), months=args.months)
    if result is None:
        print("The database already has users, so no demo data was added.")
        if CREDENTIALS_FILE.exists():
            print(CREDENTIALS_FILE.read_text().strip())
        else:
            print("Sign in at http://127.0.0.1:8000/login with your own account.")
        return 0
    lines = [
        "Sign in at http://127.0.0.1:8000/login with one of these demo accounts",
        f"(every demo account's password is: {result.password})",
    ]
    lines += [f"  {email:<24} {name}: {role}" for name, email, role in result.users]
    text = "\n".join(lines)
    write_credentials(text)
    boards = ", ".join(name for _, name in result.boards)
    print(f"Demo data loaded: {boards}.")
    print(text)
    print(f"(These details are kept in {CREDENTIALS_FILE}, readable only by you.)")
    return 0


def _progress(done: int, total: int) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    bar = "#" * filled + "-" * (width - filled)
    end = "\n" if done >= total else ""
    print(f"\rImporting [{bar}] {done}/{total}", end=end, file=sys.stderr, flush=True)


def cmd_import_history(args: argparse.Namespace) -> int:
    from app.db.session import get_database
    from app.services.importing import ImportFileError, import_file

    try:
        count, board_name = import_file(
            database=get_database(), path=Path(args.file), board=args.board, progress=_progress
        )
    except ImportFileError as error:
        # One line, never a traceback: the file, its content, the board or the database.
        print(f"Nothing was imported: {error}", file=sys.stderr)
        return 1
    print(f"Imported {count} items into {board_name}.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.db.session import get_database
    from app.services.backup import BackupError, export_database

    try:
        summary = export_database(
            database=get_database(), path=Path(args.file), with_secrets=args.with_secrets
        )
    except BackupError as error:
        print(f"Nothing was exported: {error}", file=sys.stderr)
        return 1
    print(summary.line())
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from app.db.session import get_database
    from app.services.backup import BackupError, restore_database

    try:
        summary = restore_database(database=get_database(), path=Path(args.file), force=args.force)
    except BackupError as error:
        print(f"Nothing was restored: {error}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowboard",
        description="Flowboard: a self-hosted Lean Just-in-Time flow board. Configuration comes "
        "from FLOWBOARD_DATABASE_URL (default: a SQLite file under ./var/) and "
        "FLOWBOARD_SECRET_KEY (default: generated under ./var/), or a .env file.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate the database, then serve the app")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="bring the schema to the newest migration")
    migrate.set_defaults(handler=cmd_migrate)

    create_user = commands.add_parser("create-user", help="create a user account")
    create_user.add_argument("--email", required=True)
    create_user.add_argument("--name", required=True)
    create_user.add_argument("--password", help="asked for when not given")
    create_user.add_argument("--admin", action="store_true", help="make the user a site admin")
    create_user.set_defaults(handler=cmd_create_user)

    reset = commands.add_parser(
        "reset-password",
        help="print a one-time link (valid 24 hours) with which the person sets a new password",
    )
    reset.add_argument("email", help="the account's email")
    reset.set_defaults(handler=cmd_reset_password)

    demo = commands.add_parser(
        "demo", help="fill an EMPTY database with the five template boards and months of history"
    )
    demo.add_argument("--months", type=int, default=6, help="months of history (default 6)")
    demo.set_defaults(handler=cmd_demo)

    importer = commands.add_parser(
        "import-history", help="import items with their history from a JSON file into a board"
    )
    importer.add_argument(
        "file", help='JSON file shaped like the import API body: {"items": [...]}'
    )
    importer.add_argument("board", help="the board's id or key")
    importer.set_defaults(handler=cmd_import_history)

    exporter = commands.add_parser(
        "export", help="write one consistent snapshot of the database to a JSON file"
    )
    exporter.add_argument("file", help="where to write it (a name ending in .gz is gzipped)")
    exporter.add_argument(
        "--with-secrets",
        action="store_true",
        help="include password hashes (tokens and sessions are never exported)",
    )
    exporter.set_defaults(handler=cmd_export)

    restorer = commands.add_parser(
        "restore", help="load an export into an empty database, all or nothing"
    )
    restorer.add_argument("file", help="a file written by `flowboard export`")
    restorer.add_argument(
        "--force", action="store_true", help="replace everything already in the database"
    )
    restorer.set_defaults(handler=cmd_restore)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
