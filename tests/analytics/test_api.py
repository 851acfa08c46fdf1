"""The analytics API: shapes, roles, parameter checks and the delays CSV."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from tests.analytics.helpers import block, do_import, item, move, t
from tests.factories import Seed, token_headers

WINDOW = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-11T00:00:00Z"}
PATHS = [
    ("flow", {}),
    ("metrics/cycle-times", {}),
    ("metrics/throughput", {"interval": "week"}),
    ("metrics/cfd", {}),
    ("metrics/aging", {}),
    ("metrics/waiting-reasons", {}),
    ("forecast", {"items": 5}),
    ("forecast", {"until": "2027-06-01"}),
    ("snapshot", {"at": "2026-03-04T12:00:00Z"}),
    ("delays.csv", {"status": "all"}),
]


@pytest.mark.parametrize(("path", "params"), PATHS, ids=[f"{p}-{sorted(q)}" for p, q in PATHS])
def test_viewer_reads_outsider_gets_404(
    client: TestClient, seed: Seed, path: str, params: dict[str, object]
) -> None:
    url = f"/api/v1/boards/{seed.board_id}/{path}"
    query = {**(WINDOW if path not in ("snapshot", "forecast") else {}), **params}
    ok = client.get(url, params=query, headers=token_headers(client, seed.user("viewer")))
    assert ok.status_code == 200, ok.text
    hidden = client.get(url, params=query, headers=token_headers(client, seed.user("outsider")))
    assert hidden.status_code == 404
    assert hidden.json()["type"].endswith("/problems/not-found")
    assert client.get(url, params=query).status_code == 401
    missing = client.get(
        "/api/v1/boards/999999/" + path,
        params=query,
        headers=token_headers(client, seed.user("admin")),
    )
    assert missing.status_code == 404


BAD_PARAMS = [
    ("flow", {"from": "2026-03-05T00:00:00Z", "to": "2026-03-01T00:00:00Z"}),
    ("metrics/cycle-times", {"from": "2020-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}),
    ("metrics/cfd", {"from": "yesterday"}),
    ("metrics/throughput", {"interval": "month"}),
    ("flow", {"class_of_service": "urgent"}),
    ("forecast", {}),
    ("forecast", {"items": 5, "until": "2099-01-01"}),
    ("forecast", {"items": 0}),
    ("forecast", {"items": 10_001}),
    ("forecast", {"until": "2020-01-01"}),
    ("snapshot", {}),
    ("snapshot", {"at": "2099-01-01T00:00:00Z"}),
    ("delays.csv", {"status": "pending"}),
]


@pytest.mark.parametrize(("path", "params"), BAD_PARAMS)
def test_bad_parameters_are_422_problems(
    client: TestClient, seed: Seed, path: str, params: dict[str, object]
) -> None:
    response = client.get(
        f"/api/v1/boards/{seed.board_id}/{path}",
        params=params,
        headers=token_headers(client, seed.user("viewer")),
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/problems/validation")


def test_flow_json_shape(client: TestClient, seed: Seed) -> None:
    do_import(
        seed,
        [
            item(
                "A",
                t(2),
                [move(t(2, 10), "Build"), move(t(3, 10), "Build", "ready"), move(t(4), "Review")],
            )
        ],
    )
    headers = token_headers(client, seed.user("viewer"))
    body = client.get(f"/api/v1/boards/{seed.board_id}/flow", params=WINDOW, headers=headers).json()
    assert set(body) >= {
        "states",
        "bottleneck_state_id",
        "flow_efficiency",
        "throughput_per_week",
        "avg_wip",
        "avg_cycle_time_seconds",
        "summary",
        "from",
        "to",
    }
    assert set(body["states"][0]) >= {
        "state_id",
        "name",
        "wip",
        "limit",
        "queue",
        "oldest_ready_seconds",
        "median_seconds_in_state",
        "p85_seconds_in_state",
        "doing_seconds",
        "ready_seconds",
        "blocked_seconds",
        "blocked_now",
        "pct_time_at_limit",
        "rework_count",
    }
    assert body["bottleneck_state_id"] == seed.state_id("Review")
    assert body["from"] == "2026-03-01T00:00:00Z" or body["from"].startswith("2026-03-01T00:00:00")
    cfd = client.get(
        f"/api/v1/boards/{seed.board_id}/metrics/cfd", params=WINDOW, headers=headers
    ).json()
    assert cfd["days"][:2] == ["2026-03-01", "2026-03-02"]
    assert [s["name"] for s in cfd["states"]] == ["Backlog", "Build", "Review", "Done"]
    weeks = client.get(
        f"/api/v1/boards/{seed.board_id}/metrics/throughput",
        params={**WINDOW, "interval": "week"},
        headers=headers,
    ).json()
    assert weeks[0] == {"start": "2026-02-23", "count": 0}
    snap = client.get(
        f"/api/v1/boards/{seed.board_id}/snapshot",
        params={"at": "2026-03-03T12:00:00Z"},
        headers=headers,
    ).json()
    assert snap["items"] == [
        {
            "item_id": snap["items"][0]["item_id"],
            "key": "TST-1",
            "state_id": seed.state_id("Build"),
            "stage": "ready",
            "blocked": False,
        }
    ]
    forecast = client.get(
        f"/api/v1/boards/{seed.board_id}/forecast", params={"items": 3}, headers=headers
    ).json()
    assert set(forecast) >= {"percentiles", "history_days", "runs"}
    assert forecast["runs"] == 10_000 and forecast["history_days"] >= 89


def test_delays_csv_quotes_and_neutralises(client: TestClient, seed: Seed) -> None:
    notes = [
        "=SUM(A1:A9)",
        "+1 555",
        "-2",
        "@cmd",
        'plain, with comma and "quotes"',
        "line one\nline two",
        "Grüße",
    ]
    do_import(
        seed,
        [
            item(
                '=HYPERLINK("x")',
                t(2),
                [move(t(2, 1), "Build")],
                [
                    block("Dependency", t(2, 2 + i), t(2, 3 + i), note=note, waiting_on="@vendor")
                    for i, note in enumerate(notes[:-1])
                ]
                + [block("Dependency", t(3), None, note=notes[-1])],
            )
        ],
    )
    response = client.get(
        f"/api/v1/boards/{seed.board_id}/delays.csv",
        params={"from": "2026-03-01T00:00:00Z"},
        headers=token_headers(client, seed.user("viewer")),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="TST-delays-all.csv"'
    text = response.content.decode("utf-8")
    assert text.startswith("item key,title,state,reason,note,waiting on,opened at,opened by,")
    assert '"plain, with comma and ""quotes"""' in text  # RFC 4180 quoting
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    assert header[-1] == "duration hours" and len(header) == 12
    assert len(body) == len(notes)
    assert {r[1] for r in body} == {'\'=HYPERLINK("x")'}
    assert [r[4] for r in body] == [
        "'=SUM(A1:A9)",
        "'+1 555",
        "'-2",
        "'@cmd",
        'plain, with comma and "quotes"',
        "line one\nline two",
        "Grüße",
    ]
    assert body[0][5] == "'@vendor"
    assert body[0][2] == "Build" and body[0][3] == "Dependency"
    assert body[0][6] == "2026-03-02T02:00:00Z" and body[0][8] == "2026-03-02T03:00:00Z"
    assert body[0][11] == "1.00"
    assert body[-1][8] == ""  # still open
    for status, expected in (("open", 1), ("closed", len(notes) - 1)):
        part = client.get(
            f"/api/v1/boards/{seed.board_id}/delays.csv",
            params={"from": "2026-03-01T00:00:00Z", "status": status},
            headers=token_headers(client, seed.user("viewer")),
        )
        assert len(list(csv.reader(io.StringIO(part.text, newline="")))) == expected + 1


def test_neutralise_covers_every_formula_start() -> None:
    from app.services.analytics import neutralise

    # Tab and CR cannot survive the services' trimming, but a cell is checked all the same.
    for cell in ("=1", "+1", "-1", "@1", "\t1", "\r1"):
        assert neutralise(cell) == "'" + cell
    assert neutralise("Review 1") == "Review 1"
    assert neutralise("") == ""
