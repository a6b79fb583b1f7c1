"""Limits that only a real server shows: daphne (started as in production) refuses oversize
request bodies while they arrive, and its websockets survive floods and malformed messages.
The limits are set small through the environment, as an operator would."""

from __future__ import annotations

import json
import select
import socket
import time

import psutil
import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from scripts.processes import Daphne

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024
UPLOAD_MAX = 1 * MB
REQUEST_MAX = 256 * 1024
BURST = 5


@pytest.fixture(scope="module")
def daphne(service_env, tmp_path_factory):
    env = dict(
        service_env,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        UPLOAD_MAX_BYTES=str(UPLOAD_MAX),
        REQUEST_MAX_BYTES=str(REQUEST_MAX),
        REALTIME_MESSAGES_PER_SECOND="0.1",
        REALTIME_MESSAGE_BURST=str(BURST),
    )
    server = Daphne(env, tmp_path_factory.mktemp("daphne-limits") / "daphne.log")
    server.start()
    yield server
    server.stop()


def rss(server: Daphne) -> int:
    return psutil.Process(server.process.pid).memory_info().rss


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def send_body(port: int, path: str, *, total: int, chunked: bool, cookie: str = "") -> tuple[str, str, int]:
    """POST `total` bytes, 1 MB at a time, stopping as soon as the server answers. Returns the
    status line, the answer's body and how many body bytes went out."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/octet-stream"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    if cookie:
        head.append(f"Cookie: {cookie}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    chunk = b"x" * MB
    sent = 0
    try:
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            piece = chunk[: min(MB, total - sent)]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        answer += data
        if b"\r\n\r\n" in answer:
            header, _, body = answer.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1])
                for line in header.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                break
    sock.close()
    header, _, body = answer.partition(b"\r\n\r\n")
    return header.split(b"\r\n")[0].decode(), body.decode(), sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_anonymous_300_mb_body_is_refused_with_413_and_memory_stays_low(daphne, chunked):
    before = rss(daphne)
    status, body, sent = send_body(daphne.port, "/accounts/login/", total=300 * MB, chunked=chunked)
    assert status == "HTTP/1.1 413 Content Too Large"
    assert body == "Request refused: the body is larger than 0.2 MB, the most /accounts/login/ accepts.\n"
    assert sent < 300 * MB  # refused while the body was still arriving
    grown = rss(daphne) - before
    assert grown < 30 * MB, f"daphne grew by {grown / MB:.0f} MB"


def test_signed_in_upload_over_the_limit_is_refused_by_its_own_limit(daphne, user):
    before = rss(daphne)
    cookie = session_cookie(user)
    status, body, _ = send_body(daphne.port, "/uploads/", total=300 * MB, chunked=False, cookie=cookie)
    assert status == "HTTP/1.1 413 Content Too Large"
    assert body == (
        "Request refused: the body is larger than 2.0 MB. A file may be at most 1.0 MB; "
        "send several files in separate requests.\n"
    )
    assert rss(daphne) - before < 30 * MB


def test_a_body_within_the_limit_reaches_django(daphne):
    # No CSRF token: Django itself answers 403, which proves the body got through the guard.
    status, body, sent = send_body(daphne.port, "/accounts/login/", total=100_000, chunked=True)
    assert status == "HTTP/1.1 403 Forbidden"
    assert sent == 100_000


# --- websockets ---------------------------------------------------------------------------------


def open_socket(daphne, user):
    return ws_connect(
        f"ws://127.0.0.1:{daphne.port}/ws/uploads/",
        origin=f"http://127.0.0.1:{daphne.port}",
        additional_headers={"Cookie": session_cookie(user)},
        open_timeout=10,
        max_size=None,
    )


def read_until_closed(ws) -> list[str]:
    replies = []
    try:
        while True:
            replies.append(ws.recv(timeout=10))
    except ConnectionClosed:
        return replies


def test_a_message_flood_closes_the_socket_with_4429_and_says_why(daphne, user):
    with open_socket(daphne, user) as ws:
        assert 'id="ws-snapshot"' in ws.recv(timeout=10)
        for _ in range(100):
            try:
                ws.send(json.dumps({"action": "explode"}))
            except ConnectionClosed:  # the server closed it before the flood ended: the point
                break
        replies = read_until_closed(ws)
    assert ws.close_code == 4429
    # The first BURST messages are answered; then the reason, before the close.
    assert sum("Unknown action" in reply for reply in replies) == BURST
    assert "Too many messages: at most 0.1 a second (bursts of 5)" in replies[-1]


def test_deeply_nested_message_is_answered_and_the_socket_lives(daphne, user):
    with open_socket(daphne, user) as ws:
        ws.recv(timeout=10)
        ws.send("[" * 200_000)  # 200 KB of nesting: once an uncaught RecursionError
        assert "The message is 200,000 characters; the most is 8,192." in ws.recv(timeout=10)
        ws.send("[" * 8000)  # within the size cap, still far deeper than json allows
        assert "The message is not valid JSON." in ws.recv(timeout=10)
        ws.send(b"\x00binary")
        assert "Messages must be JSON text, not binary." in ws.recv(timeout=10)
        ws.send(json.dumps({"action": "sync", "upload_ids": []}))
        ws.send(json.dumps({"action": "nope"}))
        assert "Unknown action" in ws.recv(timeout=10)  # still open and answering
