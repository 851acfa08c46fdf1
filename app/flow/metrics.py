"""Flow metrics maths over plain data (no framework, no database).

Definitions follow PRODUCT.md "Metric definitions" and the API.md percentile
convention (nearest rank). Every function here is pure: same input, same
output, including the Monte Carlo forecasts (seeded).

Time handling: naive datetimes are taken to be UTC (the API speaks UTC and
SQLite hands back naive values), so callers may mix naive rows with aware
request parameters without a TypeError.
"""

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import accumulate, pairwise
from typing import Literal

__all__ = [
    "DAY_BLOCKED",
    "DAY_DOING",
    "DAY_MICROS",
    "DAY_READY",
    "DAY_TOTAL",
    "DEFAULT_PERCENTILES",
    "DEFAULT_RUNS",
    "DEFAULT_SEED",
    "DOING",
    "MICROS_PER_SECOND",
    "READY",
    "DaySums",
    "Interval",
    "Path",
    "Segment",
    "Span",
    "StateTime",
    "age_seconds",
    "bucket_counts",
    "cfd_counts",
    "daily_throughput",
    "flow_efficiency",
    "forecast_days_for_items",
    "forecast_items_by_date",
    "merge_intervals",
    "merge_spans",
    "micros",
    "micros_at_or_above",
    "overlap_seconds",
    "pct_time_at_limit",
    "percentile_nearest_rank",
    "percentiles",
    "split_item_time",
    "split_path_by_day",
    "split_path_micros",
    "subtract_intervals",
    "wip_level_micros",
    "wip_levels_by_day",
]

DEFAULT_PERCENTILES: tuple[int, ...] = (50, 85, 95)
DEFAULT_RUNS = 10_000
# A fixed seed makes the forecast a function of the data alone: reloading the
# page must not make the answer wobble.
DEFAULT_SEED = 20_240_601
# Samples drawn at once: bounds memory for long horizons (list path: 8 bytes each).
_BATCH_SAMPLES = 1_000_000

DOING = "doing"
READY = "ready"


def _utc(dt: datetime) -> datetime:
    """Return dt, reading a naive value as UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _to_date(value: date, tz: tzinfo) -> date:
    """Calendar date of a date or datetime, in tz (naive datetimes are UTC)."""
    if isinstance(value, datetime):
        return _utc(value).astimezone(tz).date()
    return value


def _key(p: float) -> str:
    """Dictionary key for a percentile: 50 -> "50", 99.9 -> "99.9"."""
    return f"{p:g}"


def _check_p(p: float) -> None:
    if not 0 < p <= 100:  # also rejects NaN
        raise ValueError(f"percentile must be in (0, 100], got {p!r}")


# --------------------------------------------------------------------------- percentiles


def _rank_index(n: int, p: float) -> int:
    """0-based index of the nearest-rank position ceil(p/100 * n), n >= 1."""
    # p * n / 100 rather than p / 100 * n: for integer p the product is exact,
    # so ceil() never sees 17.000000000000004 where 17 is meant.
    return max(1, math.ceil(p * n / 100)) - 1


def percentile_nearest_rank(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the value at 1-based position ceil(p/100*n) of the ascending values.

    Returns None for empty input. Raises ValueError unless 0 < p <= 100.
    """
    _check_p(p)
    if not values:
        return None
    ordered = sorted(values)
    return ordered[_rank_index(len(ordered), p)]


def percentiles(
    values: Iterable[float], ps: Sequence[float] = DEFAULT_PERCENTILES
) -> dict[str, float | None]:
    """Nearest-rank percentiles keyed "50", "85", "95" (None values for empty input)."""
    for p in ps:
        _check_p(p)
    ordered = sorted(values)  # sort once for all ps
    n = len(ordered)
    return {_key(p): (ordered[_rank_index(n, p)] if n else None) for p in ps}


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open time span [start, end); end >= start. Naive times are read as UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start))
        object.__setattr__(self, "end", _utc(self.end))
        if self.end < self.start:
            raise ValueError(f"interval ends before it starts: {self.start} > {self.end}")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of an item's life in one state and stage, [start, end).

    stage is "doing" or "ready" inside work states, None elsewhere (backlog,
    done). For the current, still open stretch, the caller passes end=now.
    """

    start: datetime
    end: datetime
    state_id: int
    stage: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start))
        object.__setattr__(self, "end", _utc(self.end))
        if self.end < self.start:
            raise ValueError(f"segment ends before it starts: {self.start} > {self.end}")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


Span = Interval | Segment


def merge_intervals(intervals: Iterable[Span]) -> list[Interval]:
    """Union of the spans as sorted, disjoint, non-empty intervals (touching spans are joined)."""
    ordered = sorted((s.start, s.end) for s in intervals if s.end > s.start)
    merged: list[list[datetime]] = []
    for start, end in ordered:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [Interval(s, e) for s, e in merged]


def overlap_seconds(spans: Iterable[Span], window_start: datetime, window_end: datetime) -> float:
    """Sum over the spans of the seconds each has inside [window_start, window_end).

    Spans are summed, not unioned (so per-item totals can be added up across
    items); pass merge_intervals(...) first if overlaps must count once.
    """
    ws, we = _utc(window_start), _utc(window_end)
    total = 0.0
    for span in spans:
        start, end = max(span.start, ws), min(span.end, we)
        if end > start:
            total += (end - start).total_seconds()
    return total


def _covered_seconds(merged: Sequence[Interval], start: datetime, end: datetime) -> float:
    """Seconds of [start, end) covered by sorted disjoint intervals."""
    covered = 0.0
    # An item has a handful of blocks: a linear scan beats building an index.
    for m in merged:
        if m.start >= end:
            break
        lo, hi = max(m.start, start), min(m.end, end)
        if hi > lo:
            covered += (hi - lo).total_seconds()
    return covered


def subtract_intervals(segment: Span, blocked_intervals: Iterable[Span]) -> float:
    """Seconds of segment not covered by any blocked interval (overlapping blocks count once)."""
    merged = merge_intervals(blocked_intervals)
    return segment.seconds - _covered_seconds(merged, segment.start, segment.end)


@dataclass(slots=True)
class StateTime:
    """Seconds one item (or, summed, many items) spent in one state.

    doing_seconds / ready_seconds: time in each stage (blocked time included).
    blocked_seconds: blocked time inside this state, whatever the stage.
    active_seconds: doing and not blocked (the numerator of flow efficiency).
    total_seconds: all time in the state, including stage-less time (backlog, done).
    """

    doing_seconds: float = 0.0
    ready_seconds: float = 0.0
    blocked_seconds: float = 0.0
    active_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def waiting_seconds(self) -> float:
        """Queue wait plus blocked doing time: blocked counts as waiting wherever it falls."""
        return self.ready_seconds + (self.doing_seconds - self.active_seconds)

    def add(self, other: "StateTime") -> None:
        """Accumulate other into self (for per-state totals over many items)."""
        self.doing_seconds += other.doing_seconds
        self.ready_seconds += other.ready_seconds
        self.blocked_seconds += other.blocked_seconds
        self.active_seconds += other.active_seconds
        self.total_seconds += other.total_seconds


def split_item_time(
    segments: list[Segment],
    blocks: list[Interval],
    window: tuple[datetime, datetime] | None = None,
) -> dict[int, StateTime]:
    """One item's time per state, split into doing / ready / blocked / active.

    segments: the item's non-overlapping stretches per state and stage.
    blocks: its block periods (open blocks end at now); overlaps count once.
    window: if given, only time inside [start, end) counts.
    Blocks are matched against segments by time, so a block spanning a state
    change is split between the states. States with no time (in the window)
    are absent from the result.
    """
    merged = merge_intervals(blocks)
    clip = (_utc(window[0]), _utc(window[1])) if window is not None else None
    result: dict[int, StateTime] = {}
    for seg in segments:
        start, end = seg.start, seg.end
        if clip is not None:
            start, end = max(start, clip[0]), min(end, clip[1])
        if end <= start:
            continue
        length = (end - start).total_seconds()
        blocked = _covered_seconds(merged, start, end)
        st = result.get(seg.state_id)
        if st is None:
            st = result[seg.state_id] = StateTime()
        st.total_seconds += length
        st.blocked_seconds += blocked
        if seg.stage == DOING:
            st.doing_seconds += length
            st.active_seconds += length - blocked
        elif seg.stage == READY:
            st.ready_seconds += length
    return result


def flow_efficiency(active_seconds_total: float, cycle_seconds_total: float) -> float | None:
    """Sum of active time over sum of cycle time (0..1 when consistent); None without cycle time."""
    if cycle_seconds_total <= 0:
        return None
    return active_seconds_total / cycle_seconds_total


# --------------------------------------------------------------------------- throughput


def daily_throughput(
    done_dates: Iterable[date], start: date, end: date, tz: tzinfo = UTC
) -> list[int]:
    """Items done per day from start to end inclusive (zero days included, others ignored).

    Datetimes are accepted and dated in tz. Empty list when end < start.
    """
    if end < start:
        return []
    counts = [0] * ((end - start).days + 1)
    for value in done_dates:
        d = _to_date(value, tz)
        if start <= d <= end:
            counts[(d - start).days] += 1
    return counts


def bucket_counts(
    done_times: Iterable[date],
    start: date,
    end: date,
    interval: Literal["day", "week"] = "day",
    tz: tzinfo = UTC,
) -> list[tuple[date, int]]:
    """Throughput run chart: [(bucket start, count)] covering start..end inclusive.

    Weekly buckets start on Monday, the first on the Monday on or before start.
    Only done times dated within [start, end] are counted, so the first and
    last weeks may be partial. Datetimes are dated in tz.
    """
    if interval == "day":
        counts = daily_throughput(done_times, start, end, tz)
        return [(start + timedelta(days=i), c) for i, c in enumerate(counts)]
    if interval != "week":
        raise ValueError(f"interval must be 'day' or 'week', got {interval!r}")
    if end < start:
        return []
    first = start - timedelta(days=start.weekday())
    weeks = (end - first).days // 7 + 1
    week_counts = [0] * weeks
    for value in done_times:
        d = _to_date(value, tz)
        if start <= d <= end:
            week_counts[(d - first).days // 7] += 1
    return [(first + timedelta(weeks=i), c) for i, c in enumerate(week_counts)]


# --------------------------------------------------------------------------- cumulative flow


def cfd_counts(
    transitions: Iterable[Sequence[tuple[datetime, int | None]]],
    days: Sequence[date],
    tz: tzinfo = UTC,
    state_ids: Iterable[int] = (),
) -> dict[int, list[int]]:
    """Items in each state at the end of each day (cumulative flow).

    transitions: per item, (at, state_id) in time order; state None means the
    item is discarded (or deleted) from then on. An item exists from its
    first transition. The end of day d is midnight starting d + 1 in tz; a
    transition exactly at that midnight belongs to the next day.
    days: ascending. state_ids: states to report even when always empty.
    Result: state_id -> one count per day. Cost O(transitions x log(days)).
    """
    ends = [
        datetime.combine(d + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC) for d in days
    ]
    if any(a >= b for a, b in pairwise(ends)):
        raise ValueError("days must be strictly ascending")
    n = len(ends)
    # Difference arrays: a state held over [at, next_at) is present at every
    # day end b with at < b <= next_at, a contiguous run of days.
    diffs: dict[int, list[int]] = {sid: [0] * (n + 1) for sid in state_ids}
    for item in transitions:
        count = len(item)
        for i, (at, state_id) in enumerate(item):
            at = _utc(at)
            if i + 1 < count:
                next_at = _utc(item[i + 1][0])
                if next_at < at:
                    raise ValueError("transitions must be in time order")
                hi = bisect_right(ends, next_at)
            else:
                hi = n
            if state_id is None:
                continue
            lo = bisect_right(ends, at)
            if lo >= hi:
                continue
            diff = diffs.get(state_id)
            if diff is None:
                diff = diffs[state_id] = [0] * (n + 1)
            diff[lo] += 1
            diff[hi] -= 1
    return {sid: list(accumulate(diff[:n])) for sid, diff in diffs.items()}


# --------------------------------------------------------------------------- forecasting


def _sampler(history: Sequence[int], rng: random.Random) -> Callable[[int], Sequence[int]]:
    """Return draw(k): k days sampled uniformly with replacement from history.

    Fast path (history of at most 256 days, each at most 255 items): random
    bytes are mapped to history values with bytes.translate, all in C; bytes
    that would bias the choice (>= the largest multiple of len(history)
    within 256) are deleted, keeping the choice exactly uniform. About ten
    times faster than random.choices, which is the general fallback.
    """
    n = len(history)
    if n > 256 or max(history) > 255:
        return lambda k: rng.choices(history, k=k)
    limit = 256 - 256 % n
    table = bytes(history[b % n] for b in range(256))
    delete = bytes(range(limit, 256))

    def draw(k: int) -> bytes:
        parts: list[bytes] = []
        have = 0
        while have < k:
            # Ask for enough raw bytes that, after rejection, ~all k arrive at once.
            raw = rng.randbytes((k - have) * 256 // limit + 16)
            part = raw.translate(table, delete)
            parts.append(part)
            have += len(part)
        return b"".join(parts)[:k]

    return draw


def _check_history(daily_history: Sequence[int], runs: int) -> None:
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    if any(v < 0 for v in daily_history):
        raise ValueError("daily throughput cannot be negative")


def _batches(runs: int, per_run: int) -> Iterable[int]:
    """Split runs into batches of at most ~_BATCH_SAMPLES draws, bounding memory."""
    size = max(1, _BATCH_SAMPLES // max(1, per_run))
    for first in range(0, runs, size):
        yield min(size, runs - first)


def forecast_items_by_date(
    daily_history: Sequence[int],
    days_ahead: int,
    runs: int = DEFAULT_RUNS,
    seed: int = DEFAULT_SEED,
    ps: Sequence[float] = DEFAULT_PERCENTILES,
    max_days: int = 3650,
) -> dict[str, int]:
    """Answer "how many items by date D" by Monte Carlo over days sampled from history.

    Each run sums days_ahead days drawn uniformly with replacement from
    daily_history. The "85" value is the count that at least 85 % of runs
    reached or exceeded, so "95" <= "85" <= "50" (95 is the most
    conservative). All zero when history has no throughput or days_ahead <= 0.
    ValueError when days_ahead > max_days (bounds the work per request).
    Deterministic for a given (history, days_ahead, runs, seed).
    """
    _check_history(daily_history, runs)
    for p in ps:
        _check_p(p)
    if days_ahead > max_days:
        raise ValueError(f"days_ahead must be at most {max_days}, got {days_ahead}")
    if days_ahead <= 0 or not any(daily_history):
        return {_key(p): 0 for p in ps}
    d = days_ahead
    draw = _sampler(daily_history, random.Random(seed))
    totals: list[int] = []
    for batch in _batches(runs, d):
        samples = draw(batch * d)
        totals.extend(sum(samples[i : i + d]) for i in range(0, batch * d, d))
    totals.sort(reverse=True)
    # "At least as well" = nearest rank over the totals in descending order.
    return {_key(p): totals[_rank_index(runs, p)] for p in ps}


def forecast_days_for_items(
    daily_history: Sequence[int],
    items: int,
    runs: int = DEFAULT_RUNS,
    seed: int = DEFAULT_SEED,
    max_days: int = 3650,
    ps: Sequence[float] = DEFAULT_PERCENTILES,
) -> dict[str, int | None]:
    """Answer "when will the next N be done" in days, by Monte Carlo over history.

    Each run draws days from daily_history (uniformly, with replacement)
    until the items are done; the "85" value is the number of days within
    which at least 85 % of runs finished, so "50" <= "85" <= "95". A value is
    None when history has no throughput or those runs need more than max_days.
    items <= 0 needs 0 days. Deterministic for given inputs and seed.
    """
    _check_history(daily_history, runs)
    for p in ps:
        _check_p(p)
    if items <= 0:
        return {_key(p): 0 for p in ps}
    total = sum(daily_history)
    # Exact shortcut: even the best day every day cannot make it in max_days.
    if total == 0 or max_days < 1 or items > max(daily_history) * max_days:
        return {_key(p): None for p in ps}
    draw = _sampler(daily_history, random.Random(seed))
    mean = total / len(daily_history)
    # Draw in bulk, sized so most runs finish inside their own chunk; the few
    # that do not top up chunk by chunk, up to max_days.
    chunk = min(max_days, math.ceil(items / mean * 1.25) + 8)
    days: list[float] = []
    for batch in _batches(runs, chunk):
        pool = draw(batch * chunk)
        for r in range(0, batch * chunk, chunk):
            part = pool[r : r + chunk]
            cum = list(accumulate(part))
            if cum[-1] >= items:
                days.append(bisect_left(cum, items) + 1)
                continue
            remaining, used = items - cum[-1], chunk
            needed = math.inf
            while used < max_days:
                more = draw(min(chunk, max_days - used))
                got = sum(more)
                if got >= remaining:
                    needed = used + bisect_left(list(accumulate(more)), remaining) + 1
                    break
                remaining -= got
                used += len(more)
            days.append(needed)
    days.sort()
    out: dict[str, int | None] = {}
    for p in ps:
        value = days[_rank_index(runs, p)]
        out[_key(p)] = None if value == math.inf else int(value)
    return out


# --------------------------------------------------------------------------- WIP and age


def age_seconds(now: datetime, committed_at: datetime) -> float:
    """Aging WIP: now - committed_at in seconds, never negative (clock skew between hosts)."""
    return max(0.0, (_utc(now) - _utc(committed_at)).total_seconds())


def pct_time_at_limit(
    wip_changes: list[tuple[datetime, int]],
    limit: int | None,
    window_start: datetime,
    window_end: datetime,
) -> float | None:
    """Fraction (0..1) of [window_start, window_end) during which WIP >= limit.

    wip_changes: (time, WIP from then on) steps; each value holds until the
    next change. Before the first change WIP is 0, so include the WIP at
    window_start (a change at or before it) when it is not 0. Changes at the
    same time: the last one given wins. None when there is no limit or the
    window is empty.
    """
    if limit is None:
        return None
    ws, we = _utc(window_start), _utc(window_end)
    span = (we - ws).total_seconds()
    if span <= 0:
        return None
    # Stable sort keeps the given order among equal times (last one wins).
    changes = sorted(((_utc(t), w) for t, w in wip_changes), key=lambda c: c[0])
    at_limit = 0.0
    current, since = 0, ws
    for t, wip in changes:
        if t <= ws:
            current = wip
            continue
        if t >= we:
            break
        if current >= limit:
            at_limit += (t - since).total_seconds()
        current, since = wip, t
    if current >= limit:
        at_limit += (we - since).total_seconds()
    return at_limit / span


# --------------------------------------------------------------------------- fast paths
#
# The board-wide passes count integer epoch microseconds: their sums are exact, so a window's
# figures equal the sum of its pieces' figures (closed days kept by app.services.rollups plus
# the replayed edges) to the last digit. Seconds are made once, at the end: micros / 1e6.

MICROS_PER_SECOND = 1_000_000
DAY_MICROS = 86_400 * MICROS_PER_SECOND  # a UTC day
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICRO = timedelta(microseconds=1)
# Path steps: (at, state_id or None once gone, stage), at in epoch microseconds.
Path = Sequence[tuple[int, int | None, str | None]]
# Field order of split_path_by_day's per-day sums.
DAY_DOING, DAY_READY, DAY_BLOCKED, DAY_TOTAL = range(4)


def micros(value: datetime) -> int:
    """Epoch microseconds of a datetime (naive: UTC), exactly (no float on the way)."""
    return (_utc(value) - _EPOCH) // _ONE_MICRO


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """merge_intervals over (start, end) microseconds: sorted, disjoint, non-empty."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _blocked_in(blocks: Sequence[tuple[int, int]], start: int, stop: int) -> int:
    blocked = 0
    for b_start, b_end in blocks:  # an item has a handful: a scan beats an index
        if b_start >= stop:
            break
        a, b = (b_start if b_start > start else start), (b_end if b_end < stop else stop)
        if b > a:
            blocked += b - a
    return blocked


_FAR = 1 << 62  # microseconds: far beyond any date


def _stays(path: Path, end: int, lo: int, hi: int) -> Iterator[tuple[int, str | None, int, int]]:
    """(state_id, stage, start, stop) of each step of `path` in a state, clipped to [lo, hi):
    a step holds until the next one, the last until `end`; empty stays are left out."""
    n = len(path)
    for i in range(n):
        at, state_id, stage = path[i]
        if state_id is None:
            continue
        start = at if at > lo else lo
        stop = path[i + 1][0] if i + 1 < n else end
        if stop > hi:
            stop = hi
        if stop > start:
            yield state_id, stage, start, stop


def split_path_micros(
    path: Path,
    blocks: Sequence[tuple[int, int]],
    end: int,
    window: tuple[int, int] | None,
    into: dict[int, list[int]],
) -> int:
    """split_item_time over epoch microseconds, for a whole board in one pass.

    path: the item's steps in time order; each holds until the next, the last until `end`.
    blocks: merge_spans(...) output. Adds [doing, ready, blocked, active, total] microseconds
    per state into `into` (clipped to window when given) and returns the item's active
    microseconds. Same definitions as split_item_time (tested against it).
    """
    lo, hi = window if window is not None else (-_FAR, _FAR)
    active_total = 0
    for state_id, stage, start, stop in _stays(path, end, lo, hi):
        length = stop - start
        blocked = _blocked_in(blocks, start, stop)
        acc = into.get(state_id)
        if acc is None:
            acc = into[state_id] = [0, 0, 0, 0, 0]
        acc[4] += length
        acc[2] += blocked
        if stage == DOING:
            acc[0] += length
            acc[3] += length - blocked
            active_total += length - blocked
        elif stage == READY:
            acc[1] += length
    return active_total


class DaySums:
    """Microseconds per (state, field) and day over `days` UTC days from `first`.

    add() costs O(1) however many days a stretch spans: its partial first and last days are
    added directly, the whole days between through a difference array.
    """

    def __init__(self, first: int, days: int) -> None:
        self.first, self.days = first, days
        self._parts: dict[tuple[int, int], list[int]] = {}
        self._whole: dict[tuple[int, int], list[int]] = {}

    def day_of(self, at: int) -> int:
        return (at - self.first) // DAY_MICROS

    def add(self, key: tuple[int, int], start: int, stop: int) -> None:
        """Adds [start, stop) (inside the days, start < stop) to key's days."""
        parts = self._parts.get(key)
        if parts is None:
            parts = self._parts[key] = [0] * self.days
            self._whole[key] = [0] * (self.days + 1)
        i, j = self.day_of(start), self.day_of(stop - 1)
        if i == j:
            parts[i] += stop - start
            return
        parts[i] += self.first + (i + 1) * DAY_MICROS - start
        parts[j] += stop - (self.first + j * DAY_MICROS)
        whole = self._whole[key]
        whole[i + 1] += 1
        whole[j] -= 1

    def totals(self) -> dict[tuple[int, int], list[int]]:
        out: dict[tuple[int, int], list[int]] = {}
        for key, parts in self._parts.items():
            whole = accumulate(self._whole[key][: self.days])
            out[key] = [p + w * DAY_MICROS for p, w in zip(parts, whole, strict=True)]
        return out


def split_path_by_day(
    path: Path, blocks: Sequence[tuple[int, int]], end: int, sums: DaySums
) -> set[tuple[int, int]]:
    """split_path_micros per UTC day: adds each state's doing, ready, blocked and total time
    (fields DAY_*) into `sums`, clipped to its days; returns the (state_id, day) pairs with
    Ready time (the item waited there that day)."""
    lo, hi = sums.first, sums.first + sums.days * DAY_MICROS
    ready: set[tuple[int, int]] = set()
    for state_id, stage, start, stop in _stays(path, end, lo, hi):
        sums.add((state_id, DAY_TOTAL), start, stop)
        for b_start, b_end in blocks:
            if b_start >= stop:
                break
            a, b = (b_start if b_start > start else start), (b_end if b_end < stop else stop)
            if b > a:
                sums.add((state_id, DAY_BLOCKED), a, b)
        if stage == DOING:
            sums.add((state_id, DAY_DOING), start, stop)
        elif stage == READY:
            sums.add((state_id, DAY_READY), start, stop)
            for day in range(sums.day_of(start), sums.day_of(stop - 1) + 1):
                ready.add((state_id, day))
    return ready


def wip_level_micros(deltas: list[tuple[int, int]], lo: int, hi: int) -> dict[int, int]:
    """Microseconds of [lo, hi) spent at each WIP level, from (at, +1 / -1) changes.

    WIP is 0 before the first change; changes at the same time apply together. Time at or
    over a limit is micros_at_or_above(result, limit), whatever the limit is.
    """
    return wip_levels_by_day(deltas, lo, 1, hi - lo)[0] if hi > lo else {}


def wip_levels_by_day(
    deltas: list[tuple[int, int]], first: int, days: int, day_length: int = DAY_MICROS
) -> list[dict[int, int]]:
    """wip_level_micros for each of `days` consecutive days from `first` (one sweep)."""
    out: list[dict[int, int]] = [{} for _ in range(days)]
    end = first + days * day_length
    current, since = 0, first

    def hold(until: int) -> None:
        # Adds [since, until) at the current level, split at day boundaries.
        at = since
        while at < until:
            day = (at - first) // day_length
            stop = min(until, first + (day + 1) * day_length)
            levels = out[day]
            levels[current] = levels.get(current, 0) + stop - at
            at = stop

    for at, delta in sorted(deltas):
        if at <= first:
            current += delta
            continue
        if at >= end:
            break
        if at > since:
            hold(at)
            since = at
        current += delta
    hold(end)
    return out


def micros_at_or_above(levels: dict[int, int], limit: int) -> int:
    """Time (from wip_level_micros) with WIP at or over `limit`."""
    return sum(us for level, us in levels.items() if level >= limit)
