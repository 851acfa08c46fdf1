"""Request limits through a real uvicorn (issue 7, point 10): a 1 MB request header answers
431 and a chunked body over the limit answers 413 like a sized one, each as a clean HTTP
answer the client reads (never a reset), on both databases.

`flowboard serve` runs uvicorn with httptools (app/cli.py), which hands even a 1 MB header
to the app, so the app's own limit (settings.max_header_bytes) answers. uvicorn's h11
parser refuses a header that size before the app with a 400 of its own.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI

from app.db.session import Database
from app.main import create_app
from tests.pgcluster import free_port

ONE_MB = 1024 * 1024


@contextmanager
def serve(app: FastAPI, *, http: str = "httptools") -> Iterator[int]:
    """`app` on a real uvicorn (127.0.0.1, a free port) until the block ends; yields the port."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=http, log_level="warning", timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def raw_exchange(port: int, request: bytes) -> bytes:
    """Sends `request` on a new socket, then reads until the server closes it. A reset on the
    way (the answer lost) fails the test with ConnectionResetError."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(request)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@pytest.fixture
def port(database: Database) -> Iterator[int]:
    with serve(create_app(database, listen=False)) as found:
        yield found


@pytest.mark.parametrize("path", ["/api/v1/me", "/login"])
def test_a_one_megabyte_header_is_431(port: int, path: str) -> None:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ".encode()
        + b"a" * ONE_MB
        + b"\r\n\r\n"
    )
    status, headers, body = split_response(raw_exchange(port, request))
    assert status == 431
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["type"].endswith("/problems/header-too-large")
    assert problem["status"] == 431


def test_headers_under_the_limit_are_served(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", "/api/v1/me", headers={"X-Padding": "a" * 8 * 1024})
        response = conn.getresponse()
        response.read()
        assert response.status == 401  # through the limit to the route: not signed in
    finally:
        conn.close()


def test_many_headers_adding_up_over_the_limit_are_431(port: int) -> None:
    lines = b"".join(b"X-Padding-%d: %s\r\n" % (n, b"a" * 1000) for n in range(40))
    request = b"GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\n" + lines + b"\r\n"
    status, _, _ = split_response(raw_exchange(port, request))
    assert status == 431


def post_big(
    conn: http.client.HTTPConnection, path: str, size: int, *, chunked: bool
) -> tuple[int, dict[str, str], bytes]:
    """A JSON body to the API, a form to a page, of about `size` bytes."""
    if path.startswith("/api/"):
        payload = b'{"title": "' + b"a" * size + b'"}'
        headers = {"Content-Type": "application/json"}
    else:
        payload = b"email=a%40example.org&password=" + b"a" * size
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if chunked:

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(payload), 64 * 1024):
                yield payload[start : start + 64 * 1024]

        conn.request("POST", path, body=chunks(), headers=headers, encode_chunked=True)
    else:
        conn.request("POST", path, body=payload, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


@pytest.mark.parametrize("path", ["/api/v1/boards/1/items", "/login"])
def test_a_chunked_body_over_the_limit_is_413_like_a_sized_one(port: int, path: str) -> None:
    answers = []
    for chunked in (False, True):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            status, headers, body = post_big(conn, path, 2 * ONE_MB, chunked=chunked)
            answers.append((status, headers["content-type"], body))
            # The connection is still usable: the next request on it is answered.
            conn.request("GET", "/healthz")
            again = conn.getresponse()
            again.read()
            assert again.status == 200
        finally:
            conn.close()
    sized, chunked_answer = answers
    assert sized == chunked_answer
    assert sized[0] == 413 and sized[1] == "application/problem+json"
    assert json.loads(sized[2])["type"].endswith("/problems/body-too-large")


def test_a_chunked_body_under_the_limit_is_read(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        status, _, _ = post_big(conn, "/api/v1/boards/1/items", 100 * 1024, chunked=True)
        assert status == 401  # read in full, then refused for want of a token
    finally:
        conn.close()
