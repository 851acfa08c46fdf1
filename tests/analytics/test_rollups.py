"""The cached cumulative flow (app.services.rollups) equals the full replay, exactly.

Random histories (seeded, so a failure replays): imported items with moves over three years,
some exactly at midnight (a day's boundary), plus live items created, pulled, marked ready
and discarded through the services. Every window, long or short, ending at midnight or
mid-day, with various `now`, is asked twice (the cache cold, then warm) and compared with
the replay of the whole window. Then history is imported into the past and live work happens
today: the answers must still equal the replay (the cache is dropped, or kept, correctly).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import metric_queries as mq
from app.db.models import CfdDay, CfdMark
from app.flow.errors import FlowError
from app.services import analytics
from app.services.items import create_item, discard_item, mark_ready, pull_item
from tests.analytics.helpers import do_import, item, move
from tests.factories import Seed

NOW = datetime(2026, 3, 20, 15, 30, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)
TARGETS = [("Build", "doing"), ("Build", "ready"), ("Review", "doing"), ("Review", "ready")]


def _time(rng: random.Random, at: datetime) -> datetime:
    """Sometimes exactly midnight: a move at a day's end belongs to the next day."""
    if rng.random() < 0.2:
        return datetime.combine(at.date() + timedelta(days=1), time(), tzinfo=UTC)
    return at


def random_items(rng: random.Random, start: datetime, end: datetime, n: int) -> list[Any]:
    out = []
    for number in range(n):
        created = _time(rng, start + (end - start) * rng.random())
        if created >= end:
            created = end - timedelta(hours=1)
        at, current, history = created, ("Backlog", None), []
        for _ in range(rng.randint(0, 7)):
            at = _time(rng, at + timedelta(hours=rng.expovariate(1 / 40)))
            if at >= end:
                break
            if rng.random() < 0.15:
                history.append(move(at, "Done"))
                break
            choice = rng.choice([t for t in TARGETS if t != current])
            history.append(move(at, choice[0], choice[1]))
            current = choice
        cos = rng.choice(["standard", "standard", "expedite"])
        out.append(item(f"R{number}", created, history, class_of_service=cos))
    return out


def live_work(seed: Seed, rng: random.Random, start: datetime, count: int) -> None:
    """Items created, pulled, marked ready, discarded through the services, from `start` on."""
    at = start
    with seed.database.unit_of_work() as session:
        ids = []
        for n in range(count):
            at += timedelta(hours=rng.uniform(1, 30))
            detail = create_item(
                session=session,
                board_id=seed.board_id,
                actor=seed.user("member"),
                title=f"L{n}",
                now=at,
            )
            ids.append(detail.item.id)
            for item_id in rng.sample(ids, min(3, len(ids))):
                at += timedelta(hours=rng.uniform(0, 5))
                action = rng.choice(["pull", "pull", "ready", "discard"])
                try:
                    if action == "pull":
                        pull_item(
                            session=session, item_id=item_id, actor=seed.user("member"), now=at
                        )
                    elif action == "ready":
                        mark_ready(
                            session=session, item_id=item_id, actor=seed.user("member"), now=at
                        )
                    else:
                        discard_item(
                            session=session,
                            item_id=item_id,
                            actor=seed.user("manager"),
                            reason="no",
                            now=at,
                        )
                except FlowError:
                    pass  # refused by the rules (owner, limits, closed): nothing happened


def replayed(seed: Seed, start: datetime | None, end: datetime | None, now: datetime) -> Any:
    """The cumulative flow as the analytics computed it before the cache: one replay."""
    with seed.database.unit_of_work(write=False) as session:
        window = analytics.resolve_window(start, end, now)
        states = mq.states(session, seed.board_id)
        done_id = next(s.id for s in states if s.kind == "done")
        counts = analytics._cfd_replay(
            session, seed.board_id, window, [s.id for s in states], done_id, None
        )
        return {
            "days": [d.isoformat() for d in window.days],
            "states": [{"state_id": s.id, "name": s.name, "counts": counts[s.id]} for s in states],
        }


def through_cache(
    seed: Seed, start: datetime | None, end: datetime | None, now: datetime
) -> dict[str, Any]:
    with seed.database.unit_of_work(write=False) as session:
        return analytics.cfd(
            session=session,
            board_id=seed.board_id,
            actor=seed.user("viewer"),
            start=start,
            end=end,
            now=now,
        ).as_dict()


def windows(rng: random.Random, now: datetime) -> list[tuple[datetime | None, datetime | None]]:
    midnight = datetime.combine(now.date(), time(), tzinfo=UTC)
    out: list[tuple[datetime | None, datetime | None]] = [
        (now - SPAN, None),  # three years up to now
        (None, None),  # the default 90 days
        (midnight - timedelta(days=400), midnight - timedelta(days=10)),  # ends at midnight
        (now - timedelta(days=700, hours=5), now - timedelta(days=3, hours=7)),
        (midnight + timedelta(hours=1), None),  # today only
        (now - timedelta(hours=30), None),  # yesterday afternoon to now
    ]
    for _ in range(6):
        a = now - SPAN * rng.random()
        b = a + (now - a) * rng.random()
        out.append((a, b))
    return out


def check_all(seed: Seed, rng: random.Random, nows: list[datetime]) -> None:
    for now in nows:
        for start, end in windows(rng, now):
            expected = replayed(seed, start, end, now)
            assert through_cache(seed, start, end, now) == expected, (start, end, now)
            assert through_cache(seed, start, end, now) == expected, (start, end, now)


def cached_rows(seed: Seed) -> tuple[int, tuple[Any, ...] | None]:
    with seed.database.unit_of_work(write=False) as session:
        rows = session.scalar(select(func.count()).select_from(CfdDay)) or 0
        mark = session.execute(
            select(CfdMark.through, CfdMark.events, CfdMark.last_event_id)
        ).first()
        return rows, tuple(mark) if mark is not None else None


@pytest.mark.parametrize("seed_number", [1, 2, 3])
def test_cached_cfd_equals_the_replay_and_survives_imports_into_the_past(
    seed: Seed, seed_number: int
) -> None:
    rng = random.Random(seed_number)
    do_import(seed, random_items(rng, NOW - SPAN - timedelta(days=30), NOW - timedelta(days=5), 60))
    live_work(seed, rng, NOW - timedelta(days=5), 12)
    nows = [NOW, NOW + timedelta(days=2, hours=3), NOW - timedelta(days=40)]
    check_all(seed, rng, nows)
    rows, mark = cached_rows(seed)
    assert rows > 0 and mark is not None  # the long windows went through the cache

    # History written into the past (an import) drops what was summed from it.
    do_import(seed, random_items(rng, NOW - timedelta(days=600), NOW - timedelta(days=2), 25))
    check_all(seed, rng, nows)
    assert cached_rows(seed)[1] != mark

    # Work today leaves the closed days alone, and the answers stay the replay's.
    _rows, mark = cached_rows(seed)
    assert mark is not None
    live_work(seed, rng, NOW + timedelta(days=3), 6)
    with seed.database.unit_of_work(write=False) as session:
        through = datetime.combine(mark[0] + timedelta(days=1), time(), tzinfo=UTC)
        assert mq.events_stamp(session.connection(), seed.board_id, through) == mark[1:]
    later = NOW + timedelta(days=3, hours=12)
    assert through_cache(seed, later - SPAN, None, later) == replayed(
        seed, later - SPAN, None, later
    )


def test_cache_rows_are_the_replay_of_each_closed_day(seed: Seed) -> None:
    rng = random.Random(9)
    do_import(seed, random_items(rng, NOW - timedelta(days=60), NOW - timedelta(days=1), 30))
    through_cache(seed, NOW - timedelta(days=60), None, NOW)
    with seed.database.unit_of_work(write=False) as session:
        days = {
            (d, s): n
            for d, s, n in mq.cfd_days(session, seed.board_id, date(2000, 1, 1), NOW.date())
        }
    assert max(d for d, _s in days) == NOW.date() - timedelta(days=1)  # today is not closed
    for day in {d for d, _s in days}:
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        one = replayed(seed, end - timedelta(days=1), end, NOW)
        assert one["days"] == [day.isoformat()]
        for state in one["states"]:
            assert days.get((day, state["state_id"]), 0) == state["counts"][0]
