"""The organisation's stack for the scale-out tests, each piece real and on free ports:
`flowboard serve` processes, nginx started from deploy/nginx.conf (ports, names, certificate
and paths substituted), PgBouncer in transaction pooling, all on a fresh database of the
shared PostgreSQL (FLOWBOARD_TEST_POSTGRES_URL), with their files in a temporary folder.

PostgreSQL only: several processes share one database. Without the binaries the tests are
skipped on a workstation and fail in CI (.ci/run installs nginx-light and pgbouncer).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.db.migrate import upgrade
from tests.conftest import (
    create_postgres_database,
    drop_postgres_database,
    require_postgres_url,
)
from tests.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
SECRET_KEY = "org-stack-test-secret-shared-by-every-process"
START_TIMEOUT_S = 90  # a busy 2-core machine: importing the app and migrating take seconds
# nginx's server_name here and the certificate's name: a name, not an address, so clients
# send it (SNI) and do not meet the default server that rejects the TLS handshake.
PUBLIC_NAME = "localhost"


def binary(name: str) -> str:
    """The path of an installed program (Debian puts nginx and pgbouncer in /usr/sbin)."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name,) if p.exists()), None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs it")
        pytest.skip(f"needs {name}")
    return found


def require_postgres() -> str:
    return require_postgres_url()  # several processes need one PostgreSQL


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new database on the shared server, migrated; dropped afterwards."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = create_postgres_database(name)
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgres_database(name)


def _wait_for_port(port: int, alive: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited while starting")
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {START_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class AppProcess:
    """One `flowboard serve` on 127.0.0.1:`port`; its output (uvicorn's access log too) in
    `log_path`."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def requests_for(self, pattern: str) -> int:
        """How many requests matching `pattern` (e.g. `GET /api/v1/me`) this process logged."""
        return len(re.findall(rf'"{pattern}[ ?][^"]*" \d{{3}}', self.log()))

    def stop(self) -> None:
        _stop(self.process)


def app_environment(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of an app process: ours replaces every inherited FLOWBOARD_ setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update(
        FLOWBOARD_DATABASE_URL=database_url,
        FLOWBOARD_SECRET_KEY=SECRET_KEY,
        FLOWBOARD_TRUSTED_PROXIES="127.0.0.1",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",  # the access log reaches the file as requests happen
    )
    env.update({f"FLOWBOARD_{k.upper()}": v for k, v in extra.items()})
    return env


@contextmanager
def app_processes(
    database_url: str, work_dir: Path, count: int = 2, **settings: str
) -> Iterator[list[AppProcess]]:
    """`count` app processes on one database, each in its own folder (its own ./var)."""
    env = app_environment(database_url, **settings)
    started: list[AppProcess] = []
    try:
        for n in range(count):
            folder = work_dir / f"app{n}"
            folder.mkdir(parents=True)
            port = free_port()
            log_path = folder / "serve.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                    cwd=folder,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            started.append(AppProcess(port, process, log_path))
        for app in started:
            _wait_for_port(app.port, lambda a=app: a.process.poll() is None, "flowboard serve")
            _wait_healthy(app)
        yield started
    finally:
        for app in started:
            app.stop()


def _wait_healthy(app: AppProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{app.address}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{app.address} is not healthy:\n{app.log()[-3000:]}")


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for PUBLIC_NAME, made with the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            binary("openssl"),
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={PUBLIC_NAME}",
            "-addext",
            f"subjectAltName=DNS:{PUBLIC_NAME}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def render_nginx_conf(
    *, upstreams: list[str], https_port: int, http_port: int, folder: Path, cert: Path, key: Path
) -> str:
    """deploy/nginx.conf with this run's ports, name, certificate and paths. Each replaced
    text must be there as expected, so the test breaks loudly when the file drifts."""
    text = NGINX_CONF.read_text()

    def swap(old: str, new: str, count: int = 1) -> None:
        nonlocal text
        assert text.count(old) == count, f"deploy/nginx.conf: expected {count} x {old!r}"
        text = text.replace(old, new)

    # Workers as root only because the master is (CI); otherwise the line would be ignored.
    swap("user www-data;", "user root;" if os.geteuid() == 0 else "")
    swap("pid /run/nginx-flowboard.pid;", f"pid {folder}/nginx.pid;")
    swap("/var/log/nginx/flowboard.access.log", str(folder / "access.log"))
    swap("/var/log/nginx/flowboard.error.log", str(folder / "error.log"))
    swap("server_name board.example.org;", f"server_name {PUBLIC_NAME};", count=2)
    swap("listen 80;", f"listen 127.0.0.1:{http_port};")
    swap("listen 80 default_server;", f"listen 127.0.0.1:{http_port} default_server;")
    swap("listen 443 ssl default_server;", f"listen 127.0.0.1:{https_port} ssl default_server;")
    swap("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    swap("/etc/letsencrypt/live/board.example.org/fullchain.pem", str(cert))
    swap("/etc/letsencrypt/live/board.example.org/privkey.pem", str(key))
    swap(
        "        server 127.0.0.1:8001;\n        server 127.0.0.1:8002;\n",
        "".join(f"        server {upstream};\n" for upstream in upstreams),
    )
    temp = "".join(
        f"    {kind}_temp_path {folder / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    swap("http {\n", "http {\n" + temp)
    return text


@dataclass
class Nginx:
    https_port: int
    http_port: int
    folder: Path
    cert: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"https://{PUBLIC_NAME}:{self.https_port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def client(self, *, local_address: str | None = None, **kwargs: object) -> httpx.Client:
        """An https client of nginx; `local_address` (e.g. 127.0.0.2) is the client's own."""
        transport = httpx.HTTPTransport(verify=self.ssl_context(), local_address=local_address)
        return httpx.Client(base_url=self.base_url, transport=transport, **kwargs)  # type: ignore[arg-type]

    def access_log(self) -> list[str]:
        path = self.folder / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def upstreams_for(self, pattern: str) -> Counter[str]:
        """Which app process (address) answered each logged request matching `pattern`."""
        counts: Counter[str] = Counter()
        for line in self.access_log():
            if re.search(rf'"{pattern}[ ?]', line):
                found = re.search(r"upstream=(.*?) rt=", line)
                counts[found.group(1) if found else "-"] += 1
        return counts

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text() if path.exists() else ""


@contextmanager
def nginx_in_front(apps: list[AppProcess], work_dir: Path) -> Iterator[Nginx]:
    """nginx from deploy/nginx.conf, in the foreground, proxying to `apps`."""
    nginx = binary("nginx")
    folder = work_dir / "nginx"
    folder.mkdir(parents=True)
    cert, key = self_signed_certificate(folder)
    https_port, http_port = free_port(), free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            upstreams=[app.address for app in apps],
            https_port=https_port,
            http_port=http_port,
            folder=folder,
            cert=cert,
            key=key,
        )
    )
    command = [nginx, "-c", str(conf), "-p", f"{folder}/", "-e", str(folder / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = Nginx(https_port, http_port, folder, cert, process)
    try:
        _wait_for_port(https_port, lambda: process.poll() is None, "nginx")
        yield server
    finally:
        _stop(process)  # SIGTERM: a fast stop, open live streams are cut


@dataclass
class PgBouncer:
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    def url(self, database_url: str) -> str:
        """`database_url` (host 127.0.0.1:5432) as reached through this PgBouncer."""
        rendered: str = (
            make_url(database_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )
        return rendered

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text() if path.exists() else ""


@contextmanager
def pgbouncer(database_url: str, *, pool_size: int = 20) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling in front of `database_url`'s server, `auth_type =
    trust` for its user. PgBouncer refuses to run as root: as root it runs as `postgres`."""
    program = binary("pgbouncer")
    target = make_url(database_url)
    user = target.username or "postgres"
    # Not under pytest's tmp_path: its parents are private to root and postgres must enter.
    folder = Path(tempfile.mkdtemp(prefix="flowboard-pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={target.host or '127.0.0.1'} port={target.port or 5432}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 500\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    command = [program, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres", group="postgres")
        for path in folder.iterdir():
            shutil.chown(path, user="postgres", group="postgres")
        command += ["-u", "postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bouncer = PgBouncer(port, folder, process)
    try:
        _wait_for_port(port, lambda: process.poll() is None, "pgbouncer")
        yield bouncer
    finally:
        _stop(process, signal.SIGINT)  # SIGINT: a fast stop (SIGTERM waits for clients)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Stream:
    """A Server-Sent Events stream read by a thread: every received line lands in `lines`."""

    client: httpx.Client
    url: str
    headers: dict[str, str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    opened: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Stream:
        threading.Thread(target=self._read, name="sse-reader", daemon=True).start()
        assert self.opened.wait(30), "the stream did not answer"
        return self

    def _read(self) -> None:
        try:
            timeout = httpx.Timeout(10, read=120)
            with self.client.stream("GET", self.url, headers=self.headers, timeout=timeout) as r:
                self.status, self.response_headers = r.status_code, dict(r.headers)
                self.opened.set()
                for line in r.iter_lines():
                    self.lines.put(line)
        except Exception as error:  # closed by the test, or the stream failed: say so
            self.lines.put(f"! {type(error).__name__}")
        finally:
            self.opened.set()

    def next_data(self, timeout: float) -> str | None:
        """The next `data:` line within `timeout` seconds (None if none came)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line.startswith("data:"):
                return line[5:].strip()
        return None

    def drain(self) -> None:
        while not self.lines.empty():
            self.lines.get_nowait()


@contextmanager
def org_stack(
    prefix: str, work_dir: Path, **settings: str
) -> Iterator[tuple[str, list[AppProcess], Nginx]]:
    """(database URL, two app processes, nginx in front of them)."""
    with ExitStack() as stack:
        url = stack.enter_context(fresh_postgres_database(prefix))
        apps = stack.enter_context(app_processes(url, work_dir, 2, **settings))
        nginx = stack.enter_context(nginx_in_front(apps, work_dir))
        yield url, apps, nginx
