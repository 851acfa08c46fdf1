"""The Bottlenecks figures of a window as exact sums: from one replay of the window, or per
closed UTC day (cached by app.services.rollups) and added up.

Every time is an integer count of microseconds and every other figure a count, a set or a
list, so the figures of a window equal the sum of those of any split of it into pieces (its
partial first and last days replayed, the closed days between them from the cache), to the
last digit. app.services.analytics turns them into the report (seconds, percentiles, the
at-limit fraction) in one place whichever way they were made.

Day figures leave out the done state's time: an item done before a window is not replayed
for it, so its time in done belongs to no window. That time is never reported (done has no
stages, and closed items cannot be blocked), so nothing else is lost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.flow import metrics as m
from app.services.replay import ItemHistory


@dataclass(slots=True)
class StateFigures:
    """One state's figures over a window; times in microseconds."""

    doing: int = 0
    ready: int = 0
    blocked: int = 0
    total: int = 0
    sent_back_out: int = 0  # sends back out of this state (its rework count)
    sent_back_in: int = 0
    visits: list[int] = field(default_factory=list)  # stays that ended in the window
    waited: set[int] = field(default_factory=set)  # items with Ready time here
    wip: dict[int, int] = field(default_factory=dict)  # WIP level (>= 1) -> time at it

    def add(self, other: StateFigures) -> None:
        self.doing += other.doing
        self.ready += other.ready
        self.blocked += other.blocked
        self.total += other.total
        self.sent_back_out += other.sent_back_out
        self.sent_back_in += other.sent_back_in
        self.visits.extend(other.visits)
        self.waited.update(other.waited)
        for level, us in other.wip.items():
            self.wip[level] = self.wip.get(level, 0) + us


@dataclass(slots=True)
class Figures:
    """A window's figures: per state, and the items completed in it (by done_at)."""

    states: dict[int, StateFigures] = field(default_factory=dict)
    completed: int = 0
    completed_committed: int = 0  # of those, the ones with a commitment point
    cycle_us: int = 0  # their cycle times (done - committed), summed
    active_us: int = 0  # their active time (doing, not blocked) over their whole life

    def state(self, state_id: int) -> StateFigures:
        figures = self.states.get(state_id)
        if figures is None:
            figures = self.states[state_id] = StateFigures()
        return figures

    def add(self, other: Figures) -> None:
        for state_id, figures in other.states.items():
            self.state(state_id).add(figures)
        self.completed += other.completed
        self.completed_committed += other.completed_committed
        self.cycle_us += other.cycle_us
        self.active_us += other.active_us


def _path(history: ItemHistory) -> list[tuple[int, int | None, str | None]]:
    return [(m.micros(at), state_id, stage) for at, state_id, stage in history.path]


def _wip_deltas(
    visits: list[tuple[int, int, int | None]], done_id: int, into: dict[int, list[tuple[int, int]]]
) -> None:
    for state_id, entered, left in visits:
        if state_id == done_id:
            continue  # done has no WIP limit: its WIP only grows
        deltas = into[state_id]
        deltas.append((entered, 1))
        if left is not None:
            deltas.append((left, -1))


def _visits(history: ItemHistory) -> list[tuple[int, int, int | None]]:
    return [
        (state_id, m.micros(entered), m.micros(left) if left is not None else None)
        for state_id, entered, left in history.visits()
    ]


def window_figures(
    histories: Iterable[ItemHistory],
    start: int,
    end: int,
    now: int,
    done_id: int,
    class_of_service: str | None = None,
) -> Figures:
    """The figures of [start, end) (microseconds) from the replay of that window: the reference.

    With class_of_service every item figure counts that class only; WIP counts every item,
    because the limit does.
    """
    out = Figures()
    deltas: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for history in histories:
        visits = _visits(history)
        _wip_deltas(visits, done_id, deltas)
        if class_of_service is not None and history.class_of_service != class_of_service:
            continue
        path = _path(history)
        per_state: dict[int, list[int]] = {}
        m.split_path_micros(path, history.blocks, now, (start, end), per_state)
        for state_id, acc in per_state.items():
            figures = out.state(state_id)
            figures.doing += acc[0]
            figures.ready += acc[1]
            figures.blocked += acc[2]
            figures.total += acc[4]
            if acc[1] > 0:
                figures.waited.add(history.item_id)
        for state_id, entered, left in visits:
            if left is not None and start <= left < end:
                out.state(state_id).visits.append(left - entered)
        for at, from_id, to_id in history.sent_back:
            if start <= m.micros(at) < end:
                if from_id is not None:
                    out.state(from_id).sent_back_out += 1
                if to_id is not None:
                    out.state(to_id).sent_back_in += 1
        _completion(history, path, now, start, end, out)
    for state_id, changes in deltas.items():
        levels = m.wip_level_micros(changes, start, end)
        out.state(state_id).wip = {level: us for level, us in levels.items() if level > 0}
    return out


def _completion(
    history: ItemHistory,
    path: list[tuple[int, int | None, str | None]],
    now: int,
    start: int,
    end: int,
    out: Figures,
) -> None:
    """Counts the item into `out` if it was done in [start, end)."""
    if history.done_at is None or not start <= m.micros(history.done_at) < end:
        return
    out.completed += 1
    if history.committed_at is not None:
        out.completed_committed += 1
        out.cycle_us += m.micros(history.done_at) - m.micros(history.committed_at)
        out.active_us += m.split_path_micros(path, history.blocks, now, None, {})


def _add_time(figures: StateFigures, kind: int, us: int) -> None:
    if kind == m.DAY_DOING:
        figures.doing += us
    elif kind == m.DAY_READY:
        figures.ready += us
    elif kind == m.DAY_BLOCKED:
        figures.blocked += us
    else:
        figures.total += us


def day_figures(
    histories: Iterable[ItemHistory], first: int, days: int, now: int, done_id: int
) -> list[Figures]:
    """window_figures of each of `days` UTC days from `first` (microseconds), from one replay
    of them all (every class; the done state's time left out, see the module docstring)."""
    out = [Figures() for _ in range(days)]
    end = first + days * m.DAY_MICROS
    sums = m.DaySums(first, days)
    deltas: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for history in histories:
        visits = _visits(history)
        _wip_deltas(visits, done_id, deltas)
        path = _path(history)
        for state_id, day in m.split_path_by_day(path, history.blocks, now, sums):
            out[day].state(state_id).waited.add(history.item_id)
        for state_id, entered, left in visits:
            if left is not None and first <= left < end:
                out[sums.day_of(left)].state(state_id).visits.append(left - entered)
        for at, from_id, to_id in history.sent_back:
            at_us = m.micros(at)
            if first <= at_us < end:
                day_out = out[sums.day_of(at_us)]
                if from_id is not None:
                    day_out.state(from_id).sent_back_out += 1
                if to_id is not None:
                    day_out.state(to_id).sent_back_in += 1
        if history.done_at is not None:
            done_us = m.micros(history.done_at)
            if first <= done_us < end:
                _completion(history, path, now, first, end, out[sums.day_of(done_us)])
    for (state_id, kind), per_day in sums.totals().items():
        if state_id == done_id:
            continue
        for day, us in enumerate(per_day):
            if us:
                _add_time(out[day].state(state_id), kind, us)
    for state_id, changes in deltas.items():
        for day, levels in enumerate(m.wip_levels_by_day(changes, first, days)):
            wip = {level: us for level, us in levels.items() if level > 0}
            if wip:
                out[day].state(state_id).wip = wip
    return out
