"""Flow analytics on hand-worked histories; the arithmetic is in the comments.

Board (tests.factories): Backlog, Build (limit 3), Review (limit 2), Done.
Window: 2026-03-01 00:00 .. 03-11 00:00 (10 days = 240 h); now = 03-11 00:00 unless said.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from app.flow import metrics as m
from app.flow.errors import InvalidInput
from app.services import analytics
from app.services.items import create_item, discard_item
from tests.analytics.helpers import block, do_import, item, move, t
from tests.factories import Seed

H = 3600.0
FROM, TO = t(1), t(11)

# Scenario A (the fixture below):
#   A: created 03-02 00:00; Build 03-02 10:00; ready 03-03 10:00; Review 03-04 10:00;
#      sent back to Build 03-05 10:00; ready 03-05 16:00; Review 03-06 10:00; Done 03-07 10:00.
#      Blocked (Waiting for decision) 03-03 20:00 .. 03-04 14:00, across the pull into Review:
#      14 h of it in Build / Ready, 4 h in Review / Doing.
#   B: created 03-02 00:00; Build 03-03 00:00; ready 03-08 00:00; blocked (Dependency) from
#      03-09 00:00, still open.
#   C: done before the window (created 02-01, Build 02-02, Done 02-10).
#   D: live option created 03-09 12:00, discarded 03-10 12:00.
#   E: option created 03-09 00:00, still in the backlog.


@pytest.fixture
def scenario(seed: Seed) -> Seed:
    do_import(
        seed,
        [
            item(
                "A",
                t(2),
                [
                    move(t(2, 10), "Build"),
                    move(t(3, 10), "Build", "ready"),
                    move(t(4, 10), "Review"),
                    move(t(5, 10), "Build"),
                    move(t(5, 16), "Build", "ready"),
                    move(t(6, 10), "Review"),
                    move(t(7, 10), "Done"),
                ],
                [block("Waiting for decision", t(3, 20), t(4, 14))],
            ),
            item(
                "B",
                t(2),
                [move(t(3), "Build"), move(t(8), "Build", "ready")],
                [block("Dependency", t(9), None, waiting_on="Legal")],
            ),
            item("C", t(1, month=2), [move(t(2, month=2), "Build"), move(t(10, month=2), "Done")]),
            item("E", t(9)),
        ],
    )
    with seed.database.unit_of_work() as session:
        detail = create_item(
            session=session,
            board_id=seed.board_id,
            actor=seed.user("member"),
            title="D",
            now=t(9, 12),
        )
        discard_item(
            session=session,
            item_id=detail.item.id,
            actor=seed.user("manager"),
            reason="Not needed",
            now=t(10, 12),
        )
    return seed


def _call(seed: Seed, fn, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("start", FROM)
    kwargs.setdefault("end", TO)
    kwargs.setdefault("now", TO)
    with seed.database.unit_of_work(write=False) as session:
        result = fn(session=session, board_id=seed.board_id, actor=seed.user("viewer"), **kwargs)
        return (
            list(result)
            if not hasattr(result, "as_dict") and not isinstance(result, (list, tuple))
            else result
        )


def test_flow_per_state(scenario: Seed) -> None:
    report = _call(scenario, analytics.flow_report)
    by_name = {s.name: s for s in report.states}
    backlog, build, review, done = (by_name[n] for n in ("Backlog", "Build", "Review", "Done"))

    # Backlog: E is the open option (D was discarded); oldest since 03-09 00:00 = 48 h.
    assert (backlog.wip, backlog.queue, backlog.oldest_ready_seconds) == (1, 1, 48 * H)
    # Visits that ended in the window: A 10 h, B 24 h, D 24 h (discard ends it).
    # Nearest rank: p50 = ceil(1.5) = 2nd = 24 h; p85 = ceil(2.55) = 3rd = 24 h.
    assert (backlog.median_seconds_in_state, backlog.p85_seconds_in_state) == (24 * H, 24 * H)

    # Build doing: A 24 h + 6 h, B 03-03 .. 03-08 = 120 h -> 150 h.
    # Build ready: A 24 h + 18 h, B 03-08 .. 03-11 = 72 h -> 114 h.
    # Build blocked: A 14 h (its block's part before the pull), B 03-09 .. 03-11 = 48 h -> 62 h.
    assert build.doing_seconds == 150 * H
    assert build.ready_seconds == 114 * H
    assert build.blocked_seconds == 62 * H
    # Completed Build visits: 48 h and 24 h -> p50 = 1st = 24 h, p85 = ceil(1.7) = 2nd = 48 h.
    assert (build.median_seconds_in_state, build.p85_seconds_in_state) == (24 * H, 48 * H)
    # Now: B in Build / Ready, blocked; it became ready 72 h ago.
    assert (build.wip, build.limit, build.queue, build.blocked_now) == (1, 3, 1, 1)
    assert build.oldest_ready_seconds == 72 * H
    assert build.pct_time_at_limit == 0.0  # at most 2 of 3
    assert (build.rework_count, build.sent_back_into_count) == (0, 1)

    # Review: A doing 24 h twice = 48 h; blocked 4 h (03-04 10:00 .. 14:00).
    assert (review.doing_seconds, review.ready_seconds, review.blocked_seconds) == (
        48 * H,
        0.0,
        4 * H,
    )
    assert (review.median_seconds_in_state, review.p85_seconds_in_state) == (24 * H, 24 * H)
    # rework counts sends back OUT of a state: Review sent A back once.
    assert (review.rework_count, review.sent_back_into_count) == (1, 0)
    assert (review.wip, review.queue, review.blocked_now) == (0, 0, 0)

    assert (done.wip, done.limit, done.pct_time_at_limit) == (0, None, None)

    # Bottleneck: Review has Build's 114 h of Ready time in front of it (x (1 + 0));
    # Build has only the backlog in front (options, not a queue): 0.
    assert report.bottleneck_state_id == review.state_id
    assert (review.queue_wait_seconds, build.queue_wait_seconds) == (114 * H, 0.0)
    # 2 items (A, B) waited in Build / Ready: 114 h / 2 = 57 h = 2.375 days.
    assert report.summary == (
        "Review is the bottleneck: 2 items waited on average 2.4 days in Build / Ready for "
        "Review to pull; Review was at its WIP limit 0% of the last 10 days."
    )
    # A, done in the window: cycle 03-02 10:00 .. 03-07 10:00 = 120 h; active = Build doing
    # 24 + 6 h + Review doing (24 - 4 blocked) + 24 h = 74 h -> 74 / 120.
    assert report.flow_efficiency == pytest.approx(74 / 120)
    assert report.avg_cycle_time_seconds == 120 * H
    # One item done in 10 days = 0.7 per week.
    assert report.throughput_per_week == pytest.approx(0.7)
    # Work-state time in the window: A 72 h Build + 48 h Review, B 192 h Build = 312 h / 240 h.
    assert report.avg_wip == pytest.approx(1.3)


def test_class_of_service_filter_narrows_items_not_limits(scenario: Seed) -> None:
    report = _call(scenario, analytics.flow_report, class_of_service="expedite")
    build = next(s for s in report.states if s.name == "Build")
    # No expedite items: every item figure is empty, the state's WIP still counts B.
    assert (build.doing_seconds, build.queue, build.blocked_now, build.wip) == (0.0, 0, 0, 1)
    assert report.bottleneck_state_id is None
    assert report.flow_efficiency is None
    with pytest.raises(InvalidInput):
        _call(scenario, analytics.flow_report, class_of_service="urgent")


def test_block_open_at_the_window_end_is_clipped_to_to(scenario: Seed) -> None:
    # Window ending 03-10 00:00 (now still 03-11): B's open block counts 03-09 .. 03-10 = 24 h.
    reasons = _call(scenario, analytics.waiting_reasons, end=t(10))
    assert [(r.reason, r.count, r.blocked_seconds) for r in reasons] == [
        ("Dependency", 1, 24 * H),
        ("Waiting for decision", 1, 18 * H),
    ]
    # To now: 48 h, so Dependency (48 h) leads the Pareto before Waiting for decision (18 h).
    reasons = _call(scenario, analytics.waiting_reasons)
    assert [(r.reason, r.blocked_seconds) for r in reasons] == [
        ("Dependency", 48 * H),
        ("Waiting for decision", 18 * H),
    ]
    build = next(
        s for s in _call(scenario, analytics.flow_report, end=t(10)).states if s.name == "Build"
    )
    # Build blocked up to 03-10: A 14 h + B 24 h.
    assert build.blocked_seconds == 38 * H


def test_cycle_times_exclude_items_done_outside_the_window(scenario: Seed) -> None:
    result = _call(scenario, analytics.cycle_times)
    # Only A: C was done on 02-10. cycle 120 h, lead 03-02 00:00 .. 03-07 10:00 = 130 h.
    assert [(c.key, c.cycle_seconds, c.lead_seconds) for c in result.items] == [
        ("TST-1", 120 * H, 130 * H)
    ]
    assert result.percentiles == {"50": 120 * H, "85": 120 * H, "95": 120 * H}
    february = _call(scenario, analytics.cycle_times, start=t(1, month=2), end=t(1))
    # C: Build 02-02 00:00 .. Done 02-10 00:00 = 8 days.
    assert [c.cycle_seconds for c in february.items] == [8 * 24 * H]


def test_cfd_counts_at_the_end_of_each_day(scenario: Seed) -> None:
    result = _call(scenario, analytics.cfd)
    assert result.days[0].isoformat() == "2026-03-01" and len(result.days) == 10
    counts = {s.name: s.counts for s in result.states}
    # End of day = the next midnight; a move exactly at midnight belongs to the next day
    # (A and B are created at 03-02 00:00, B enters Build at 03-03 00:00, E appears 03-09 00:00).
    #              03-01 02 03 04 05 06 07 08 09 10
    assert counts["Backlog"] == [0, 1, 0, 0, 0, 0, 0, 0, 2, 1]  # 03-09: D and E; D gone 03-10
    assert counts["Build"] == [0, 1, 2, 1, 2, 1, 1, 1, 1, 1]
    assert counts["Review"] == [0, 0, 0, 1, 0, 1, 0, 0, 0, 0]
    assert counts["Done"] == [1, 1, 1, 1, 1, 1, 2, 2, 2, 2]  # C all along, A from 03-07


def test_aging_uses_the_windows_cycle_times(scenario: Seed) -> None:
    result = _call(scenario, analytics.aging)
    # B is the only open committed item: committed 03-03 00:00, now 03-11 00:00 = 192 h.
    assert [(a.key, a.state_id, a.age_seconds) for a in result.items] == [
        ("TST-2", scenario.state_id("Build"), 192 * H)
    ]
    assert result.percentiles["85"] == 120 * H  # A's cycle time


def test_snapshot_at_past_times(scenario: Seed) -> None:
    build, review = scenario.state_id("Build"), scenario.state_id("Review")
    backlog, done = scenario.state_id("Backlog"), scenario.state_id("Done")

    def at(moment: datetime) -> list[tuple[str, int, str | None, bool]]:
        with scenario.database.unit_of_work(write=False) as session:
            snap = analytics.snapshot(
                session=session,
                board_id=scenario.board_id,
                actor=scenario.user("viewer"),
                at=moment,
                now=TO,
            )
        return [(s.key, s.state_id, s.stage, s.blocked) for s in snap.items]

    # 03-04 12:00: A in Review, blocked since 03-03 20:00; B building; C done; D, E not yet.
    assert at(t(4, 12)) == [
        ("TST-1", review, "doing", True),
        ("TST-2", build, "doing", False),
        ("TST-3", done, None, False),
    ]
    # 03-10 00:00: A done; B ready and blocked; D and E options.
    assert at(t(10)) == [
        ("TST-1", done, None, False),
        ("TST-2", build, "ready", True),
        ("TST-3", done, None, False),
        ("TST-4", backlog, None, False),
        ("TST-5", backlog, None, False),
    ]
    # 03-10 13:00: D was discarded at 12:00.
    assert [k for k, *_ in at(t(10, 13))] == ["TST-1", "TST-2", "TST-3", "TST-4"]
    with pytest.raises(InvalidInput):
        at(t(12))  # after now


def _seven_done(seed: Seed) -> None:
    # Seven items committed Monday 03-02 08:00, done i days later (i = 1..7): 03-03 .. 03-09.
    do_import(
        seed,
        [
            item(
                f"N{i}",
                t(2),
                [
                    move(t(2, 8), "Build"),
                    move(t(2 + i, 8), "Build", "ready"),
                    move(t(2 + i, 8), "Review"),
                    move(t(2 + i, 8), "Done"),
                ],
            )
            for i in range(1, 8)
        ],
    )


def test_percentiles_are_nearest_rank(seed: Seed) -> None:
    _seven_done(seed)
    result = _call(seed, analytics.cycle_times)
    day = 24 * H
    assert [c.cycle_seconds for c in result.items] == [i * day for i in range(1, 8)]
    # n = 7: p50 -> ceil(3.5) = 4th = 4 d; p85 -> ceil(5.95) = 6th = 6 d (interpolation would
    # say 6.1 d); p95 -> ceil(6.65) = 7th = 7 d.
    assert result.percentiles == {"50": 4 * day, "85": 6 * day, "95": 7 * day}


def test_throughput_by_day_and_week_excludes_discarded(seed: Seed) -> None:
    _seven_done(seed)
    with seed.database.unit_of_work() as session:
        detail = create_item(
            session=session, board_id=seed.board_id, actor=seed.user("member"), title="X", now=t(4)
        )
        discard_item(
            session=session,
            item_id=detail.item.id,
            actor=seed.user("manager"),
            reason="Duplicate",
            now=t(5),
        )
    daily = _call(seed, analytics.throughput, interval="day")
    assert [(b.start.day, b.count) for b in daily] == [
        (1, 0),
        (2, 0),
        (3, 1),
        (4, 1),
        (5, 1),
        (6, 1),
        (7, 1),
        (8, 1),
        (9, 1),
        (10, 0),
    ]
    weekly = _call(seed, analytics.throughput, interval="week")
    # Monday weeks: 02-23 (holds only 03-01: 0), 03-02 (03-03 .. 03-08: 6), 03-09 (1).
    assert [(b.start.isoformat(), b.count) for b in weekly] == [
        ("2026-02-23", 0),
        ("2026-03-02", 6),
        ("2026-03-09", 1),
    ]


def test_forecast_is_deterministic_and_matches_the_maths(seed: Seed) -> None:
    _seven_done(seed)
    first = _call(seed, analytics.forecast, items=10)
    again = _call(seed, analytics.forecast, items=10)
    assert first == again
    # Whole days 03-01 .. 03-10: [0, 0, 1, 1, 1, 1, 1, 1, 1, 0].
    history = [0, 0, 1, 1, 1, 1, 1, 1, 1, 0]
    assert (first.history_days, first.runs) == (10, 10_000)
    assert first.days == m.forecast_days_for_items(history, 10, 10_000)
    d50, d85, d95 = (first.days[p] for p in ("50", "85", "95"))
    assert d50 <= d85 <= d95
    # Dates count from now's date (03-11).
    assert first.percentiles["85"] == t(11).date() + (t(11 + d85) - t(11))
    until = _call(seed, analytics.forecast, until=t(25).date())
    assert until.percentiles == m.forecast_items_by_date(history, 14, 10_000)
    assert until.percentiles["95"] <= until.percentiles["85"] <= until.percentiles["50"]
    for bad in ({}, {"items": 3, "until": t(25).date()}, {"items": 0}, {"until": t(5).date()}):
        with pytest.raises(InvalidInput):
            _call(seed, analytics.forecast, **bad)


def test_empty_board_and_empty_window(seed: Seed) -> None:
    report = _call(seed, analytics.flow_report)
    assert report.bottleneck_state_id is None
    assert report.flow_efficiency is None and report.avg_cycle_time_seconds is None
    assert (report.throughput_per_week, report.avg_wip) == (0.0, 0.0)
    assert all(s.median_seconds_in_state is None and s.wip == 0 for s in report.states)
    assert report.summary.startswith("No bottleneck stands out")
    # A zero-length window: no division by zero, no at-limit fraction.
    instant = _call(seed, analytics.flow_report, start=t(5), end=t(5))
    assert instant.throughput_per_week == 0.0
    assert all(s.pct_time_at_limit is None for s in instant.states)
    assert _call(seed, analytics.cycle_times).percentiles == {"50": None, "85": None, "95": None}
    assert all(c == 0 for s in _call(seed, analytics.cfd).states for c in s.counts)
    assert _call(seed, analytics.waiting_reasons) == []
    assert _call(seed, analytics.forecast, items=5).percentiles == {
        "50": None,
        "85": None,
        "95": None,
    }
    assert _call(seed, analytics.forecast, until=t(20).date()).percentiles == {
        "50": 0,
        "85": 0,
        "95": 0,
    }


def test_pct_time_at_limit_and_bottleneck_weighting(seed: Seed) -> None:
    # F: Build 03-01 01:00, ready 02:00, Review 03-02 00:00, Done 03-06 00:00.
    # G: Build 03-01 01:00, ready 02:00, Review 03-04 00:00, Done 03-08 00:00.
    # Review (limit 2) holds 2 from 03-04 to 03-06: 48 h of 240 h = 0.2.
    do_import(
        seed,
        [
            item(
                name,
                t(1),
                [
                    move(t(1, 1), "Build"),
                    move(t(1, 2), "Build", "ready"),
                    move(t(into), "Review"),
                    move(t(out), "Done"),
                ],
            )
            for name, into, out in (("F", 2, 6), ("G", 4, 8))
        ],
    )
    report = _call(seed, analytics.flow_report)
    review = next(s for s in report.states if s.name == "Review")
    assert review.pct_time_at_limit == pytest.approx(0.2)
    # Build / Ready in front of Review: F 22 h + G 70 h = 92 h.
    assert review.queue_wait_seconds == 92 * H
    assert report.bottleneck_state_id == review.state_id
    assert report.summary.endswith("Review was at its WIP limit 20% of the last 10 days.")
    # Review visits completed: 96 h each -> p50 = p85 = 96 h.
    assert review.median_seconds_in_state == 96 * H


def test_bad_windows_are_refused(seed: Seed) -> None:
    with pytest.raises(InvalidInput):
        _call(seed, analytics.flow_report, start=t(5), end=t(4))
    with pytest.raises(InvalidInput):
        _call(seed, analytics.cycle_times, start=t(1, month=1).replace(year=2022), end=t(5))
    with pytest.raises(InvalidInput):
        _call(seed, analytics.cfd, start=t(20), end=None)  # from after now (03-11)
