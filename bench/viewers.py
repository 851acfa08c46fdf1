"""Live fan-out: V SSE viewers on one board (asyncio + httpx), P pulls per second.

Each viewer behaves like static/js/board.js on a board page: it listens to the page's stream
(`/boards/{id}/live`). An `event: delta` carries the changed cards ready-made: the viewer has
the change when the message arrives (its root's data-seen says up to which event). An
`event: refresh` (or a plain message, e.g. the API stream) makes it wait DEBOUNCE_MS (read from
board.js; every new message restarts the wait), then GET the board's refresh URL as htmx would
(one at a time; a message during a fetch means one more fetch afterwards); it has the change
once that fetch completes (the board's data-event-id says up to which event it shows).

Measured per pull: from the pull's response to the last viewer receiving its message
(delivery) and to the last viewer having it (has change); the server's CPU over the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
EVENT_ID = re.compile(rb'data-event-id="(\d+)"')
SEEN = re.compile(rb'<div data-delta data-seen="(\d+)"')


def debounce_seconds() -> float:
    found = re.search(r"DEBOUNCE_MS\s*=\s*(\d+)", (ROOT / "static/js/board.js").read_text())
    return int(found.group(1)) / 1000 if found else 0.0


@dataclass
class Viewer:
    client: httpx.AsyncClient
    board_id: int
    refresh_url: str
    debounce: float
    received: list[tuple[int, float]] = field(default_factory=list)  # (event id, time)
    shown: list[tuple[int, float]] = field(default_factory=list)  # (shows up to id, time)
    fetch_bytes: list[int] = field(default_factory=list)
    delta_bytes: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    newest: int = 0
    timer: asyncio.TimerHandle | None = None
    in_flight: bool = False
    pending: bool = False
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def on_message(self, data: dict[str, Any]) -> None:
        event_id = int(data.get("event_id") or 0)
        self.received.append((event_id, time.perf_counter()))
        self.newest = max(self.newest, event_id)
        self.schedule()

    def schedule(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.debounce, self._start_fetch)

    def _start_fetch(self) -> None:
        task = asyncio.get_running_loop().create_task(self.fetch())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for task in list(self.tasks):
            task.cancel()

    async def fetch(self) -> None:
        self.timer = None
        if self.in_flight:
            self.pending = True
            return
        self.in_flight, self.pending = True, False
        upto = self.newest
        headers = {
            "HX-Request": "true",
            "HX-Target": "board",
            "X-Flowboard-Refresh": "live",
        }
        try:
            response = await self.client.get(self.refresh_url, headers=headers)
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
            found = EVENT_ID.search(response.content)
            if found:
                upto = max(upto, int(found.group(1)))
            self.fetch_bytes.append(len(response.content))
            self.shown.append((upto, time.perf_counter()))
        except httpx.HTTPError:
            self.statuses[0] = self.statuses.get(0, 0) + 1
        finally:
            self.in_flight = False
        if self.pending:
            self.schedule()

    def on_delta(self, html: str) -> None:
        """A ready-made delta (board pages): board.js patches it in, no fetch."""
        found = SEEN.search(html.encode())
        upto = int(found.group(1)) if found else 0
        now = time.perf_counter()
        self.received.append((upto, now))
        self.delta_bytes.append(len(html))
        self.shown.append((upto, now))

    async def listen(self, url: str) -> None:
        async with self.client.stream("GET", url, headers={"Accept": "text/event-stream"}) as r:
            self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
            self.connected.set()
            name, data = "message", []
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:
                    text = "\n".join(data)
                    if name == "delta":
                        self.on_delta(text)
                    else:  # "message" (API stream) or "refresh": fetch the board
                        try:
                            self.on_message(json.loads(text or "{}"))
                        except ValueError:
                            self.on_message({})
                    name, data = "message", []


def first_at(marks: list[tuple[int, float]], event_id: int) -> float | None:
    """When the first mark covering `event_id` came (marks are in time order)."""
    best = None
    for upto, at in marks:
        if upto >= event_id:
            best = at
            break
    return best


@dataclass
class LiveResult:
    viewers: int
    connected: int
    pulls: int
    pull_statuses: dict[int, int]
    delivery: list[float]  # per pull: seconds to the last viewer's message (inf: missed)
    has_change: list[float]
    cpu_cores: float
    fetch_bytes: int
    fetches: int  # whole-board fetches by all viewers (refresh messages)
    delta_bytes: int
    viewer_statuses: dict[int, int]


async def run_live(
    *,
    base: str,
    board_id: int,
    cookie: str,
    token: str,
    items: list[int],
    viewers: int,
    rate: float,
    seconds: float,
    cpu_seconds: Any,
    event_ids: Any,
    drain: float = 20.0,
    live_path: str | None = None,
) -> LiveResult:
    """`cpu_seconds()`: the server's CPU so far; `event_ids(item_ids)`: item id -> event id of
    its pull (read from the database after the run)."""
    limits = httpx.Limits(max_connections=viewers + 8, max_keepalive_connections=viewers + 8)
    timeout = httpx.Timeout(60.0, read=None)
    debounce = debounce_seconds()
    live_url = live_path or f"/boards/{board_id}/live"
    async with (
        httpx.AsyncClient(
            base_url=base, cookies={"flowboard_session": cookie}, limits=limits, timeout=timeout
        ) as watch,
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as act,
    ):
        crowd = [Viewer(watch, board_id, f"/boards/{board_id}", debounce) for _ in range(viewers)]
        tasks = [asyncio.create_task(v.listen(live_url)) for v in crowd]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(v.connected.wait() for v in crowd)), timeout=60)
        await asyncio.sleep(0.5)  # let the streams subscribe on the server
        connected = sum(v.connected.is_set() for v in crowd)
        cpu_before, wall_before = cpu_seconds(), time.perf_counter()
        done: list[tuple[int, float, int]] = []  # item, response time, status
        count = int(rate * seconds)
        start = time.perf_counter()

        async def pull(item: int, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            try:
                response = await act.post(f"/api/v1/items/{item}/pull", json={})
            except httpx.HTTPError:  # counted as status 0: an overloaded server is a result
                done.append((item, time.perf_counter(), 0))
                return
            done.append((item, time.perf_counter(), response.status_code))

        await asyncio.gather(*(pull(items[i], start + i / rate) for i in range(count)))
        # Wait until every viewer has every pull (or the drain time runs out).
        ids = event_ids([item for item, _, status in done if status == 200])
        newest = max(ids.values(), default=0)
        deadline = time.perf_counter() + drain
        while time.perf_counter() < deadline:
            if all(v.shown and v.shown[-1][0] >= newest for v in crowd):
                break
            await asyncio.sleep(0.05)
        cpu = (cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
        for viewer in crowd:
            viewer.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    delivery, has_change = [], []
    for item, answered, status in done:
        if status != 200 or item not in ids:
            continue
        event = ids[item]
        got = [first_at(v.received, event) for v in crowd]
        seen = [first_at(v.shown, event) for v in crowd]
        delivery.append(
            max((g - answered if g is not None else float("inf")) for g in got) if got else 0
        )
        has_change.append(
            max((s - answered if s is not None else float("inf")) for s in seen) if seen else 0
        )
    statuses: dict[int, int] = {}
    for v in crowd:
        for code, n in v.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    pull_statuses: dict[int, int] = {}
    for _, _, status in done:
        pull_statuses[status] = pull_statuses.get(status, 0) + 1
    fetched = [b for v in crowd for b in v.fetch_bytes]
    deltas = [b for v in crowd for b in v.delta_bytes]
    return LiveResult(
        viewers=viewers,
        connected=connected,
        pulls=count,
        pull_statuses=pull_statuses,
        delivery=[max(0.0, d) for d in delivery],
        has_change=[max(0.0, h) for h in has_change],
        cpu_cores=cpu,
        fetch_bytes=int(sum(fetched) / len(fetched)) if fetched else 0,
        fetches=len(fetched),
        delta_bytes=int(sum(deltas) / len(deltas)) if deltas else 0,
        viewer_statuses=statuses,
    )
