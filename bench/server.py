"""Start `flowboard serve` in a subprocess on a free port; wait for /healthz; stop it.

CPU and memory come from /proc (no psutil): the served process and, with --workers, its
children.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, database_url: str, *, workers: int = 1, log: Path | None = None) -> None:
        self.database_url = database_url
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log or ROOT / "bench" / "data" / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def start(self, timeout: float = 60) -> Server:
        env = dict(os.environ)
        env["FLOWBOARD_DATABASE_URL"] = self.database_url
        env.setdefault("FLOWBOARD_SECRET_KEY", "bench-secret-key-" + "x" * 32)
        env["PYTHONPATH"] = str(ROOT)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # Its own working directory: the app keeps files under ./var and reads ./.env.
        workdir = self.log.parent / "cwd"
        workdir.mkdir(exist_ok=True)
        started = time.perf_counter()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with httpx.Client(timeout=2) as client:
            while time.perf_counter() - started < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
                try:
                    if client.get(self.base + "/healthz").status_code == 200:
                        self.startup_seconds = time.perf_counter() - started
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"no /healthz within {timeout} s: {self.log.read_text()[-2000:]}")

    def pids(self) -> list[int]:
        """The server process and its descendants (uvicorn's workers)."""
        if self.proc is None:
            return []
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(c) for c in children)
        return found

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / TICKS

    def rss_mb(self) -> list[float]:
        """RSS of each process that serves (the workers; the process itself when alone)."""
        pids = self.pids()
        serving = pids[1:] if len(pids) > 1 and self.workers > 1 else pids[:1]
        sizes = []
        for pid in serving:
            try:
                pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            except OSError:
                continue
            sizes.append(pages * PAGE / 2**20)
        return sizes

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
