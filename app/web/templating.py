"""Jinja2 with autoescape everywhere, a few display filters, and the page-or-fragment helper."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"

# autoescape on for every template (not only *.html): user text is never marked safe.
env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    # Templates do not change under a running server: no stat() of every file at every include
    # (a board page includes a template per column and run). Restart to see edits.
    auto_reload=False,
)
templates = Jinja2Templates(env=env)


def duration(seconds: float | timedelta | None) -> str:
    """Compact human durations: 45m, 3h, 1d 4h, 12d."""
    if seconds is None:
        return ""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    minutes = max(0, int(seconds // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days >= 10:
        return f"{days}d"
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins and hours < 3 else f"{hours}h"
    return f"{mins}m"


def since(at: datetime | None, now: datetime | None = None) -> str:
    if at is None:
        return ""
    return duration(((now or datetime.now(UTC)) - at).total_seconds())


def initials(name: str | None) -> str:
    parts = (name or "").split()
    if not parts:
        return "?"
    if len(parts) == 1:
        return parts[0][:2].upper()
    return (parts[0][0] + parts[-1][0]).upper()


def short_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return f"{value.day} {value.strftime('%b')}" + (
        f" {value.year}" if value.year != date.today().year else ""
    )


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


CLASS_LABELS = {
    "standard": "standard",
    "expedite": "expedite",
    "fixed_date": "fixed date",
    "intangible": "intangible",
}

env.filters.update(
    duration=duration,
    since=since,
    initials=initials,
    short_date=short_date,
    when=when,
    class_label=lambda c: CLASS_LABELS.get(c, c),
)
env.globals.update(CLASS_LABELS=CLASS_LABELS)


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def render(
    request: Request,
    page: str,
    context: dict[str, Any],
    *,
    fragment: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The one place deciding page or fragment: htmx requests (not boosted) get `fragment`.

    Always sends `Vary: HX-Request`, so caches never serve a fragment for a page.
    """
    name = fragment if fragment is not None and is_htmx(request) else page
    ctx = {"request": request, **context}
    ctx.setdefault("user", getattr(request.state, "user", None))
    ctx.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    response = templates.TemplateResponse(
        request, name, ctx, status_code=status_code, headers=headers
    )
    response.headers["Vary"] = "HX-Request"
    return response
