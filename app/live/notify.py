"""Announcing committed events: NOTIFY on PostgreSQL (every process hears), in-process on SQLite.

Session hooks collect the Event rows a transaction writes. On PostgreSQL one pg_notify is
sent inside the transaction, so it is delivered only if the commit succeeds, to the LISTEN
thread of every app process (this one included). On SQLite the hub is told after commit.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from app.db.models import Event
from app.live.hub import hub

CHANNEL = "flowboard_events"
_PENDING = "flowboard_live_events"
log = logging.getLogger(__name__)


def _pending(session: Session) -> dict[int, int]:
    return session.info.setdefault(_PENDING, {})


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    for obj in session.new:
        if isinstance(obj, Event) and obj.id is not None:
            pending = _pending(session)
            pending[obj.board_id] = max(pending.get(obj.board_id, 0), obj.id)


@event.listens_for(Session, "before_commit")
def _notify_postgres(session: Session) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        payload = json.dumps({str(board): last for board, last in pending.items()})
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )
        session.info[_PENDING] = {}  # PostgreSQL delivers these; nothing to do after commit


@event.listens_for(Session, "after_commit")
def _publish_local(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    for board_id, event_id in (pending or {}).items():
        hub.publish(board_id, event_id)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


class PostgresListener:
    """A daemon thread LISTENing on the channel and handing notifications to the hub."""

    def __init__(self, url: str) -> None:
        # SQLAlchemy URL -> libpq URL
        self.dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
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
                    self.connected.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0, stop_after=None):
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
