"""The ASGI body-limit middleware (what protects servers other than daphne, whose own guard
the integration tests drive): a declared or streamed body over the limit gets 413 before
the application reads it."""

from __future__ import annotations

import pytest
from asgiref.testing import ApplicationCommunicator

from config.body_limit import BodyLimitMiddleware, body_limit, has_session_cookie


async def reading_app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"read {len(body)}".encode()})


def scope(path="/accounts/login/", headers=()):
    return {"type": "http", "method": "POST", "path": path, "headers": list(headers)}


async def run(scope_, chunks):
    app = ApplicationCommunicator(BodyLimitMiddleware(reading_app), scope_)
    for index, chunk in enumerate(chunks):
        await app.send_input({"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1})
    start = await app.receive_output(timeout=2)
    body = await app.receive_output(timeout=2)
    return start["status"], body["body"].decode()


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.REQUEST_MAX_BYTES = 1000
    settings.UPLOAD_MAX_BYTES = 5000


async def test_declared_length_over_the_limit_is_refused_unread():
    status, body = await run(scope(headers=[(b"content-length", b"1001")]), [b""])
    assert (status, body) == (
        413,
        "Request refused: the body is larger than 0.0 MB, the most /accounts/login/ accepts.\n",
    )


async def test_streamed_body_over_the_limit_is_refused():
    status, _ = await run(scope(), [b"x" * 600, b"x" * 600])
    assert status == 413


async def test_body_within_the_limit_passes():
    assert await run(scope(), [b"x" * 600, b"x" * 400]) == (200, "read 1000")


def test_limits_by_path_method_and_session():
    assert body_limit(method="POST", path="/uploads/", signed_in=True) == 5000 + 1024 * 1024
    assert body_limit(method="POST", path="/uploads/", signed_in=False) == 1000
    assert body_limit(method="POST", path="/accounts/login/", signed_in=True) == 1000
    assert has_session_cookie([b"csrftoken=a; sessionid=abc"]) is True
    assert has_session_cookie([b"csrftoken=a; sessionid="]) is False
    assert has_session_cookie(None) is False
