"""The audit trail page for site admins (/admin/audit) and its CSV export (/admin/audit.csv),
with the same filters: type, actor (email), and a date range in whole UTC days."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.db import audit_queries
from app.db.audit_queries import AuditFilter
from app.db.models import AuditEvent
from app.deps import DbSession
from app.flow.errors import InvalidInput
from app.services import audit
from app.web.common import header_summary, parse_date, parse_int
from app.web.deps import WebUser
from app.web.templating import render

router = APIRouter(prefix="/admin")
PAGE_SIZE = 100


@dataclass(frozen=True)
class Choices:
    """The filters as typed, echoed back into the form and the links."""

    type: str = ""
    actor: str = ""
    since: str = ""
    until: str = ""

    def query(self, **extra: str | int) -> str:
        fields: dict[str, str | int] = {
            k: v for k, v in vars(self).items() if isinstance(v, str) and v
        }
        return urlencode({**fields, **extra})


def _choices(request: Request) -> Choices:
    params = request.query_params
    return Choices(
        type=(params.get("type") or "")[:40],
        actor=(params.get("actor") or "").strip()[:254],
        since=(params.get("since") or "")[:10],
        until=(params.get("until") or "")[:10],
    )


def _filter(session: Session, choices: Choices) -> AuditFilter | None:
    """Raises InvalidInput (shown on the page) for a bad type or date."""
    return audit.trail_filter(
        session,
        type=choices.type or None,
        actor_email=choices.actor or None,
        since=parse_date(choices.since),
        until=parse_date(choices.until),
    )


def _described(event: AuditEvent) -> str:
    return ", ".join(f"{key}: {value}" for key, value in sorted((event.data or {}).items()))


@router.get("/audit")
def audit_page(request: Request, session: DbSession, user: WebUser) -> Response:
    """Newest first, PAGE_SIZE at a time (`before` = the last id shown)."""
    audit.require_admin(user)
    choices = _choices(request)
    context: dict[str, Any] = {
        "choices": choices,
        "types": audit.AUDIT_TYPES,
        "events": [],
        "emails": {},
        "older_query": None,
        "csv_query": choices.query(),
        "newest_query": choices.query() if request.query_params.get("before") else None,
        "alert": None,
        "summary": header_summary(session, user),
        "nav_current": "admin-audit",
    }
    try:
        before = parse_int(request.query_params.get("before"), "before")
        filters = _filter(session, choices)
    except InvalidInput as error:
        context["alert"] = error.detail
        return render(request, "admin/audit.html", context, status_code=422)
    if filters is not None:
        rows = list(
            audit_queries.audit_before(session, filters, before_id=before, limit=PAGE_SIZE + 1)
        )
        events = rows[:PAGE_SIZE]
        context["events"] = [(event, _described(event)) for event in events]
        context["emails"] = audit_queries.emails_of(
            session, {e.actor_id for e in events if e.actor_id}
        )
        if len(rows) > PAGE_SIZE:
            context["older_query"] = choices.query(before=events[-1].id)
    return render(request, "admin/audit.html", context)


@router.get("/audit.csv")
def audit_csv(request: Request, session: DbSession, user: WebUser) -> Response:
    """Every matching event, oldest first (up to audit.CSV_MAX_ROWS), cells neutralised."""
    audit.require_admin(user, doing="export the audit trail")
    text = audit.trail_csv(session=session, actor=user, filters=_filter(session, _choices(request)))
    return Response(
        content=text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="audit.csv"',
            "Cache-Control": "no-store",
        },
    )
