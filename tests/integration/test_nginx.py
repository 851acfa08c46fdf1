"""deploy/nginx.conf in front of two `flowboard serve` processes on one PostgreSQL (issue 8,
scale-out): requests spread over both; a live stream on one process sees a pull answered by
the other (LISTEN/NOTIFY between them, nginx passing the stream unbuffered); the client's
address and https reach the app only from the trusted proxy; a stopped process costs no
request. nginx runs the very file in deploy/ with this run's ports, name, certificate and
paths (see tests/integration/org_stack.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest
from sqlalchemy import select

from app.auth import passwords
from app.db.models import AuditEvent, User
from app.db.session import Database
from app.services.boards import StateSpec
from tests.factories import PASSWORD, Seed, seed_board
from tests.integration.conftest import CHEAP_HASHER
from tests.integration.helpers import add_members, create_backlog_items
from tests.integration.org_stack import AppProcess, Nginx, Stream, org_stack
from tests.web.helpers import form_token

pytestmark = pytest.mark.xdist_group("org-stack")  # one stack for the module, in file order

T = TypeVar("T")
CLIENT_ADDRESS = "127.0.0.2"  # loopback, but not the proxy's 127.0.0.1
FORGED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


@dataclass
class Site:
    database: Database
    apps: list[AppProcess]
    nginx: Nginx
    seed: Seed
    backlog: list[int]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with org_stack("flowboard_nginx", tmp_path_factory.mktemp("nginx-stack")) as (
        url,
        apps,
        nginx,
    ):
        database = Database(url)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(passwords, "_hasher", CHEAP_HASHER)  # the processes verify any cost
            seed = seed_board(
                database,
                states=[
                    StateSpec("Backlog", "backlog"),
                    StateSpec("Build", "work", 50),
                    StateSpec("Done", "done"),
                ],
            )
            add_members(seed, count=4, role="member", prefix="Proxied")
            backlog = create_backlog_items(seed, 20)
        try:
            yield Site(database, apps, nginx, seed, backlog)
        finally:
            database.dispose()


def eventually(probe: Callable[[], T], ok: Callable[[T], bool], timeout: float = 10) -> T:
    """`probe()` once `ok` holds, or its last value (logs are written just after answers)."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


def token(client: httpx.Client, email: str, **kwargs: object) -> dict[str, str]:
    answer = client.post(
        "/api/v1/auth/token", data={"username": email, "password": PASSWORD}, **kwargs
    )  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def sign_in_addresses(database: Database, email: str) -> list[str | None]:
    with database.unit_of_work(write=False) as session:
        user_id = session.scalar(select(User.id).where(User.email == email))
        return list(
            session.scalars(
                select(AuditEvent.ip)
                .where(AuditEvent.type == "signed_in", AuditEvent.actor_id == user_id)
                .order_by(AuditEvent.id)
            )
        )


def cookie_flags(response: httpx.Response, name: str) -> set[str]:
    lines = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    [line] = [v for v in lines if v.startswith(f"{name}=")]
    return {part.strip().lower() for part in line.split(";")[1:]}


def test_requests_spread_over_both_processes(site: Site) -> None:
    marker = uuid.uuid4().hex[:8]
    pattern = f"GET /healthz\\?spread={marker}"
    with site.nginx.client() as client:
        for _ in range(20):
            assert client.get(f"/healthz?spread={marker}").status_code == 200

    by_upstream = eventually(
        lambda: site.nginx.upstreams_for(pattern), lambda c: sum(c.values()) == 20
    )
    assert set(by_upstream) == {app.address for app in site.apps}, by_upstream
    assert min(by_upstream.values()) >= 5, by_upstream
    # Each process's own access log agrees with nginx's.
    for app in site.apps:
        assert app.requests_for(pattern) == by_upstream[app.address]


def test_plain_http_is_redirected_and_other_names_are_dropped(site: Site) -> None:
    plain = f"http://127.0.0.1:{site.nginx.http_port}"
    answer = httpx.get(f"{plain}/boards?x=1", headers={"Host": "localhost"})
    assert answer.status_code == 301
    assert answer.headers["location"] == "https://localhost/boards?x=1"
    # Another Host: the connection is closed without an answer (444).
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{plain}/", headers={"Host": "evil.example"})
    # TLS without the site's name (no SNI): the handshake is refused.
    with pytest.raises(httpx.ConnectError):
        httpx.get(
            f"https://127.0.0.1:{site.nginx.https_port}/healthz",
            verify=site.nginx.ssl_context(),
        )


def test_a_live_stream_through_nginx_sees_a_pull_answered_by_the_other_process(
    site: Site,
) -> None:
    board = site.seed.board_id
    stream_path = f"/api/v1/boards/{board}/stream"
    with site.nginx.client() as client, site.nginx.client() as stream_client:
        headers = token(client, site.seed.user("member").email)
        stream = Stream(stream_client, stream_path, headers).start()
        assert stream.status == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        # Which process holds the stream: uvicorn logs a request when the answer starts.
        holders = eventually(
            lambda: [a for a in site.apps if a.requests_for(f"GET {stream_path}")],
            lambda found: len(found) == 1,
        )
        assert len(holders) == 1
        [holder] = holders

        crossed = []
        for item_id in site.backlog[:6]:
            pulled = client.post(f"/api/v1/items/{item_id}/pull", headers=headers)
            assert pulled.status_code == 200, pulled.text
            data = stream.next_data(timeout=10)
            assert data is not None, f"no live message for the pull of item {item_id}"
            answered_by = eventually(
                lambda i=item_id: site.nginx.upstreams_for(f"POST /api/v1/items/{i}/pull"),
                lambda c: bool(c),
            )
            if holder.address not in answered_by:
                crossed.append(item_id)
                break
        stream_client.close()
    assert crossed, "every pull went to the process holding the stream"


def test_the_client_address_and_https_are_believed_from_nginx_only(site: Site) -> None:
    proxied, direct = (f"proxied{n}@example.org" for n in (0, 1))
    # Through nginx: it replaces the client's forged X-Forwarded-For with the real address.
    with site.nginx.client(local_address=CLIENT_ADDRESS) as client:
        token(client, proxied, headers=FORGED)
        page = client.get("/login")
        assert page.status_code == 200
        assert page.headers["strict-transport-security"].startswith("max-age=")
        assert "secure" in cookie_flags(page, "flowboard_preauth")
        answer = client.post(
            "/login",
            data={
                "email": proxied,
                "password": PASSWORD,
                "csrf_token": form_token(page.text),
                "next": "/me",
            },
            headers={"Origin": site.nginx.base_url},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        assert "secure" in cookie_flags(answer, "flowboard_session")
    assert sign_in_addresses(site.database, proxied) == [CLIENT_ADDRESS, CLIENT_ADDRESS]

    # Straight to an app process from another address: the same headers are not believed.
    app = site.apps[0]
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS)
    with httpx.Client(base_url=f"http://{app.address}", transport=transport) as client:
        token(client, direct, headers=FORGED)
        page = client.get("/login", headers=FORGED)
        assert "strict-transport-security" not in page.headers
        assert "secure" not in cookie_flags(page, "flowboard_preauth")
    assert sign_in_addresses(site.database, direct) == [CLIENT_ADDRESS]


def test_a_stopped_process_costs_no_request(site: Site) -> None:
    # Last in the module: it stops one of the two processes.
    gone, left = site.apps
    gone.stop()
    with site.nginx.client() as client:
        headers = token(client, site.seed.user("member2").email)
        for _ in range(6):
            assert client.get("/api/v1/me", headers=headers).status_code == 200
        # A write too: the refused connection is retried on the other process, once.
        item_id = site.backlog[-1]
        pulled = client.post(f"/api/v1/items/{item_id}/pull", headers=headers)
        assert pulled.status_code == 200, pulled.text
    answered = eventually(
        lambda: site.nginx.upstreams_for(f"POST /api/v1/items/{item_id}/pull"),
        lambda c: bool(c),
    )
    assert list(answered) in ([left.address], [f"{gone.address}, {left.address}"]), answered
