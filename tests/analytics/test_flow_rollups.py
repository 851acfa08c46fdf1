"""The Bottlenecks report through the flow rollups (closed days cached, partial days
replayed) equals the report from one replay of the whole window, exactly.

Random histories (seeded, so a failure replays): imported items moving forward and back
(sends back) between doing and ready over three years, some moves exactly at midnight, with
blocks (some still open); then live work through the services, backdated over the last days:
creations, pulls (into done too), readies, blocks and their resolutions, sends back, discards.
Windows long and short, cutting through items' lives and blocks, ending at midnight or
mid-day, under several `now`, are asked twice (cache cold, then warm) and compared with the
replay. Then history is imported into the past and live work happens today: the answers
must still be the replay's (the cache dropped, or kept, correctly).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import metric_queries as mq
from app.db.models import FlowDay, FlowMark
from app.flow.errors import FlowError
from app.services import analytics
from app.services.blocks import block_item, resolve_block
from app.services.flow_figures import Figures, StateFigures
from app.services.items import create_item, discard_item, mark_ready, pull_item, send_back
from app.services.rollups import _add_row
from tests.analytics.helpers import block, do_import, item, move
from tests.factories import Seed

NOW = datetime(2026, 3, 20, 15, 30, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)
TARGETS = [("Build", "doing"), ("Build", "ready"), ("Review", "doing"), ("Review", "ready")]
REASONS = ["Dependency", "Waiting for decision"]


def _time(rng: random.Random, at: datetime) -> datetime:
    """Sometimes exactly midnight: a day's boundary."""
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
        done_at = None
        for _ in range(rng.randint(0, 8)):
            at = _time(rng, at + timedelta(hours=rng.expovariate(1 / 40)))
            if at >= end:
                break
            if rng.random() < 0.15:
                history.append(move(at, "Done"))
                done_at = at
                break
            choice = rng.choice([t for t in TARGETS if t != current])
            history.append(move(at, choice[0], choice[1]))
            current = choice
        blocks, free = [], created
        last = done_at or end
        for _ in range(rng.randint(0, 3)):
            opened = free + timedelta(hours=rng.expovariate(1 / 30))
            if opened >= last:
                break
            resolved: datetime | None = opened + timedelta(hours=rng.expovariate(1 / 20))
            if resolved is not None and resolved > last:
                resolved = done_at  # a block ends by the time the item is done
            if done_at is None and rng.random() < 0.15:
                resolved = None
            blocks.append(block(rng.choice(REASONS), opened, resolved))
            if resolved is None:
                break
            free = resolved
        cos = rng.choice(["standard", "standard", "expedite"])
        out.append(item(f"R{number}", created, history, blocks, class_of_service=cos))
    return out


def live_work(seed: Seed, rng: random.Random, start: datetime, count: int) -> None:
    """Items created, pulled, readied, blocked, sent back, discarded through the services."""
    at = start
    with seed.database.unit_of_work() as session:
        reasons = list(mq.reason_ids(session, seed.board_id).values())
        ids: list[int] = []
        open_blocks: dict[int, int] = {}
        for n in range(count):
            at += timedelta(hours=rng.uniform(1, 20))
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
                action = rng.choice(["pull", "pull", "pull", "ready", "block", "back", "discard"])
                manager = seed.user("manager")
                try:
                    if item_id in open_blocks and rng.random() < 0.7:
                        resolve_block(
                            session=session,
                            block_id=open_blocks.pop(item_id),
                            actor=manager,
                            now=at,
                        )
                    elif action == "pull":
                        pull_item(session=session, item_id=item_id, actor=manager, now=at)
                    elif action == "ready":
                        mark_ready(session=session, item_id=item_id, actor=manager, now=at)
                    elif action == "block":
                        made = block_item(
                            session=session,
                            item_id=item_id,
                            actor=manager,
                            reason_id=rng.choice(reasons),
                            now=at,
                        )
                        open_blocks[item_id] = made.id
                    elif action == "back":
                        send_back(
                            session=session,
                            item_id=item_id,
                            actor=manager,
                            to_state_id=seed.state_id("Build"),
                            reason="rework",
                            now=at,
                        )
                    else:
                        discard_item(
                            session=session, item_id=item_id, actor=manager, reason="no", now=at
                        )
                        open_blocks.pop(item_id, None)
                except FlowError:
                    pass  # refused by the rules (owner, limits, closed, blocked): nothing happened


def report(
    seed: Seed,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    class_of_service: str | None = None,
) -> dict[str, Any]:
    with seed.database.unit_of_work(write=False) as session:
        return analytics.flow_report(
            session=session,
            board_id=seed.board_id,
            actor=seed.user("viewer"),
            start=start,
            end=end,
            now=now,
            class_of_service=class_of_service,
        ).as_dict()


def replayed(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """The report with its figures from one replay of the whole window (no cache)."""
    with monkeypatch.context() as patch:
        patch.setattr(
            analytics,
            "_flow_figures",
            lambda session, board_id, window, done_id, cos: analytics._replayed_figures(
                session, board_id, window, done_id, cos
            ),
        )
        return report(seed, *args, **kwargs)


def windows(rng: random.Random, now: datetime) -> list[tuple[datetime | None, datetime | None]]:
    midnight = datetime.combine(now.date(), time(), tzinfo=UTC)
    out: list[tuple[datetime | None, datetime | None]] = [
        (now - SPAN, None),  # three years up to now
        (None, None),  # the default 90 days
        (midnight - timedelta(days=400), midnight - timedelta(days=10)),  # ends at midnight
        (now - timedelta(days=700, hours=5), now - timedelta(days=3, hours=7)),
        (midnight + timedelta(hours=1), None),  # today only: no closed day
        (now - timedelta(hours=30), None),  # yesterday afternoon to now
        (midnight - timedelta(days=2), midnight - timedelta(days=1)),  # one closed day
    ]
    for _ in range(5):
        a = now - SPAN * rng.random()
        b = a + (now - a) * rng.random()
        out.append((a, b))
    return out


def check_all(
    seed: Seed, rng: random.Random, monkeypatch: pytest.MonkeyPatch, nows: list[datetime]
) -> None:
    for now in nows:
        for start, end in windows(rng, now):
            expected = replayed(seed, monkeypatch, start, end, now)
            assert report(seed, start, end, now) == expected, (start, end, now)
            assert report(seed, start, end, now) == expected, (start, end, now)


def cache_state(seed: Seed) -> tuple[int, tuple[Any, ...] | None]:
    with seed.database.unit_of_work(write=False) as session:
        rows = session.scalar(select(func.count()).select_from(FlowDay)) or 0
        mark = session.execute(
            select(FlowMark.since, FlowMark.through, FlowMark.events, FlowMark.last_event_id)
        ).first()
        return rows, tuple(mark) if mark is not None else None


@pytest.mark.parametrize("seed_number", [1, 2, 3])
def test_flow_through_the_cache_equals_the_replay_and_survives_imports_into_the_past(
    seed: Seed, monkeypatch: pytest.MonkeyPatch, seed_number: int
) -> None:
    rng = random.Random(seed_number)
    do_import(seed, random_items(rng, NOW - SPAN - timedelta(days=30), NOW - timedelta(days=6), 70))
    live_work(seed, rng, NOW - timedelta(days=6), 25)
    nows = [NOW, NOW + timedelta(days=2, hours=3), NOW - timedelta(days=40)]
    check_all(seed, rng, monkeypatch, nows)
    rows, mark = cache_state(seed)
    assert rows > 0 and mark is not None  # the long windows went through the cache

    # History written into the past (an import) drops what was summed from it.
    do_import(seed, random_items(rng, NOW - timedelta(days=600), NOW - timedelta(days=2), 25))
    check_all(seed, rng, monkeypatch, nows)
    assert cache_state(seed)[1] != mark

    # Work today leaves the closed days alone, and the answers stay the replay's.
    _rows, mark = cache_state(seed)
    assert mark is not None
    live_work(seed, rng, NOW + timedelta(days=3), 10)
    assert cache_state(seed)[1] == mark
    later = NOW + timedelta(days=3, hours=12)
    for start in (later - SPAN, later - timedelta(days=20, hours=3)):
        assert report(seed, start, None, later) == replayed(seed, monkeypatch, start, None, later)


def test_class_filter_and_windows_without_closed_days_replay(
    seed: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(5)
    do_import(seed, random_items(rng, NOW - timedelta(days=200), NOW - timedelta(days=1), 40))
    for cos in ("standard", "expedite"):
        start = NOW - timedelta(days=150)
        expected = replayed(seed, monkeypatch, start, None, NOW, cos)
        assert report(seed, start, None, NOW, cos) == expected
    assert cache_state(seed) == (0, None)  # a class filter never reads or fills the cache
    today = datetime.combine(NOW.date(), time(), tzinfo=UTC)
    assert report(seed, today, None, NOW) == replayed(seed, monkeypatch, today, None, NOW)
    assert cache_state(seed) == (0, None)


def test_cached_days_are_the_replay_of_each_day(seed: Seed) -> None:
    """Each stored day holds what one replay of that day gives (the done state's time aside)."""
    rng = random.Random(11)
    do_import(seed, random_items(rng, NOW - timedelta(days=30), NOW - timedelta(days=1), 30))
    report(seed, NOW - timedelta(days=20), None, NOW)
    with seed.database.unit_of_work(write=False) as session:
        states = mq.states(session, seed.board_id)
        done_id = next(s.id for s in states if s.kind == "done")
        first = (NOW - timedelta(days=19)).date()
        for offset in range(19):
            day = first + timedelta(days=offset)
            start = datetime.combine(day, time(), tzinfo=UTC)
            window = analytics.Window(start, start + timedelta(days=1), NOW)
            one = analytics._replayed_figures(session, seed.board_id, window, done_id, None)
            stored = Figures()
            for row in mq.flow_days(session, seed.board_id, day, day):
                _add_row(stored, row)
            one.states.pop(done_id, None)
            stored.states.pop(done_id, None)
            for figures in (*one.states.values(), *stored.states.values()):
                figures.visits.sort()
            # A state with nothing that day has no row.
            expected = {k: v for k, v in one.states.items() if v != StateFigures()}
            assert stored.states == expected, day
            assert (stored.completed, stored.cycle_us, stored.active_us) == (
                one.completed,
                one.cycle_us,
                one.active_us,
            )
