"""The epoch-microsecond fast paths in app.flow.metrics agree with the reference functions:
split_path_micros with split_item_time, its per-day twin with it day by day, and the WIP
level times with pct_time_at_limit."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.flow import metrics as m

BASE = datetime(2026, 3, 2, tzinfo=UTC)


def _random_item(rng: random.Random) -> tuple[list[m.Segment], list[m.Interval], datetime]:
    at = BASE + timedelta(minutes=rng.randint(0, 600))
    segments = []
    for _ in range(rng.randint(1, 8)):
        length = timedelta(hours=rng.randint(0, 60), microseconds=rng.randint(0, 999_999))
        stage = rng.choice([m.DOING, m.READY, None])
        segments.append(m.Segment(at, at + length, rng.randint(1, 4), stage))
        at += length
    blocks = []
    for _ in range(rng.randint(0, 4)):
        start = BASE + timedelta(hours=rng.randint(0, 300))
        blocks.append(m.Interval(start, start + timedelta(hours=rng.randint(0, 50))))
    return segments, blocks, at


def _micros_path(segments: list[m.Segment]) -> list[tuple[int, int | None, str | None]]:
    return [(m.micros(s.start), s.state_id, s.stage) for s in segments]


@pytest.mark.parametrize("seed", range(40))
def test_split_path_micros_matches_split_item_time(seed: int) -> None:
    rng = random.Random(seed)
    segments, blocks, end = _random_item(rng)
    window = (
        BASE + timedelta(hours=rng.randint(0, 100)),
        BASE + timedelta(hours=rng.randint(100, 400)),
    )
    merged = m.merge_spans((m.micros(b.start), m.micros(b.end)) for b in blocks)
    for clip in (window, None):
        expected = m.split_item_time(segments, blocks, clip)
        got: dict[int, list[int]] = {}
        clip_us = (m.micros(clip[0]), m.micros(clip[1])) if clip else None
        active = m.split_path_micros(_micros_path(segments), merged, m.micros(end), clip_us, got)
        assert set(got) == set(expected)
        for state_id, st in expected.items():
            assert [us / 1e6 for us in got[state_id]] == pytest.approx(
                [
                    st.doing_seconds,
                    st.ready_seconds,
                    st.blocked_seconds,
                    st.active_seconds,
                    st.total_seconds,
                ]
            )
        assert active / 1e6 == pytest.approx(sum(st.active_seconds for st in expected.values()))


@pytest.mark.parametrize("seed", range(40))
def test_split_path_by_day_is_split_path_micros_day_by_day(seed: int) -> None:
    rng = random.Random(seed)
    segments, blocks, end = _random_item(rng)
    path = _micros_path(segments)
    merged = m.merge_spans((m.micros(b.start), m.micros(b.end)) for b in blocks)
    first, days = m.micros(BASE - timedelta(days=rng.randint(0, 2))), rng.randint(1, 20)
    sums = m.DaySums(first, days)
    ready = m.split_path_by_day(path, merged, m.micros(end), sums)
    totals = sums.totals()
    for day in range(days):
        lo = first + day * m.DAY_MICROS
        one: dict[int, list[int]] = {}
        m.split_path_micros(path, merged, m.micros(end), (lo, lo + m.DAY_MICROS), one)
        for state_id in {s.state_id for s in segments}:
            acc = one.get(state_id, [0] * 5)
            for kind, index in ((m.DAY_DOING, 0), (m.DAY_READY, 1), (m.DAY_BLOCKED, 2)):
                assert totals.get((state_id, kind), [0] * days)[day] == acc[index]
            assert totals.get((state_id, m.DAY_TOTAL), [0] * days)[day] == acc[4]
            assert ((state_id, day) in ready) == (acc[1] > 0)


@pytest.mark.parametrize("seed", range(30))
def test_wip_levels_give_pct_time_at_limit(seed: int) -> None:
    rng = random.Random(seed)
    deltas: list[tuple[int, int]] = []
    for _ in range(rng.randint(0, 12)):
        enter = m.micros(BASE) + rng.randint(0, 200) * 3_600_000_000
        deltas.append((enter, 1))
        if rng.random() < 0.8:
            deltas.append((enter + rng.randint(0, 80) * 3_600_000_000, -1))
    lo = m.micros(BASE) + rng.randint(0, 100) * 3_600_000_000
    hi = lo + rng.randint(1, 150) * 3_600_000_000
    levels = m.wip_level_micros(deltas, lo, hi)
    assert sum(levels.values()) == hi - lo
    steps, wip = [], 0
    for at, delta in sorted(deltas):
        wip += delta
        steps.append((datetime.fromtimestamp(at / 1e6, UTC), wip))
    window = (datetime.fromtimestamp(lo / 1e6, UTC), datetime.fromtimestamp(hi / 1e6, UTC))
    for limit in range(0, 6):
        expected = m.pct_time_at_limit(steps, limit, *window)
        assert m.micros_at_or_above(levels, limit) / (hi - lo) == pytest.approx(expected)
    # Day by day, the same time at each level.
    first, days = lo - lo % m.DAY_MICROS, (hi - lo) // m.DAY_MICROS + 2
    by_day = m.wip_levels_by_day(deltas, first, days)
    for day, day_levels in enumerate(by_day):
        start = first + day * m.DAY_MICROS
        assert day_levels == m.wip_level_micros(deltas, start, start + m.DAY_MICROS)


def test_merge_spans_joins_touching_and_drops_empty() -> None:
    assert m.merge_spans([(5, 7), (1, 3), (3, 4), (6, 9), (10, 10)]) == [(1, 4), (5, 9)]


def test_micros_is_exact() -> None:
    at = datetime(2099, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert m.micros(at) == (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert m.micros(at.replace(tzinfo=None)) == m.micros(at)  # naive is UTC
