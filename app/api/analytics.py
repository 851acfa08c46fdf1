"""Flow analytics, time travel and the delay report under /api/v1/boards/{board_id}/...

Thin: parse the query, call app.services.analytics, serialise. Viewer is enough; non-members
get 404. `from` / `to` default to the last 90 days.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from app.api.deps import CurrentUser, DbSession
from app.api.schemas import (
    AgingOut,
    CfdOut,
    CycleTimesOut,
    FlowOut,
    ForecastOut,
    SnapshotOut,
    ThroughputOut,
    WaitingReasonOut,
)
from app.inputs import Id
from app.services import analytics

router = APIRouter(prefix="/boards/{board_id}", tags=["analytics"])

From = Annotated[datetime | None, Query(alias="from", description="Window start (ISO 8601, UTC).")]
To = Annotated[datetime | None, Query(alias="to", description="Window end (ISO 8601, UTC).")]
ClassOfService = Annotated[
    Literal["standard", "expedite", "fixed_date", "intangible"] | None,
    Query(description="Count only items of this class of service."),
]


class Window:
    """The query every analytics call shares: the window and the class-of-service filter."""

    def __init__(
        self,
        board_id: Id,
        session: DbSession,
        user: CurrentUser,
        start: From = None,
        end: To = None,
        class_of_service: ClassOfService = None,
    ) -> None:
        self.args: dict[str, Any] = {
            "session": session,
            "board_id": board_id,
            "actor": user,
            "start": start,
            "end": end,
            "class_of_service": class_of_service,
        }


BoardWindow = Annotated[Window, Depends()]


def answer(model: Any) -> dict[int | str, dict[str, Any]]:
    """`responses=` documenting the 200 answer's shape (the body is sent as the service built
    it, not validated again)."""
    return {200: {"model": model, "description": "Successful Response"}}


def _json(body: Any) -> JSONResponse:
    """The services hand back JSON-ready values; skipping FastAPI's generic encoder keeps
    responses of thousands of rows cheap."""
    return JSONResponse(body)


@router.get("/flow", responses=answer(FlowOut))
def flow(window: BoardWindow) -> JSONResponse:
    """Per state WIP, queue, time in state, wait vs work, blocked time, % of time at the WIP
    limit and rework; the bottleneck, flow efficiency, throughput, average WIP and cycle time."""
    return _json(analytics.flow_report(**window.args).as_dict())


@router.get("/metrics/cycle-times", responses=answer(CycleTimesOut))
def cycle_times(window: BoardWindow) -> JSONResponse:
    """Items done in the window with cycle and lead times; 50/85/95 nearest-rank percentiles."""
    return _json(analytics.cycle_times(**window.args).as_dict())


@router.get("/metrics/throughput", responses=answer(list[ThroughputOut]))
def throughput(window: BoardWindow, interval: Literal["day", "week"] = "day") -> JSONResponse:
    """Items entering done per day or week (Monday weeks)."""
    buckets = analytics.throughput(interval=interval, **window.args)
    return _json([{"start": b.start.isoformat(), "count": b.count} for b in buckets])


@router.get("/metrics/cfd", responses=answer(CfdOut))
def cfd(window: BoardWindow) -> JSONResponse:
    """Cumulative flow: items in each state at the end of each day."""
    return _json(analytics.cfd(**window.args).as_dict())


@router.get("/metrics/aging", responses=answer(AgingOut))
def aging(window: BoardWindow) -> JSONResponse:
    """Open committed items with their age; the window's cycle-time percentiles for reference."""
    return _json(analytics.aging(**window.args).as_dict())


@router.get("/metrics/waiting-reasons", responses=answer(list[WaitingReasonOut]))
def waiting_reasons(window: BoardWindow) -> JSONResponse:
    """Blocks per reason with their blocked time in the window, most time first."""
    rows = analytics.waiting_reasons(**window.args)
    return _json(
        [{"reason": r.reason, "count": r.count, "blocked_seconds": r.blocked_seconds} for r in rows]
    )


@router.get("/forecast", responses=answer(ForecastOut))
def forecast(
    window: BoardWindow,
    items: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    until: date | None = None,
) -> JSONResponse:
    """Monte Carlo (10,000 seeded runs) on the window's daily throughput: dates for `items`,
    counts for `until`."""
    return _json(analytics.forecast(items=items, until=until, **window.args).as_dict())


@router.get("/snapshot", responses=answer(SnapshotOut))
def snapshot(board_id: Id, session: DbSession, user: CurrentUser, at: datetime) -> JSONResponse:
    """The board as it was at `at`, rebuilt from the events."""
    result = analytics.snapshot(session=session, board_id=board_id, actor=user, at=at)
    return _json(result.as_dict())


@router.get(
    "/delays.csv",
    response_class=Response,
    responses={
        200: {
            "description": "RFC 4180 CSV, UTF-8, formula cells neutralised.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def delays_csv(window: BoardWindow, status: Literal["open", "closed", "all"] = "all") -> Response:
    """Every block open during the window as CSV (RFC 4180, UTF-8), formula cells neutralised."""
    name, text = analytics.delays_csv(status=status, **window.args)
    return Response(
        content=text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
