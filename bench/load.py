"""A small load driver: N threads, each with its own keep-alive httpx client, for T seconds
(or a number of requests); latencies -> p50/p95/p99, throughput, status counts.

The driver shares the machine's cores with the server: on 2 cores it takes part of one, so
throughput figures are a floor, not the server's ceiling.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

Request = Callable[[httpx.Client, int, int], httpx.Response]  # (client, worker, n) -> response


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    bytes: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    def status_text(self) -> str:
        parts = [f"{code}x{n}" for code, n in sorted(self.statuses.items())]
        parts += [f"{name}x{n}" for name, n in sorted(self.errors.items())]
        return " ".join(parts)

    def only(self, *allowed: int) -> bool:
        return not self.errors and all(code in allowed for code in self.statuses)


def client(base: str, headers: dict[str, str] | None = None, **kw: object) -> httpx.Client:
    return httpx.Client(
        base_url=base,
        headers=headers or {},
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        **kw,  # type: ignore[arg-type]
    )


def run(
    base: str,
    request: Request,
    *,
    clients: int = 1,
    seconds: float | None = None,
    requests: int | None = None,
    headers: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
    warmup: int = 1,
) -> Result:
    """Each of `clients` threads calls `request` until `seconds` pass or, with `requests`, until
    that many have been sent in all. `warmup` calls per client first, not counted."""
    assert seconds is not None or requests is not None
    result = Result()
    lock = threading.Lock()
    issued = [0]
    deadline = [0.0]
    began = [0.0]

    def open_gate() -> None:  # runs once, before any worker passes the barrier
        began[0] = time.perf_counter()
        deadline[0] = began[0] + (seconds or 0)

    start_gate = threading.Barrier(clients + 1, action=open_gate)

    def next_n() -> int | None:
        with lock:
            if requests is not None and issued[0] >= requests:
                return None
            issued[0] += 1
            return issued[0] - 1

    def worker(index: int) -> None:
        with client(base, headers, cookies=cookies) as http:
            for w in range(warmup):
                with contextlib.suppress(httpx.HTTPError):
                    request(http, index, -1 - w)
            start_gate.wait()
            while seconds is None or time.perf_counter() < deadline[0]:
                n = next_n()
                if n is None:
                    return
                began = time.perf_counter()
                try:
                    response = request(http, index, n)
                except httpx.HTTPError as error:
                    with lock:
                        result.errors[type(error).__name__] += 1
                    continue
                took = time.perf_counter() - began
                with lock:
                    result.latencies.append(took)
                    result.statuses[response.status_code] += 1
                    result.bytes.append(len(response.content))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began[0]
    return result
