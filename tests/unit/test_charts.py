"""The SVG builders: well-formed XML, one mark per datum, escaped text, placeholders."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest
from markupsafe import Markup

from app.web import charts
from app.web.charts import Bar

NS = "{http://www.w3.org/2000/svg}"
EVIL = '<img src=x onerror=alert(1)> & "q"'


def parse(svg: Markup) -> ET.Element:
    root = ET.fromstring(str(svg))
    assert root.tag == f"{NS}svg"
    assert root.get("role") == "img"
    assert root.find(f"{NS}title") is not None
    return root


def titles(root: ET.Element, tag: str) -> list[str]:
    return [
        (el.find(f"{NS}title").text or "")  # type: ignore[union-attr]
        for el in root.iter(f"{NS}{tag}")
        if el.find(f"{NS}title") is not None
    ]


def day(n: int) -> datetime:
    return datetime(2026, 3, n, tzinfo=UTC)


def test_scatter_has_a_point_per_item_with_titles_and_percentile_lines() -> None:
    points = [(day(2), 86_400 * 3.2, "DOC-12"), (day(3), 7200.0, "DOC-13"), (day(4), 60.0, EVIL)]
    root = parse(
        charts.scatter_chart(
            "Cycle",
            points,
            {"50": 7200.0, "85": 86_400 * 3.0, "95": None},
            start=day(1),
            end=day(5),
        )
    )
    assert titles(root, "circle") == ["DOC-12 · 3.2 days", "DOC-13 · 2 h", f"{EVIL} · 1 min"]
    lines = [g for g in root.iter(f"{NS}g") if "pline" in (g.get("class") or "")]
    assert [g.get("class") for g in lines] == ["pline line-p50", "pline line-p85"]
    assert titles(root, "line") == ["50%: 2 h", "85%: 3.0 days"]


def test_scatter_points_sit_where_their_values_say() -> None:
    root = parse(
        charts.scatter_chart(
            "Cycle", [(day(1), 0.0, "A"), (day(5), 86_400.0, "B")], {}, start=day(1), end=day(5)
        )
    )
    a, b = list(root.iter(f"{NS}circle"))
    assert float(a.get("cx", 0)) < float(b.get("cx", 0))
    assert float(a.get("cy", 0)) > float(b.get("cy", 0))  # SVG y grows downwards


def test_cfd_has_a_band_per_state() -> None:
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(4)]
    series = [("Backlog", [3, 2, 2, 1]), ("Build", [1, 2, 1, 1]), (EVIL, [0, 0, 1, 2])]
    root = parse(charts.cfd_chart("CFD", days, series))
    bands = list(root.iter(f"{NS}polygon"))
    assert len(bands) == 3
    # Done (the last state) at the bottom: drawn first.
    assert titles(root, "polygon")[0] == f"{EVIL}: 2 on 4 Mar"
    for band in bands:
        assert len(band.get("points", "").split()) == 8  # 4 days along the top and back


def test_cfd_single_day_is_still_drawn() -> None:
    root = parse(charts.cfd_chart("CFD", [date(2026, 3, 1)], [("Build", [2]), ("Done", [1])]))
    assert len(list(root.iter(f"{NS}polygon"))) == 2


def test_bar_chart_has_a_column_per_bucket() -> None:
    bars = [Bar(f"2026-03-0{i}", i % 3, f"2026-03-0{i}: {i % 3} done") for i in range(1, 8)]
    root = parse(charts.bar_chart("Throughput", bars))
    rects = list(root.iter(f"{NS}rect"))
    assert len(rects) == 7
    assert titles(root, "rect")[1] == "2026-03-02: 2 done"
    heights = [float(r.get("height", 0)) for r in rects]
    assert heights[2] == 0 and heights[1] > heights[0] > 0


def test_aging_has_a_dot_per_item_in_its_state_column() -> None:
    columns = [("Build", [(86_400.0, "A-1"), (86_400.0, "A-2")]), ("Review", [(3600.0, EVIL)])]
    root = parse(charts.aging_chart("Aging", columns, {"50": 43_200.0, "85": None}))
    dots = list(root.iter(f"{NS}circle"))
    assert len(dots) == 3
    assert dots[0].get("cx") != dots[1].get("cx")  # equal ages spread sideways
    assert float(dots[2].get("cx", 0)) > float(dots[0].get("cx", 0))
    assert titles(root, "circle")[2] == f"{EVIL} · 1 h"
    assert titles(root, "line") == ["50%: 12 h"]
    labels = [el.text for el in root.iter(f"{NS}text")]
    assert "Build" in labels and "Review" in labels
    assert "0.25" in labels  # y ticks at quarters of the rounded top (1 day)


def test_pareto_orders_bars_and_ends_the_cumulative_line_at_100() -> None:
    bars = [Bar("Small", 1.0, "Small"), Bar(EVIL, 3.0, "Big"), Bar("Mid", 2.0, "Mid")]
    root = parse(charts.pareto_chart("Pareto", bars))
    assert titles(root, "rect") == ["Big", "Mid", "Small"]
    cumulative = titles(root, "circle")
    assert cumulative == [
        f"{EVIL}: 50% cumulative",
        "Mid: 83% cumulative",
        "Small: 100% cumulative",
    ]
    assert len(list(root.iter(f"{NS}polyline"))) == 1


def test_meter_shows_the_share() -> None:
    root = parse(charts.meter("Flow efficiency", 0.25))
    fill = [r for r in root.iter(f"{NS}rect") if "fill" in (r.get("class") or "")]
    assert float(fill[0].get("width", 0)) == pytest.approx(charts.WIDTH * 0.25)
    assert (root.find(f"{NS}title").text or "").endswith("25%")  # type: ignore[union-attr]
    parse(charts.meter("Flow efficiency", None))


@pytest.mark.parametrize(
    "svg",
    [
        charts.cfd_chart("c", [], []),
        charts.cfd_chart("c", [date(2026, 3, 1)], [("Build", [0])]),
        charts.scatter_chart("s", [], {"50": None}, start=day(1), end=day(2)),
        charts.bar_chart("b", []),
        charts.bar_chart("b", [Bar("x", 0, "x")]),
        charts.aging_chart("a", [("Build", [])], {}),
        charts.pareto_chart("p", []),
    ],
)
def test_empty_data_gives_a_placeholder(svg: Markup) -> None:
    root = parse(svg)
    assert "empty" in (root.get("class") or "")
    texts = [el.text or "" for el in root.iter(f"{NS}text")]
    assert len(texts) == 1 and texts[0].startswith("No ")
    for tag in ("circle", "rect", "polygon"):
        assert not list(root.iter(f"{NS}{tag}"))


def test_titles_are_escaped_in_the_markup() -> None:
    svg = str(charts.placeholder(EVIL, EVIL))
    assert "<img" not in svg
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;q&#34;" in svg
    root = parse(Markup(svg))
    assert (root.find(f"{NS}title").text or "") == EVIL  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"),
        (30, "0 min"),
        (300, "5 min"),
        (3600 * 5, "5 h"),
        (5400, "1.5 h"),
        (3600 * 15, "15 h"),
        (86_400 * 2.3, "2.3 days"),
    ],
)
def test_friendly_duration(seconds: float | None, text: str) -> None:
    assert charts.friendly_duration(seconds) == text


def test_equal_percentiles_share_one_line() -> None:
    root = parse(
        charts.aging_chart(
            "Aging", [("Build", [(86_400.0, "A-1")])], {"50": 3600.0, "85": 7200.0, "95": 7200.0}
        )
    )
    assert titles(root, "line") == ["50%: 1 h", "85%, 95%: 2 h"]


def test_cfd_legend_names_every_state_escaped() -> None:
    days = [date(2026, 3, 1), date(2026, 3, 2)]
    svg = charts.cfd_chart("CFD", days, [("Backlog", [1, 1]), (EVIL, [0, 1])])
    root = parse(svg)
    legend = next(g for g in root.iter(f"{NS}g") if g.get("class") == "legend")
    assert [t.text for t in legend.iter(f"{NS}text")] == ["Backlog", EVIL]
    assert len(list(legend.iter(f"{NS}rect"))) == 2
