"""Bottlenecks, Delays and Time travel pages on exact imported histories (both databases).

Board (tests.factories): Backlog, Build (limit 3), Review (limit 2, reviewer), Done.
Window in the URL: from=2026-03-01 to=2026-03-10 (whole days: 03-01 00:00 .. 03-11 00:00).

  A: created 03-02; Build 03-02 10:00; ready 03-03 10:00; Review 03-04 10:00; back to Build
     03-05 10:00; ready 03-05 16:00; Review 03-06 10:00; Done 03-07 10:00. Blocked (Waiting
     for decision) 03-03 20:00 .. 03-04 14:00.
  B: created 03-02; Build 03-03; ready 03-08; blocked (Dependency, waiting on Legal) from
     03-09, still open.
  X: title '<img src=x onerror=alert(1)>', Build 03-02, Done 03-08; blocked with the reason
     named '<img ...>' 03-04 .. 03-05 (note '=HYPERLINK("x")').
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from app.db import queries
from app.services import analytics, boards
from tests.analytics.helpers import block, do_import, item, move, t
from tests.factories import Seed
from tests.web.helpers import sign_in

EVIL = "<img src=x onerror=alert(1)>"
WINDOW = "from=2026-03-01&to=2026-03-10"
FROM, TO = t(1), t(11)


@pytest.fixture
def scenario(seed: Seed) -> Seed:
    with seed.database.unit_of_work() as session:
        boards.add_block_reason(
            session=session, board_id=seed.board_id, actor=seed.user("manager"), name=EVIL
        )
    do_import(
        seed,
        [
            item(
                "Alpha",
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
                "Bravo",
                t(2),
                [move(t(3), "Build"), move(t(8), "Build", "ready")],
                [block("Dependency", t(9), None, waiting_on="Legal")],
            ),
            item(
                EVIL,
                t(2),
                [move(t(2), "Build"), move(t(8), "Done")],
                [block(EVIL, t(4), t(5), note='=HYPERLINK("x")')],
            ),
        ],
    )
    return seed


def keys(seed: Seed) -> dict[str, tuple[int, str]]:
    """title -> (item id, key)."""
    from app.db.models import Item

    with seed.database.unit_of_work(write=False) as session:
        rows = session.query(Item.title, Item.id, Item.key).filter(Item.board_id == seed.board_id)
        return {title: (item_id, key) for title, item_id, key in rows}


def flow_url(seed: Seed, query: str = WINDOW) -> str:
    return f"/boards/{seed.board_id}/flow?{query}"


def section(html: str, start: str, end: str) -> str:
    found = html.split(start, 1)
    assert len(found) == 2, f"{start!r} not in the page"
    return found[1].split(end, 1)[0]


def service_report(seed: Seed) -> analytics.FlowReport:
    with seed.database.unit_of_work(write=False) as session:
        return analytics.flow_report(
            session=session, board_id=seed.board_id, actor=seed.user("viewer"), start=FROM, end=TO
        )


# --------------------------------------------------------------------------- bottlenecks


def test_flow_page_names_the_bottleneck_and_lists_every_state(
    client: TestClient, scenario: Seed
) -> None:
    sign_in(client, scenario.user("viewer"))
    response = client.get(flow_url(scenario))
    assert response.status_code == 200, response.text
    report = service_report(scenario)
    assert report.bottleneck_state_id == scenario.state_id("Review")
    assert report.summary.startswith("Review is the bottleneck")
    html = response.text
    assert f"<strong>{report.summary}</strong>" in html
    table = section(html, 'id="states-table"', "</table>")
    rows = re.findall(r'<tr data-state-id="(\d+)"( class="bottleneck")?>', table)
    assert [int(r[0]) for r in rows] == [s.id for s in scenario.states.values()]
    marked = [int(r[0]) for r in rows if r[1]]
    assert marked == [scenario.state_id("Review")]
    review_row = section(table, f'data-state-id="{scenario.state_id("Review")}"', "</tr>")
    assert "Bottleneck" in review_row
    build_row = section(table, f'data-state-id="{scenario.state_id("Build")}"', "</tr>")
    assert "Bottleneck" not in build_row
    assert '<td class="num">1 / 3</td>' in build_row  # Bravo is in Build now


def test_flow_page_charts_have_svg_data_tables_and_point_titles(
    client: TestClient, scenario: Seed
) -> None:
    sign_in(client, scenario.user("viewer"))
    html = client.get(flow_url(scenario)).text
    for chart in ("cfd", "cycle", "throughput", "aging", "efficiency", "reasons"):
        figure = section(html, f'id="chart-{chart}"', "</figure>")
        assert "<svg" in figure, chart
        assert f'id="data-{chart}"' in figure, chart
    ids = keys(scenario)
    alpha_key = ids["Alpha"][1]
    # Alpha: committed 03-02 10:00, done 03-07 10:00: 5.0 days.
    scatter = section(html, 'id="chart-cycle"', "</figure>")
    assert f"<title>{alpha_key} · 5.0 days</title>" in scatter
    assert scatter.count('<circle class="point"') == 2
    # Bravo is the only open committed item: one aging dot, in Build.
    aging = section(html, 'id="chart-aging"', "</figure>")
    assert aging.count("<circle") == 1
    assert ids["Bravo"][1] in aging
    # Throughput per day: 10 days, one column each.
    throughput = section(html, 'id="chart-throughput"', "</figure>")
    assert throughput.count("<rect") == 10
    assert "2026-03-07: 1 done" in throughput


def test_flow_filters_round_trip_in_the_url(client: TestClient, scenario: Seed) -> None:
    sign_in(client, scenario.user("viewer"))
    response = client.get(flow_url(scenario, WINDOW + "&cos=expedite&interval=week"))
    assert response.status_code == 200
    html = response.text
    assert 'name="from" value="2026-03-01"' in html
    assert 'name="to" value="2026-03-10"' in html
    assert '<option value="expedite" selected>' in html
    assert '<option value="week" selected>' in html
    # The forecast form keeps the filters.
    forecast = section(html, 'id="forecast"', "</form>")
    assert 'name="cos" value="expedite"' in forecast
    assert 'name="from" value="2026-03-01"' in forecast
    # No expedite items: nothing was done, so no cycle-time points.
    assert '<circle class="point"' not in section(html, 'id="chart-cycle"', "</figure>")
    # Weeks starting Monday 02-23 .. 03-09.
    throughput = section(html, 'id="data-throughput"', "</table>")
    assert "2026-03-02" in throughput and "2026-03-09" in throughput


def test_forecast_panel_equals_the_service(client: TestClient, scenario: Seed) -> None:
    sign_in(client, scenario.user("viewer"))
    until = date.today() + timedelta(days=20)
    html = client.get(flow_url(scenario, WINDOW + f"&until={until}&items=3")).text
    with scenario.database.unit_of_work(write=False) as session:
        common = {
            "session": session,
            "board_id": scenario.board_id,
            "actor": scenario.user("viewer"),
            "start": FROM,
            "end": TO,
        }
        by_date = analytics.forecast(until=until, **common)
        by_count = analytics.forecast(items=3, **common)
    table = section(html, 'id="forecast-table"', "</table>")
    for p in ("50", "85", "95"):
        row = section(table, f'data-percentile="{p}"', "</tr>")
        assert f"at least {by_date.percentiles[p]}<" in row
        when = by_count.percentiles[p]
        assert (when.isoformat() if when else "not within ten years") in row
    assert "10,000 runs" in html
    assert f"of the {by_date.history_days} whole days" in html
    assert by_date.history_days == 10


def test_bad_date_is_an_alert_422(client: TestClient, scenario: Seed) -> None:
    sign_in(client, scenario.user("viewer"))
    bad = client.get(flow_url(scenario, "from=2026-13-01"))
    assert bad.status_code == 422
    assert '<div class="alert" role="alert"' in bad.text
    assert "YYYY-MM-DD" in bad.text
    reversed_window = client.get(flow_url(scenario, "from=2026-03-10&to=2026-03-01"))
    assert reversed_window.status_code == 422
    assert "must not be after" in reversed_window.text
    delays = client.get(f"/boards/{scenario.board_id}/delays?to=yesterday")
    assert delays.status_code == 422 and 'role="alert"' in delays.text
    history = client.get(f"/boards/{scenario.board_id}/history?at=not-a-time")
    assert history.status_code == 422 and 'role="alert"' in history.text
    future = client.get(f"/boards/{scenario.board_id}/history?at=2999-01-01T00:00")
    assert future.status_code == 422 and "time travel goes backwards" in future.text


def test_outsider_gets_404_on_every_page(client: TestClient, scenario: Seed) -> None:
    sign_in(client, scenario.user("outsider"))
    for path in ("flow", "delays", "delays.csv", "history"):
        response = client.get(f"/boards/{scenario.board_id}/{path}")
        assert response.status_code == 404, path
        assert "Test board" not in response.text


def test_signed_out_is_sent_to_login(client: TestClient, scenario: Seed) -> None:
    response = client.get(f"/boards/{scenario.board_id}/flow", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


# --------------------------------------------------------------------------- delays


def test_delays_page_lists_open_first_with_who_and_links(
    client: TestClient, scenario: Seed
) -> None:
    sign_in(client, scenario.user("viewer"))
    response = client.get(f"/boards/{scenario.board_id}/delays?{WINDOW}")
    assert response.status_code == 200
    table = section(response.text, 'id="delays-table"', "</table>")
    rows = re.findall(r'<tr class="(open|closed)">', table)
    assert rows == ["open", "closed", "closed"]
    ids = keys(scenario)
    first = section(table, '<tr class="open">', "</tr>")
    assert f'href="/items/{ids["Bravo"][0]}"' in first
    assert "Dependency" in first and "Legal" in first and "Mia" in first  # opened by the importer
    closed = table.split('<tr class="closed">')[1:]
    # Closed: most recently opened first (the EVIL block 03-04 before Alpha's 03-03).
    assert "Waiting for decision" in closed[1]
    assert "2026-03-03 20:00 UTC" in closed[1] and "2026-03-04 14:00 UTC" in closed[1]
    assert ">18 h<" in closed[1]
    assert 'href="/boards/' in response.text and "delays.csv?" in response.text


def test_delays_filters_round_trip_and_apply(client: TestClient, scenario: Seed) -> None:
    sign_in(client, scenario.user("viewer"))
    url = f"/boards/{scenario.board_id}/delays?{WINDOW}&status=closed&reason=Waiting+for+decision"
    html = client.get(url).text
    assert '<option value="closed" selected>' in html
    assert '<option value="Waiting for decision" selected>' in html
    assert 'name="from" value="2026-03-01"' in html
    table = section(html, 'id="delays-table"', "</table>")
    assert re.findall(r'<tr class="(open|closed)">', table) == ["closed"]
    link = re.search(r'href="(/boards/\d+/delays\.csv\?[^"]*)"', html)
    assert link is not None
    href = link.group(1).replace("&amp;", "&")
    assert "status=closed" in href and "reason=Waiting+for+decision" in href
    assert "from=2026-03-01" in href
    csv_rows = list(csv.reader(io.StringIO(client.get(href).text)))
    assert len(csv_rows) == 2 and csv_rows[1][3] == "Waiting for decision"


def test_delays_csv_with_the_session_cookie_is_the_service_csv(
    client: TestClient, scenario: Seed
) -> None:
    sign_in(client, scenario.user("viewer"))
    response = client.get(f"/boards/{scenario.board_id}/delays.csv?{WINDOW}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    with scenario.database.unit_of_work(write=False) as session:
        _name, text = analytics.delays_csv(
            session=session,
            board_id=scenario.board_id,
            actor=scenario.user("viewer"),
            start=FROM,
            end=TO,
        )
    # Durations of open blocks run to now: compare every cell but the open row's duration.
    got = list(csv.reader(io.StringIO(response.text)))
    want = list(csv.reader(io.StringIO(text)))
    assert [r[:-1] for r in got] == [r[:-1] for r in want]
    evil_row = next(r for r in got if r[3] == EVIL)
    assert evil_row[4] == '\'=HYPERLINK("x")'  # neutralised
    # The API's CSV needs a bearer token: the cookie alone is refused.
    api = client.get(f"/api/v1/boards/{scenario.board_id}/delays.csv")
    assert api.status_code == 401


# --------------------------------------------------------------------------- time travel


def cards_in(html: str, state: str) -> str:
    """The inside of one state's column on the time-travel board."""
    return next(
        part.split("</section>", 1)[0]
        for part in html.split('<section class="state')[1:]
        if f'aria-label="{state}"' in part.split(">", 1)[0]
    )


def test_time_travel_shows_the_past_state_read_only(client: TestClient, scenario: Seed) -> None:
    ids = keys(scenario)
    alpha_id, alpha_key = ids["Alpha"]
    sign_in(client, scenario.user("viewer"))
    response = client.get(f"/boards/{scenario.board_id}/history?at=2026-03-05T12:00")
    assert response.status_code == 200, response.text
    html = response.text
    assert "Read-only: the board as it was at 2026-03-05 12:00 UTC" in html
    # At 03-05 12:00 Alpha had been sent back to Build (doing); today it is Done.
    build = cards_in(html, "Build")
    doing = section(build, '<div class="half doing">', '<div class="half ready">')
    assert f'data-item-id="{alpha_id}"' in doing and alpha_key in doing
    assert f'data-item-id="{alpha_id}"' not in cards_in(html, "Done")
    assert '<form method="post"' not in section(html, '<div id="board"', "<dialog")
    assert "data-sortable-state" not in html and "data-pull-url" not in html
    # Moving the slider (t differs from t0) wins over the datetime field.
    moment = int(datetime(2026, 3, 3, 21, tzinfo=UTC).timestamp())
    slid = client.get(
        f"/boards/{scenario.board_id}/history?at=2026-03-05T12:00&t={moment}&t0=1"
    ).text
    assert "as it was at 2026-03-03 21:00 UTC" in slid
    build = cards_in(slid, "Build")
    ready = build.split('<div class="half ready">', 1)[1]
    alpha_card = section(ready, f'data-item-id="{alpha_id}"', "</article>")
    assert "Blocked" in alpha_card  # blocked 03-03 20:00 .. 03-04 14:00


def test_time_travel_defaults_to_now_with_slider(client: TestClient, scenario: Seed) -> None:
    sign_in(client, scenario.user("viewer"))
    html = client.get(f"/boards/{scenario.board_id}/history").text
    now = queries.now()
    assert f"as it was at {now:%Y-%m-%d}" in html
    slider = re.search(r'<input type="range"[^>]*>', html, re.S)
    assert slider is not None
    low = int(re.search(r'min="(\d+)"', slider.group(0)).group(1))  # type: ignore[union-attr]
    assert low <= int(t(2).timestamp())  # reaches back to the oldest imported item
    assert "data-time-slider" in slider.group(0)
    assert '<script src="/static/js/time-travel.js" defer></script>' in html
    ids = keys(scenario)
    done = cards_in(html, "Done")
    assert f'data-item-id="{ids["Alpha"][0]}"' in done


# --------------------------------------------------------------------------- escaping


def test_user_text_is_escaped_on_all_three_pages(client: TestClient, scenario: Seed) -> None:
    sign_in(client, scenario.user("viewer"))
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    pages = [
        flow_url(scenario),  # the reason name: Pareto <title>, data table
        f"/boards/{scenario.board_id}/delays?{WINDOW}",  # title and reason
        f"/boards/{scenario.board_id}/history?at=2026-03-09T00:00",  # the card title
    ]
    for url in pages:
        html = client.get(url).text
        assert EVIL not in html, url
        assert escaped in html, url
    pareto = section(client.get(flow_url(scenario)).text, 'id="chart-reasons"', "</svg>")
    assert f"<title>{escaped}: 1.0 days over 1 block</title>" in pareto


def test_pages_carry_no_inline_script_or_style(client: TestClient, scenario: Seed) -> None:
    sign_in(client, scenario.user("viewer"))
    for path in (f"flow?{WINDOW}", f"delays?{WINDOW}", "history"):
        html = client.get(f"/boards/{scenario.board_id}/{path}").text
        assert "style=" not in html and "<style" not in html, path
        assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, path


def test_time_travel_shows_the_title_as_it_was_then(client: TestClient, seed: Seed) -> None:
    from datetime import UTC, datetime, timedelta

    from app.services import items
    from tests.web.helpers import sign_in

    then = datetime.now(UTC) - timedelta(days=3)
    with seed.database.unit_of_work() as session:
        detail = items.create_item(
            session=session,
            board_id=seed.board_id,
            actor=seed.user("member"),
            title="First name",
            now=then,
        )
        items.pull_item(
            session=session,
            item_id=detail.item.id,
            actor=seed.user("member"),
            now=then + timedelta(hours=1),
        )
    for n, title in enumerate(("Second name", "Third name")):
        with seed.database.unit_of_work() as session:
            version = items.get_item(
                session=session, item_id=detail.item.id, actor=seed.user("member")
            ).item.version
            items.edit_item(
                session=session,
                item_id=detail.item.id,
                actor=seed.user("member"),
                version=version,
                changes={"title": title},
                now=then + timedelta(days=1 + n),
            )
    sign_in(client, seed.user("member"))
    at = (then + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    past = client.get(f"/boards/{seed.board_id}/history", params={"at": at}).text
    assert "First name" in past and "Third name" not in past
    middle = (then + timedelta(days=1, hours=2)).strftime("%Y-%m-%dT%H:%M")
    assert (
        "Second name" in client.get(f"/boards/{seed.board_id}/history", params={"at": middle}).text
    )
    assert "Third name" in client.get(f"/boards/{seed.board_id}/history").text
