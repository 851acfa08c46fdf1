"""Shared builders for the analytics tests: times in March 2026 and imports through the service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.services.importing import import_history
from tests.factories import Seed


def t(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> datetime:
    """2026-<month>-<day> hh:mm UTC (2026-03-02 is a Monday)."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def move(at: datetime, state: str, stage: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": iso(at), "state": state}
    if stage is not None:
        entry["stage"] = stage
    return entry


def block(
    reason: str, start: datetime, end: datetime | None = None, **extra: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {"reason": reason, "from": iso(start), "to": iso(end) if end else None}
    entry.update(extra)
    return entry


def item(
    title: str,
    created: datetime,
    history: list[dict[str, Any]] | None = None,
    blocks: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "title": title,
        "created_at": iso(created),
        "history": history or [],
        "blocks": blocks or [],
        **extra,
    }


def do_import(seed: Seed, items: list[dict[str, Any]]) -> int:
    with seed.database.unit_of_work() as session:
        return import_history(
            session=session,
            board_id=seed.board_id,
            actor=seed.user("manager"),
            payload={"items": items},
        )
