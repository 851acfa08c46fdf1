"""Announcing committed events: NOTIFY on PostgreSQL (every process hears), in-process on SQLite.

Session hooks collect the Event rows a transaction writes. On PostgreSQL one pg_notify is
sent inside the transaction, so it is delivered only if the commit succeeds, to the LISTEN
thread of every app process (this one included). On SQLite the hub is told after commit.

The same path carries "access changed" for users whose browser session ended, whose token was
revoked, whose account was deactivated or whose membership was removed (noticed on the ORM
objects a transaction flushes, or announced with `access_changed()` after a bulk UPDATE), so
their live streams re-check at once instead of running on for up to 30 minutes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.models import ApiToken, Event, Membership, User, WebSession
from app.live.hub import hub

CHANNEL = "flowboard_events"
ACCESS_CHANNEL = "flowboard_access"
_PENDING = "flowboard_live_events"
_PENDING_ACCESS = "flowboard_live_access"
log = logging.getLogger(__name__)


def _pending(session: Session) -> dict[int, int]:
    return session.info.setdefault(_PENDING, {})


def access_changed(session: Session, user_ids: Iterable[int]) -> None:
    """After the commit, these users' live streams re-check their credential and boards."""
    session.info.setdefault(_PENDING_ACCESS, set()).update(user_ids)


def _changed(obj: object, attribute: str) -> bool:
    return bool(inspect(obj).attrs[attribute].history.has_changes())


def _access_user(obj: object, *, deleted: bool) -> int | None:
    """The user whose access this flushed change may take away (None: nothing to re-check)."""
    if isinstance(obj, Membership) and deleted:
        return obj.user_id
    if isinstance(obj, WebSession) and (deleted or _changed(obj, "ended_at")):
        return obj.user_id
    if isinstance(obj, ApiToken) and (
        deleted or _changed(obj, "revoked_at") or _changed(obj, "expires_at")
    ):
        return obj.user_id
    if isinstance(obj, User) and (deleted or _changed(obj, "is_active")):
        return obj.id
    return None


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    # after_flush still shows the flush's new / dirty / deleted objects and their history.
    for obj in session.new:
        if isinstance(obj, Event) and obj.id is not None:
            pending = _pending(session)
            pending[obj.board_id] = max(pending.get(obj.board_id, 0), obj.id)
    users = {_access_user(obj, deleted=False) for obj in session.dirty}
    users |= {_access_user(obj, deleted=True) for obj in session.deleted}
    users.discard(None)
    if users:
        access_changed(session, (u for u in users if u is not None))


@event.listens_for(Session, "before_commit")
def _notify_postgres(session: Session) -> None:
    nothing_to_say = not (session.info.get(_PENDING) or session.info.get(_PENDING_ACCESS))
    if nothing_to_say and not (session.new or session.dirty or session.deleted):
        return
    if session.get_bind().dialect.name != "postgresql":
        return
    # The commit flushes after this hook: flush now, so what it writes is announced too.
    session.flush()
    pending = session.info.get(_PENDING)
    access = session.info.get(_PENDING_ACCESS)
    notify = text("SELECT pg_notify(:channel, :payload)")
    if pending:
        payload = json.dumps({str(board): last for board, last in pending.items()})
        session.execute(notify, {"channel": CHANNEL, "payload": payload})
        session.info[_PENDING] = {}  # PostgreSQL delivers these; nothing to do after commit
    if access:
        session.execute(notify, {"channel": ACCESS_CHANNEL, "payload": json.dumps(sorted(access))})
        session.info[_PENDING_ACCESS] = set()


@event.listens_for(Session, "after_commit")
def _publish_local(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    for board_id, event_id in (pending or {}).items():
        hub.publish(board_id, event_id)
    access = session.info.pop(_PENDING_ACCESS, None)
    if access:
        hub.access_changed(access)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_PENDING_ACCESS, None)


def listen_url(database_url: str) -> str:
    """Where LISTEN connects: FLOWBOARD_LISTEN_DATABASE_URL, else the database URL.

    LISTEN belongs to a server session, so it must not go through a transaction-pooling
    PgBouncer (which hands the server connection to other clients between transactions and
    never delivers the notifications to us); NOTIFY, sent inside a transaction, may.
    """
    return get_settings().listen_database_url or database_url


class PostgresListener:
    """A daemon thread LISTENing on the channel and handing notifications to the hub."""

    def __init__(self, url: str) -> None:
        """`url`: the database URL (see listen_url for where LISTEN actually connects)."""
        # SQLAlchemy URL -> libpq URL
        self.dsn = listen_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flowboard-listen", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {ACCESS_CHANNEL}")
                    self.connected.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0, stop_after=None):
                            if note.channel == ACCESS_CHANNEL:
                                self._deliver_access(note.payload)
                            else:
                                self._deliver(note.payload)
                            if self._stop.is_set():
                                break
            except Exception:  # the database restarts or is away: retry, never die
                self.connected.clear()
                log.warning("LISTEN connection lost; retrying", exc_info=True)
                time.sleep(1.0)

    @staticmethod
    def _deliver(payload: str) -> None:
        try:
            for board, last in json.loads(payload).items():
                hub.publish(int(board), int(last))
        except (ValueError, AttributeError):
            log.warning("ignoring malformed notification %r", payload)

    @staticmethod
    def _deliver_access(payload: str) -> None:
        try:
            hub.access_changed(int(user_id) for user_id in json.loads(payload))
        except (ValueError, TypeError):
            log.warning("ignoring malformed notification %r", payload)
