"""The health probe: is the app up and can it reach its database, answered within about 1 s.

The probe runs in its own thread on its own short-lived connection (short connect timeout and
answer deadline), so a stopped or frozen database never blocks the event loop or the pool;
one probe at a time, shared by every caller waiting for it.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, NullPool, text

from app.db.session import Database, Timeouts, make_engine
from app.resilience import RETRY_AFTER_SECONDS

router = APIRouter(tags=["health"])

# How long a caller waits for the probe before reporting the database unavailable.
PROBE_WAIT_SECONDS = 1.0
# The probe's own connection gives up after these (libpq waits at least 2 s to connect).
PROBE_TIMEOUTS = Timeouts(connect_seconds=2, statement_ms=1000, lock_ms=1000, pool_seconds=1)


class HealthProbe:
    """`SELECT 1` on a fresh connection in a daemon thread; at most one probe in flight."""

    def __init__(self, database: Database) -> None:
        self._engine: Engine = (
            database.engine
            if database.is_sqlite
            else make_engine(database.url, PROBE_TIMEOUTS, poolclass=NullPool)
        )
        self._lock = threading.Lock()
        self._running: Future[bool] | None = None

    def _probe(self, result: Future[bool]) -> None:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            result.set_result(False)
        else:
            result.set_result(True)

    def start(self) -> Future[bool]:
        """The probe in flight, or a new one."""
        with self._lock:
            if self._running is None or self._running.done():
                self._running = Future()
                threading.Thread(
                    target=self._probe, args=(self._running,), name="health-probe", daemon=True
                ).start()
            return self._running

    async def database_ok(self, wait_seconds: float = PROBE_WAIT_SECONDS) -> bool:
        try:
            # shield: a caller giving up must not cancel the probe others are waiting for.
            return await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(self.start())), wait_seconds
            )
        except TimeoutError:
            return False


_probes_lock = threading.Lock()


def probe_for(request: Request) -> HealthProbe:
    state = request.app.state
    with _probes_lock:
        probe: HealthProbe | None = getattr(state, "health_probe", None)
        if probe is None:
            probe = HealthProbe(state.database)
            state.health_probe = probe
    return probe


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """200 when the database answers within about a second; 503 otherwise."""
    if not await probe_for(request).database_ok():
        return JSONResponse(
            {"status": "degraded", "database": "unavailable"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
        )
    return JSONResponse({"status": "ok", "database": "ok"}, headers={"Cache-Control": "no-store"})
