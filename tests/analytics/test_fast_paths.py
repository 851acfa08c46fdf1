"""The epoch-seconds fast paths in app.flow.metrics agree with the reference functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.flow import metrics as m

BASE = datetime(2026, 3, 2, tzinfo=UTC)


def _random_item(rng: random.Random) -> tuple[list[m.Segment], list[m.Interval], datetime]:
    at = BASE
    segments = []
    for _ in range(rng.randint(1, 8)):
        length = timedelta(hours=rng.randint(0, 60))
        stage = rng.choice([m.DOING, m.READY, None])
        segments.append(m.Segment(at, at + length, rng.randint(1, 4), stage))
        at += length
    blocks = []
    for _ in range(rng.randint(0, 4)):
        start = BASE + timedelta(hours=rng.randint(0, 300))
        blocks.append(m.Interval(start, start + timedelta(hours=rng.randint(0, 50))))
    return segments, blocks, at


@pytest.mark.parametrize("seed", range(40))
def test_split_path_seconds_matches_split_item_time(seed: int) -> None:
    rng = random.Random(seed)
    segments, blocks, end = _random_item(rng)
    window = (
        BASE + timedelta(hours=rng.randint(0, 100)),
        BASE + timedelta(hours=rng.randint(100, 400)),
    )
    path = [(s.start.timestamp(), s.state_id, s.stage) for s in segments]
    merged = m.merge_spans_seconds((b.start.timestamp(), b.end.timestamp()) for b in blocks)
    for clip in (window, None):
        expected = m.split_item_time(segments, blocks, clip)
        got: dict[int, list[float]] = {}
        clip_t = (clip[0].timestamp(), clip[1].timestamp()) if clip else None
        active = m.split_path_seconds(path, merged, end.timestamp(), clip_t, got)
        assert set(got) == set(expected)
        for state_id, st in expected.items():
            assert got[state_id] == pytest.approx(
                [
                    st.doing_seconds,
                    st.ready_seconds,
                    st.blocked_seconds,
                    st.active_seconds,
                    st.total_seconds,
                ]
            )
        assert active == pytest.approx(sum(st.active_seconds for st in expected.values()))


def test_merge_spans_seconds_joins_touching_and_drops_empty() -> None:
    assert m.merge_spans_seconds([(5, 7), (1, 3), (3, 4), (6, 9), (10, 10)]) == [(1, 4), (5, 9)]
