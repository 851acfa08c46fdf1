"""Unit tests for app.flow.metrics: hand-worked answers, arithmetic in the comments."""

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from app.flow import metrics as m
from app.flow.metrics import (
    Interval,
    Segment,
    StateTime,
    age_seconds,
    bucket_counts,
    cfd_counts,
    daily_throughput,
    flow_efficiency,
    forecast_days_for_items,
    forecast_items_by_date,
    merge_intervals,
    overlap_seconds,
    pct_time_at_limit,
    percentile_nearest_rank,
    percentiles,
    split_item_time,
    subtract_intervals,
)


def at(hh: int, mm: int = 0, day: int = 4) -> datetime:
    """2024-03-<day> hh:mm UTC (2024-03-04 is a Monday)."""
    return datetime(2024, 3, day, hh, mm, tzinfo=UTC)


# --------------------------------------------------------------------------- percentiles


class TestPercentiles:
    def test_single_value_is_every_percentile(self) -> None:
        # n=1: ceil(p/100 * 1) = 1 for any p in (0, 100] -> the only value.
        for p in (0.1, 50, 85, 95, 100):
            assert percentile_nearest_rank([7.0], p) == 7.0

    def test_p50_of_four_values_is_second(self) -> None:
        # ascending [10, 20, 30, 40]; ceil(0.50 * 4) = 2 -> 2nd value = 20.
        assert percentile_nearest_rank([40, 10, 30, 20], 50) == 20

    def test_twenty_values(self) -> None:
        values = list(range(1, 21))
        random.Random(1).shuffle(values)
        # ceil(0.95 * 20) = 19 -> 19th; ceil(0.85 * 20) = 17; ceil(0.50 * 20) = 10.
        assert percentile_nearest_rank(values, 95) == 19
        assert percentile_nearest_rank(values, 85) == 17
        assert percentile_nearest_rank(values, 50) == 10
        # ceil(1.00 * 20) = 20 -> the maximum.
        assert percentile_nearest_rank(values, 100) == 20

    def test_rounds_up_between_ranks(self) -> None:
        # n=10: ceil(0.85 * 10) = ceil(8.5) = 9 -> 9th of 1..10.
        assert percentile_nearest_rank(range(1, 11), 85) == 9
        # tiny p: ceil(0.001 * 4) = 1 -> the minimum.
        assert percentile_nearest_rank([4, 3, 2, 1], 0.1) == 1

    def test_empty_is_none(self) -> None:
        assert percentile_nearest_rank([], 50) is None
        assert percentiles([]) == {"50": None, "85": None, "95": None}

    @pytest.mark.parametrize("p", [0, -1, 100.01, 101, float("nan")])
    def test_p_out_of_range(self, p: float) -> None:
        with pytest.raises(ValueError):
            percentile_nearest_rank([1.0], p)
        with pytest.raises(ValueError):
            percentiles([1.0], (p,))

    def test_percentiles_keys_and_values(self) -> None:
        # 1..20: ranks 10, 17, 19 as above.
        assert percentiles(range(20, 0, -1)) == {"50": 10, "85": 17, "95": 19}
        assert percentiles([5, 1], (50, 99.9)) == {"50": 1, "99.9": 5}


# --------------------------------------------------------------------------- intervals


class TestIntervals:
    def test_interval_rejects_negative_length(self) -> None:
        with pytest.raises(ValueError):
            Interval(at(11), at(10))
        with pytest.raises(ValueError):
            Segment(at(11), at(10), 1, m.DOING)

    def test_naive_is_read_as_utc(self) -> None:
        naive = Interval(datetime(2024, 3, 4, 10), datetime(2024, 3, 4, 11))
        assert naive == Interval(at(10), at(11))
        assert naive.seconds == 3600

    def test_overlap_seconds(self) -> None:
        spans: list[m.Span] = [Interval(at(10), at(12)), Segment(at(13), at(14), 1, m.DOING)]
        # window 11:00-13:30: 11:00-12:00 = 3600 + 13:00-13:30 = 1800 -> 5400.
        assert overlap_seconds(spans, at(11), at(13, 30)) == 5400
        assert overlap_seconds([], at(11), at(12)) == 0
        # entirely outside the window
        assert overlap_seconds(spans, at(15), at(16)) == 0

    def test_merge_intervals_joins_overlapping_and_touching(self) -> None:
        merged = merge_intervals(
            [Interval(at(12), at(13)), Interval(at(9), at(10)), Interval(at(10), at(11))]
        )
        # 09-10 and 10-11 touch -> 09-11; 12-13 stays apart.
        assert merged == [Interval(at(9), at(11)), Interval(at(12), at(13))]
        assert merge_intervals([Interval(at(9), at(9))]) == []  # empty spans vanish

    def test_subtract_intervals_counts_overlapping_blocks_once(self) -> None:
        seg = Segment(at(10), at(12), 1, m.DOING)  # 7200 s
        blocks = [
            Interval(at(9), at(10, 30)),
            Interval(at(10, 15), at(11)),  # overlaps the first: union 09:00-11:00
            Interval(at(11, 30), at(11, 45)),
        ]
        # blocked inside the segment: 10:00-11:00 = 3600 + 11:30-11:45 = 900 = 4500
        # not blocked: 7200 - 4500 = 2700
        assert subtract_intervals(seg, blocks) == 2700
        assert subtract_intervals(seg, []) == 7200


# --------------------------------------------------------------------------- time in state


# State 1: doing 09:00-10:00, ready 10:00-11:00; state 2: doing 11:00-13:00.
# One block 10:30-11:30 spans the state change (live pulls refuse blocked items,
# but imported histories can contain this).
SEGMENTS = (
    Segment(at(9), at(10), 1, m.DOING),
    Segment(at(10), at(11), 1, m.READY),
    Segment(at(11), at(13), 2, m.DOING),
)
BLOCKS = (Interval(at(10, 30), at(11, 30)),)


class TestSplitItemTime:
    def test_blocked_across_a_state_change(self) -> None:
        result = split_item_time(list(SEGMENTS), list(BLOCKS), None)
        # state 1: doing 3600, ready 3600, blocked 10:30-11:00 = 1800 (in ready),
        # active = doing 3600 - blocked-in-doing 0 = 3600, total 7200,
        # waiting = ready 3600 + blocked doing 0 = 3600.
        assert result[1] == StateTime(
            doing_seconds=3600,
            ready_seconds=3600,
            blocked_seconds=1800,
            active_seconds=3600,
            total_seconds=7200,
        )
        assert result[1].waiting_seconds == 3600
        # state 2: doing 7200, blocked 11:00-11:30 = 1800, active 7200 - 1800 = 5400,
        # waiting = 0 + 1800 = 1800.
        assert result[2] == StateTime(7200, 0, 1800, 5400, 7200)
        assert result[2].waiting_seconds == 1800
        # the whole block is counted once: 1800 + 1800 = 3600 = 10:30-11:30.
        assert result[1].blocked_seconds + result[2].blocked_seconds == 3600

    def test_window_clips_segments_and_blocks(self) -> None:
        result = split_item_time(list(SEGMENTS), list(BLOCKS), (at(10, 45), at(12)))
        # state 1: ready 10:45-11:00 = 900, all of it blocked; no doing, no active.
        assert result[1] == StateTime(0, 900, 900, 0, 900)
        # state 2: doing 11:00-12:00 = 3600, blocked 11:00-11:30 = 1800, active 1800.
        assert result[2] == StateTime(3600, 0, 1800, 1800, 3600)
        # a window touching no segment yields no states at all
        assert split_item_time(list(SEGMENTS), list(BLOCKS), (at(14), at(15))) == {}

    def test_stage_less_time_counts_only_in_total_and_blocked(self) -> None:
        # backlog 08:00-09:00, blocked 08:30-09:30 while moving into doing.
        segs = [Segment(at(8), at(9), 0, None), Segment(at(9), at(10), 1, m.DOING)]
        result = split_item_time(segs, [Interval(at(8, 30), at(9, 30))], None)
        assert result[0] == StateTime(0, 0, 1800, 0, 3600)
        # doing 3600, blocked 1800 -> active 1800
        assert result[1] == StateTime(3600, 0, 1800, 1800, 3600)

    def test_empty_inputs(self) -> None:
        assert split_item_time([], [], None) == {}
        assert split_item_time([], list(BLOCKS), (at(0), at(23))) == {}
        no_blocks = split_item_time(list(SEGMENTS), [], None)
        assert no_blocks[2].active_seconds == no_blocks[2].doing_seconds == 7200

    def test_statetime_add(self) -> None:
        total = StateTime()
        total.add(StateTime(1, 2, 3, 4, 5))
        total.add(StateTime(10, 20, 30, 40, 50))
        assert total == StateTime(11, 22, 33, 44, 55)


def test_flow_efficiency() -> None:
    # 1800 s active over 7200 s cycle = 0.25
    assert flow_efficiency(1800, 7200) == 0.25
    assert flow_efficiency(0, 7200) == 0.0
    assert flow_efficiency(0, 0) is None


# --------------------------------------------------------------------------- throughput


class TestThroughput:
    def test_daily_counts_include_zero_days(self) -> None:
        done = [date(2024, 3, 4), date(2024, 3, 4), date(2024, 3, 6)]
        done += [date(2024, 3, 9), date(2024, 3, 3)]  # outside the range: ignored
        # Mon 4th: 2, Tue 5th: 0, Wed 6th: 1, Thu 7th: 0, Fri 8th: 0
        assert daily_throughput(done, date(2024, 3, 4), date(2024, 3, 8)) == [2, 0, 1, 0, 0]

    def test_daily_empty_and_reversed(self) -> None:
        assert daily_throughput([], date(2024, 3, 4), date(2024, 3, 6)) == [0, 0, 0]
        assert daily_throughput([], date(2024, 3, 6), date(2024, 3, 4)) == []

    def test_datetimes_are_dated_in_tz(self) -> None:
        late = datetime(2024, 3, 4, 23, 30, tzinfo=UTC)  # 00:30 on the 5th at UTC+1
        plus_one = timezone(timedelta(hours=1))
        assert daily_throughput([late], date(2024, 3, 4), date(2024, 3, 5)) == [1, 0]
        assert daily_throughput([late], date(2024, 3, 4), date(2024, 3, 5), plus_one) == [0, 1]

    def test_week_buckets_start_on_monday(self) -> None:
        start, end = date(2024, 3, 6), date(2024, 3, 19)  # Wed .. Tue
        done = [
            date(2024, 3, 5),  # Tue before start: excluded
            date(2024, 3, 6),  # Wed, week of Mon 4th
            datetime(2024, 3, 10, 23, 59, tzinfo=UTC),  # Sun, week of Mon 4th
            date(2024, 3, 11),  # Mon, week of the 11th
            date(2024, 3, 19),  # Tue, week of the 18th
            date(2024, 3, 20),  # after end: excluded
        ]
        # first bucket = Monday on or before Wed 6th = Mon 4th; last = Mon 18th.
        assert bucket_counts(done, start, end, "week") == [
            (date(2024, 3, 4), 2),
            (date(2024, 3, 11), 1),
            (date(2024, 3, 18), 1),
        ]

    def test_week_starting_on_monday_and_empty(self) -> None:
        monday = date(2024, 3, 11)
        assert bucket_counts([], monday, monday, "week") == [(monday, 0)]
        # Sun 17th still belongs to the week of Mon 11th
        assert bucket_counts([date(2024, 3, 17)], monday, date(2024, 3, 17), "week") == [
            (monday, 1)
        ]

    def test_day_buckets(self) -> None:
        got = bucket_counts([date(2024, 3, 5)], date(2024, 3, 4), date(2024, 3, 5), "day")
        assert got == [(date(2024, 3, 4), 0), (date(2024, 3, 5), 1)]

    def test_bad_interval(self) -> None:
        with pytest.raises(ValueError):
            bucket_counts([], date(2024, 3, 4), date(2024, 3, 5), "month")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- cumulative flow


DAYS = (date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6))


class TestCfd:
    def test_end_of_day_counts(self) -> None:
        transitions: list[list[tuple[datetime, int | None]]] = [
            # A: into 1 on the 4th, then moves twice on the 5th (1 -> 2 -> 3).
            [(at(9, day=4), 1), (at(10, day=5), 2), (at(15, day=5), 3)],
            # B: created on the 5th; moves at exactly midnight starting the 6th,
            # which is the 6th's move, not the 5th's.
            [(at(8, day=5), 1), (at(0, day=6), 2)],
            # C: created and discarded on the 4th: never at a day's end.
            [(at(12, day=4), 1), (at(18, day=4), None)],
            # D: first transition after the last day: does not exist yet.
            [(at(9, day=7), 5)],
        ]
        # end of 4th: A in 1                  -> 1:1 2:0 3:0
        # end of 5th: A in 3 (last move), B 1 -> 1:1 2:0 3:1
        # end of 6th: A in 3, B in 2          -> 1:0 2:1 3:1
        assert cfd_counts(transitions, DAYS, state_ids=[1, 2, 3, 4]) == {
            1: [1, 1, 0],
            2: [0, 0, 1],
            3: [0, 1, 1],
            4: [0, 0, 0],
        }

    def test_item_before_the_range_and_still_there(self) -> None:
        # exists since the 1st, in state 7 throughout: counted every day.
        assert cfd_counts([[(at(9, day=1), 7)]], DAYS) == {7: [1, 1, 1]}

    def test_day_ends_in_the_given_timezone(self) -> None:
        # 23:00 UTC on the 4th is 01:00 on the 5th at UTC+2.
        item = [[(at(23, day=4), 1)]]
        days = [date(2024, 3, 4), date(2024, 3, 5)]
        assert cfd_counts(item, days) == {1: [1, 1]}
        assert cfd_counts(item, days, tz=timezone(timedelta(hours=2))) == {1: [0, 1]}

    def test_empty_and_invalid(self) -> None:
        assert cfd_counts([], DAYS) == {}
        assert cfd_counts([], [], state_ids=[1]) == {1: []}
        with pytest.raises(ValueError):
            cfd_counts([[(at(10), 1), (at(9), 2)]], DAYS)
        with pytest.raises(ValueError):
            cfd_counts([], [date(2024, 3, 5), date(2024, 3, 4)])


# --------------------------------------------------------------------------- forecasting

REALISTIC = [0, 1, 0, 2, 1, 0, 0, 3, 1, 1, 0, 2, 0, 0, 1, 4, 1, 0, 2, 1] * 4 + [0] * 10  # 90 days


class TestForecast:
    def test_constant_history_is_exact(self) -> None:
        # every day 2: 10 days -> 20 items in every run.
        assert forecast_items_by_date([2, 2, 2], 10) == {"50": 20, "85": 20, "95": 20}
        # 7 items at 2 a day: 2, 4, 6, 8 -> 4 days in every run.
        assert forecast_days_for_items([2, 2, 2], 7) == {"50": 4, "85": 4, "95": 4}

    def test_no_throughput(self) -> None:
        for history in ([0, 0, 0], []):
            assert forecast_items_by_date(history, 30) == {"50": 0, "85": 0, "95": 0}
            assert forecast_days_for_items(history, 5) == {"50": None, "85": None, "95": None}

    def test_nothing_asked(self) -> None:
        assert forecast_items_by_date(REALISTIC, 0) == {"50": 0, "85": 0, "95": 0}
        assert forecast_days_for_items(REALISTIC, 0) == {"50": 0, "85": 0, "95": 0}

    def test_at_least_as_well_for_counts(self) -> None:
        # one day ahead, 9 of 10 history days did 3, one did 0: ~90 % of runs get
        # 3 (10,000 runs: sd 0.3 points), so 3 is reached by >= 50 % and >= 85 %
        # of runs, but only 0 is reached by >= 95 % of them.
        history = [3] * 9 + [0]
        assert forecast_items_by_date(history, 1) == {"50": 3, "85": 3, "95": 0}

    def test_within_for_days(self) -> None:
        # 1 item; a day does it with probability 0.9: ~90 % of runs finish in 1
        # day (>= 85 %), 1 - 0.1**2 = 99 % within 2 days (>= 95 %).
        history = [1] * 9 + [0]
        assert forecast_days_for_items(history, 1) == {"50": 1, "85": 1, "95": 2}
        # with max_days=1 the ~10 % of runs that need 2 days are "not within reach"
        assert forecast_days_for_items(history, 1, max_days=1) == {
            "50": 1,
            "85": 1,
            "95": None,
        }

    def test_unreachable_within_max_days(self) -> None:
        # at most 1 a day: 5 items cannot be done in 3 days.
        assert forecast_days_for_items([1, 0], 5, max_days=3) == {
            "50": None,
            "85": None,
            "95": None,
        }

    def test_deterministic(self) -> None:
        a = forecast_items_by_date(REALISTIC, 30, seed=7)
        assert a == forecast_items_by_date(list(REALISTIC), 30, seed=7)
        b = forecast_days_for_items(REALISTIC, 25, seed=7)
        assert b == forecast_days_for_items(list(REALISTIC), 25, seed=7)
        # default seed too
        assert forecast_items_by_date(REALISTIC, 30) == forecast_items_by_date(REALISTIC, 30)

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_percentile_ordering(self, seed: int) -> None:
        counts = forecast_items_by_date(REALISTIC, 30, seed=seed)
        assert counts["50"] >= counts["85"] >= counts["95"]
        days = forecast_days_for_items(REALISTIC, 25, seed=seed)
        assert days["50"] is not None and days["85"] is not None and days["95"] is not None
        assert days["50"] <= days["85"] <= days["95"]

    @pytest.mark.parametrize("history", [REALISTIC, REALISTIC * 4])  # fast and fallback paths
    def test_more_throughput_is_not_worse(self, history: list[int]) -> None:
        # Same length, same seed -> same sampled days, each one better by 1 item,
        # so every run does at least as well.
        better = [v + 1 for v in history]
        low, high = forecast_items_by_date(history, 30), forecast_items_by_date(better, 30)
        assert all(high[k] >= low[k] for k in low)
        slow, fast = forecast_days_for_items(history, 40), forecast_days_for_items(better, 40)
        assert all(fast[k] <= slow[k] for k in slow)  # type: ignore[operator]

    def test_large_values_use_the_general_path(self) -> None:
        assert forecast_items_by_date([300], 2, runs=10) == {"50": 600, "85": 600, "95": 600}
        assert forecast_days_for_items([300], 301, runs=10) == {"50": 2, "85": 2, "95": 2}

    def test_invalid_inputs(self) -> None:
        with pytest.raises(ValueError):
            forecast_items_by_date([1, -1], 5)
        with pytest.raises(ValueError):
            forecast_days_for_items([1], 5, runs=0)
        with pytest.raises(ValueError):
            forecast_items_by_date([1], 3651)  # beyond max_days

    def test_byte_sampler_is_uniform(self) -> None:
        # 200 history days: bytes 200..255 must be rejected, else days 0..55 would
        # be drawn twice as often (2/256 instead of 1/200 each).
        draw = m._sampler(list(range(200)), random.Random(3))
        sample = draw(200_000)
        assert len(sample) == 200_000
        share_low = sum(1 for v in sample if v < 56) / len(sample)
        # expected 56/200 = 0.28 (sd ~0.001); biased would be 112/256 = 0.4375
        assert 0.27 < share_low < 0.29
        counts = Counter(m._sampler([5, 6, 7], random.Random(4))(30_000))
        assert set(counts) == {5, 6, 7}
        assert all(9_000 < c < 11_000 for c in counts.values())


# --------------------------------------------------------------------------- WIP and age


class TestWipAndAge:
    def test_age_seconds(self) -> None:
        # 12:00 - 09:30 = 2.5 h = 9000 s
        assert age_seconds(at(12), at(9, 30)) == 9000
        assert age_seconds(datetime(2024, 3, 4, 12), at(9, 30)) == 9000  # naive = UTC
        assert age_seconds(at(9), at(9, 30)) == 0  # clock skew never gives negative age

    def test_pct_time_at_limit(self) -> None:
        changes = [
            (at(5), 3),
            (at(8), 1),
            (at(22, day=3), 3),  # before the window: WIP at 00:00 is 3
            (at(2), 2),
            (at(5), 4),  # same time as (05:00, 3): the later one wins
            (at(11), 3),  # after the window
        ]
        # window 00:00-10:00 = 10 h, limit 3:
        # 00-02 WIP 3 (at limit) 2 h; 02-05 WIP 2; 05-08 WIP 4 (over) 3 h; 08-10 WIP 1
        # -> (2 + 3) / 10 = 0.5
        assert pct_time_at_limit(changes, 3, at(0), at(10)) == 0.5

    def test_pct_time_at_limit_edges(self) -> None:
        assert pct_time_at_limit([(at(1), 5)], None, at(0), at(10)) is None
        assert pct_time_at_limit([], 2, at(0), at(10)) == 0.0  # WIP 0 throughout
        assert pct_time_at_limit([], 0, at(0), at(10)) == 1.0  # a limit of 0 is always met
        assert pct_time_at_limit([], 2, at(10), at(10)) is None  # empty window
        # from 07:30 at the limit until the end: 2.5 h of 10 h = 0.25
        assert pct_time_at_limit([(at(7, 30), 2)], 2, at(0), at(10)) == 0.25
