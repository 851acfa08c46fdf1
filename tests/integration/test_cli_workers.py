"""`flowboard serve --workers N`: refused on SQLite with one line saying why; on PostgreSQL N
processes serve the same app (each with its own engine, pool and LISTEN thread)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.db.migrate import upgrade
from app.db.session import Database, pool_limits
from tests.conftest import (
    create_postgres_database,
    drop_postgres_database,
    require_postgres_url,
)
from tests.factories import PASSWORD, make_user
from tests.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[2]


def serve_command(port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def environment(url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    return {**env, "FLOWBOARD_DATABASE_URL": url, "FLOWBOARD_SECRET_KEY": "k" * 40}


def test_sqlite_refuses_more_than_one_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.sqlite3'}"
    done = subprocess.run(
        serve_command(free_port(), 2),
        cwd=tmp_path,
        env=environment(url, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--workers 2 needs PostgreSQL" in lines[0]
    assert "one process is the limit" in lines[0] and "one writer at a time" in lines[0]
    assert "Traceback" not in done.stderr and "serving" not in done.stdout
    assert not (tmp_path / "one.sqlite3").exists()  # refused before touching the database


def test_pool_sizes_shrink_as_workers_grow() -> None:
    assert pool_limits(1) == pool_limits(2) == (10, 20)  # 30 connections each at most
    assert pool_limits(4) == (10, 10)
    assert pool_limits(8) == (10, 0)
    assert pool_limits(100) == (4, 0)
    for workers in (1, 2, 3, 4, 8, 16):
        size, overflow = pool_limits(workers)
        assert workers * (size + overflow) <= max(80, workers * 4)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    require_postgres_url()
    name = f"flowboard_workers_{uuid.uuid4().hex[:8]}"
    url = create_postgres_database(name)
    try:
        yield url
    finally:
        drop_postgres_database(name)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def test_postgres_serves_with_two_workers(postgres_url: str, tmp_path: Path) -> None:
    upgrade(postgres_url)
    database = Database(postgres_url)
    with database.unit_of_work() as session:
        user = make_user(session, "Wendy")
        email = user.email
    database.dispose()

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            serve_command(port, 2),
            cwd=tmp_path,
            env=environment(postgres_url, tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as client:
            response = client.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(10):  # keep-alive off: new connections, either worker may answer
                me = httpx.get(base + "/api/v1/me", headers=headers, timeout=30)
                assert me.status_code == 200 and me.json()["email"] == email
        workers = [pid for pid in children_of(process.pid) if "spawn" in cmdline(pid)]
        assert len(workers) == 2, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert process.returncode == 0, log.read_text()


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
