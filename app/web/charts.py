"""Server-side SVG charts for the Bottlenecks page: pure functions from numbers to markup.

Why SVG built on the server rather than a JavaScript chart library:
- the page works without JavaScript (the charts are in the HTML the server sends);
- it is CSP-safe: no inline script, no style attributes, no <style> blocks. Colours come from
  CSS classes (`series-N`, `line-p50`...) with SVG presentation attributes (fill, stroke) as the
  fallback, and presentation attributes are not style attributes under the CSP;
- nothing to vendor, audit or update;
- it prints, and it scales with the page;
- it is accessible: every chart has role="img" and a <title>, every point, bar and band has
  its own <title> ("DOC-12 · 3.2 days") that browsers show on hover and screen readers read,
  and the templates put the same numbers in a <table> next to each chart.

Every builder returns Markup; every piece of text that reaches the SVG goes through escape().
Empty data gives a placeholder SVG that says so, never an empty or broken chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40
# Colour-blind-safe palette (Okabe-Ito) for the fallbacks; CSS classes may override it.
PALETTE = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#f0e442",
    "#999999",
)
PERCENTILE_STROKES = {"50": "#009e73", "85": "#e69f00", "95": "#d55e00"}


@dataclass(frozen=True, slots=True)
class Point:
    """One mark: where it sits and what its <title> says."""

    x: float
    y: float
    title: str


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    title: str


def friendly_duration(seconds: float | None) -> str:
    """'2.3 days', '5 h', '25 min': one unit, readable at a glance."""
    if seconds is None:
        return "–"
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3600:
        hours = seconds / 3600
        return f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f} h".replace(".0 h", " h")
    return f"{max(0, round(seconds / 60))} min"


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _svg(title: str, body: list[str], *, css: str, height: int = HEIGHT) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(css)}" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def placeholder(title: str, message: str = "No data in this window.") -> Markup:
    """A chart-sized SVG saying there is nothing to draw."""
    return _svg(
        title,
        [
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            f"{escape(message)}</text>"
        ],
        css="chart-svg empty",
    )


def _nice_max(value: float) -> float:
    """A round top for the y axis (1, 2, 5 x 10^n) at or above value."""
    if value <= 0:
        return 1.0
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


class _Frame:
    """The plot area and the two scales."""

    def __init__(self, x_min: float, x_max: float, y_max: float, height: int = HEIGHT) -> None:
        self.x_min, self.x_max = x_min, x_max if x_max > x_min else x_min + 1
        self.y_max = _nice_max(y_max)
        self.height = height
        self.plot_w = WIDTH - LEFT - RIGHT
        self.plot_h = height - TOP - BOTTOM

    def x(self, value: float) -> float:
        return LEFT + (value - self.x_min) / (self.x_max - self.x_min) * self.plot_w

    def y(self, value: float) -> float:
        return TOP + self.plot_h - (value / self.y_max) * self.plot_h

    def axes(self, y_label: str, x_labels: Sequence[tuple[float, str]]) -> list[str]:
        bottom = TOP + self.plot_h
        out = [
            f'<g class="axis" stroke="currentColor" stroke-width="1">'
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>'
            f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/></g>'
        ]
        for k in range(5):
            value = self.y_max * k / 4
            y = self.y(value)
            out.append(
                f'<text class="tick" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
                f"{escape(_num(round(value, 2)))}</text>"
            )
        out.append(
            f'<text class="axis-label" x="12" y="{TOP + self.plot_h / 2:.1f}" '
            f'text-anchor="middle" transform="rotate(-90 12 {TOP + self.plot_h / 2:.1f})">'
            f"{escape(y_label)}</text>"
        )
        for x, label in x_labels:
            anchor = "end" if x > WIDTH - RIGHT - 24 else "middle"
            out.append(
                f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="{anchor}">'
                f"{escape(label)}</text>"
            )
        return out

    def hline(self, value: float, name: str, label: str) -> str:
        y = self.y(value)
        stroke = PERCENTILE_STROKES.get(name, "currentColor")
        return (
            f'<g class="pline line-p{escape(name)}">'
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="{stroke}" stroke-width="1.5" stroke-dasharray="6 4">'
            f"<title>{escape(label)}</title></line>"
            f'<text x="{WIDTH - RIGHT - 2}" y="{y - 3:.1f}" text-anchor="end">'
            f"{escape(label)}</text></g>"
        )


def _percentile_lines(frame: _Frame, lines: dict[str, float]) -> list[str]:
    """One dashed line per distinct value; equal percentiles share it ('85%, 95%: 6.0 days')."""
    grouped: dict[float, list[str]] = {}
    for name, value in sorted(lines.items(), key=lambda kv: int(kv[0])):
        grouped.setdefault(value, []).append(name)
    return [
        frame.hline(value, names[0], f"{'%, '.join(names)}%: {friendly_duration(value * 86_400)}")
        for value, names in grouped.items()
    ]


def _spread_labels(n: int, at: Sequence[float], labels: Sequence[str]) -> list[tuple[float, str]]:
    """At most about six x-axis labels, evenly picked."""
    if n == 0:
        return []
    step = max(1, (n + 5) // 6)
    picked = list(range(0, n, step))
    return [(at[i], labels[i]) for i in picked]


def _day_label(day: date) -> str:
    return f"{day.day} {day.strftime('%b')}"


# --------------------------------------------------------------------------- cumulative flow


def cfd_chart(
    title: str, days: Sequence[date], series: Sequence[tuple[str, Sequence[int]]]
) -> Markup:
    """Stacked areas, one band per state. `series` is in board order (backlog first); Done is
    drawn at the bottom, as cumulative flow diagrams are read (arrivals on top)."""
    if not days or not series or not any(any(c) for _n, c in series):
        return placeholder(title)
    stacked = list(reversed(series))  # Done first, at the bottom
    n = len(days)
    totals = [sum(counts[i] for _n, counts in stacked) for i in range(n)]
    frame = _Frame(0, max(1, n - 1), max(totals))
    xs = [frame.x(i) for i in range(n)]
    body = frame.axes("items", _spread_labels(n, xs, [_day_label(d) for d in days]))
    lower = [0] * n
    bands: list[str] = []
    for index, (name, counts) in enumerate(stacked):
        upper = [lower[i] + counts[i] for i in range(n)]
        top = [f"{xs[i]:.1f},{frame.y(upper[i]):.1f}" for i in range(n)]
        bottom = [f"{xs[i]:.1f},{frame.y(lower[i]):.1f}" for i in reversed(range(n))]
        if n == 1:  # one day: a thin bar rather than a zero-width polygon
            x0, x1 = LEFT, WIDTH - RIGHT
            top = [f"{x0},{frame.y(upper[0]):.1f}", f"{x1},{frame.y(upper[0]):.1f}"]
            bottom = [f"{x1},{frame.y(lower[0]):.1f}", f"{x0},{frame.y(lower[0]):.1f}"]
        colour_index = len(stacked) - 1 - index  # the state's board position
        latest = counts[-1]
        bands.append(
            f'<polygon class="band series-{colour_index}" '
            f'fill="{PALETTE[colour_index % len(PALETTE)]}" fill-opacity="0.85" '
            f'points="{" ".join(top + bottom)}">'
            f"<title>{escape(name)}: {latest} on {escape(_day_label(days[-1]))}</title>"
            f"</polygon>"
        )
        lower = upper
    return _svg(title, body + bands + _legend([n for n, _c in series]), css="chart-svg cfd")


def _legend(names: Sequence[str]) -> list[str]:
    """Swatch and name per series along the bottom edge (the names are in the data table too)."""
    out = ['<g class="legend">']
    x = float(LEFT)
    for i, name in enumerate(names):
        out.append(
            f'<rect class="swatch series-{i}" x="{x:.1f}" y="{HEIGHT - 14}" width="10" '
            f'height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 14:.1f}" y="{HEIGHT - 5}">{escape(name)}</text>'
        )
        x += 24 + 6.5 * min(len(name), 30)
    out.append("</g>")
    return out


# --------------------------------------------------------------------------- scatter


def scatter_chart(
    title: str,
    points: Sequence[tuple[datetime, float, str]],
    percentiles: dict[str, float | None],
    *,
    start: datetime,
    end: datetime,
) -> Markup:
    """Cycle-time scatter: x = done time, y = cycle time in days; one circle per item with its
    own <title> ('DOC-12 · 3.2 days'), dashed 50/85/95 % lines."""
    if not points:
        return placeholder(title)
    lines = {p: v / 86_400 for p, v in percentiles.items() if v is not None}
    y_max = max([y / 86_400 for _x, y, _t in points] + list(lines.values()))
    frame = _Frame(start.timestamp(), end.timestamp(), y_max)
    ticks = [start.timestamp() + (end - start).total_seconds() * k / 4 for k in range(5)]
    labels = [(frame.x(t), _day_label(datetime.fromtimestamp(t, UTC).date())) for t in ticks]
    body = frame.axes("days", labels)
    marks = []
    for done_at, seconds, label in points:
        marks.append(
            f'<circle class="point" cx="{frame.x(done_at.timestamp()):.1f}" '
            f'cy="{frame.y(seconds / 86_400):.1f}" r="4" fill="{PALETTE[0]}" fill-opacity="0.8">'
            f"<title>{escape(label)} · {escape(friendly_duration(seconds))}</title></circle>"
        )
    marks.extend(_percentile_lines(frame, lines))
    return _svg(title, body + marks, css="chart-svg scatter")


# --------------------------------------------------------------------------- bars


def bar_chart(title: str, bars: Sequence[Bar], *, y_label: str = "items") -> Markup:
    """A run chart as columns (throughput per day or week), one <title> per column."""
    if not bars or not any(b.value for b in bars):
        return placeholder(title)
    n = len(bars)
    frame = _Frame(0, n, max(b.value for b in bars))
    slot = frame.plot_w / n
    width = max(1.0, slot * 0.8)
    centres = [LEFT + slot * (i + 0.5) for i in range(n)]
    body = frame.axes(y_label, _spread_labels(n, centres, [b.label for b in bars]))
    for i, bar in enumerate(bars):
        y = frame.y(bar.value)
        body.append(
            f'<rect class="bar series-0" x="{centres[i] - width / 2:.1f}" y="{y:.1f}" '
            f'width="{width:.1f}" height="{TOP + frame.plot_h - y:.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(bar.title)}</title></rect>"
        )
    return _svg(title, body, css="chart-svg bars")


def aging_chart(
    title: str,
    columns: Sequence[tuple[str, Sequence[tuple[float, str]]]],
    percentiles: dict[str, float | None],
) -> Markup:
    """Aging WIP: one column per state, a dot per open item at its age (days), against the
    window's cycle-time percentile lines (an item above the 85 % line is older than 85 % of
    delivered items took in total)."""
    if not columns or not any(items for _n, items in columns):
        return placeholder(title, "No work in progress.")
    lines = {p: v / 86_400 for p, v in percentiles.items() if v is not None}
    ages = [age / 86_400 for _n, items in columns for age, _l in items]
    frame = _Frame(0, len(columns), max(ages + list(lines.values())))
    slot = frame.plot_w / len(columns)
    centres = [LEFT + slot * (i + 0.5) for i in range(len(columns))]
    body = frame.axes("days", [(centres[i], name) for i, (name, _items) in enumerate(columns)])
    for i, (_name, items) in enumerate(columns):
        count = len(items)
        for j, (age, label) in enumerate(items):
            # Spread same-column dots sideways so equal ages stay visible.
            offset = (j - (count - 1) / 2) * min(8.0, slot * 0.6 / max(1, count))
            body.append(
                f'<circle class="point series-{i}" cx="{centres[i] + offset:.1f}" '
                f'cy="{frame.y(age / 86_400):.1f}" r="4" '
                f'fill="{PALETTE[i % len(PALETTE)]}">'
                f"<title>{escape(label)} · {escape(friendly_duration(age))}</title></circle>"
            )
    body.extend(_percentile_lines(frame, lines))
    return _svg(title, body, css="chart-svg aging")


def pareto_chart(title: str, bars: Sequence[Bar], *, y_label: str = "hours") -> Markup:
    """Bars largest first with the cumulative share as a line (right scale 0..100 %), each
    bar and each cumulative point with its own <title>."""
    if not bars or not any(b.value for b in bars):
        return placeholder(title, "No blocks in this window.")
    ordered = sorted(bars, key=lambda b: -b.value)
    total = sum(b.value for b in ordered)
    n = len(ordered)
    frame = _Frame(0, n, ordered[0].value)
    slot = frame.plot_w / n
    width = max(1.0, slot * 0.7)
    centres = [LEFT + slot * (i + 0.5) for i in range(n)]
    body = frame.axes(y_label, [(centres[i], b.label) for i, b in enumerate(ordered)])
    running = 0.0
    line: list[str] = []
    dots: list[str] = []
    for i, bar in enumerate(ordered):
        y = frame.y(bar.value)
        body.append(
            f'<rect class="bar series-0" x="{centres[i] - width / 2:.1f}" y="{y:.1f}" '
            f'width="{width:.1f}" height="{TOP + frame.plot_h - y:.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(bar.title)}</title></rect>"
        )
        running += bar.value
        share = running / total if total else 0.0
        cy = TOP + frame.plot_h * (1 - share)
        line.append(f"{centres[i]:.1f},{cy:.1f}")
        dots.append(
            f'<circle class="cumulative" cx="{centres[i]:.1f}" cy="{cy:.1f}" r="3" '
            f'fill="{PALETTE[5]}"><title>{escape(bar.label)}: {share:.0%} cumulative'
            f"</title></circle>"
        )
    body.append(
        f'<polyline class="cumulative" fill="none" stroke="{PALETTE[5]}" stroke-width="2" '
        f'points="{" ".join(line)}"/>'
    )
    body.append(
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{TOP + 4}" text-anchor="end">100%</text>'
    )
    return _svg(title, body + dots, css="chart-svg pareto")


def meter(title: str, fraction: float | None) -> Markup:
    """A small horizontal bar for a share (flow efficiency), with its value in words."""
    height = 24
    if fraction is None:
        return Markup(
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg meter empty" role="img" '
            f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">'
            f"<title>{escape(title)}: no items done in this window</title></svg>"
        )
    share = min(1.0, max(0.0, fraction))
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg meter" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">'
        f"<title>{escape(title)}: {share:.0%}</title>"
        f'<rect class="track" x="0" y="4" width="{WIDTH}" height="16" fill="{PALETTE[7]}" '
        f'fill-opacity="0.3"/>'
        f'<rect class="fill series-2" x="0" y="4" width="{WIDTH * share:.1f}" height="16" '
        f'fill="{PALETTE[2]}"/></svg>'
    )
