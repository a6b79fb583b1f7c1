"""Request body limits, enforced before a body is held in memory.

Daphne (through Twisted) receives a whole request body, spooling it to a temporary file,
before the application sees the request, then hands it over as in-memory chunks all at
once: an anonymous 5 GB POST would cost 5 GB of RAM before Django could refuse it. So the
limit is applied twice:

- `install_daphne_guard()` (called by config/asgi.py when daphne serves it) checks the
  declared `Content-Length` as soon as the headers are in, and counts the bytes of a body
  without one as they arrive; over the limit, it answers 413 and drops the rest.
- `BodyLimitMiddleware` does the same at the ASGI level, for any other server.

The limit is `UPLOAD_MAX_BYTES` plus a margin for a signed-in POST to the upload endpoint,
and `REQUEST_MAX_BYTES` (1 MB) for everything else. "Signed in" here means the request
carries a session cookie: checking the session needs the database, which the network
thread must not wait on; a forged cookie gets no further than the upload limit, and the
view still refuses anonymous requests. The proxy's own limit (README) stays mandatory."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie

from django.conf import settings

log = logging.getLogger(__name__)

# Multipart boundaries, part headers and the small form fields beside the file.
UPLOAD_MARGIN_BYTES = 1024 * 1024
UPLOAD_PATH = "/uploads/"
# After a 413, the rest of a body that is still arriving is read and thrown away this long,
# so the client reads the answer instead of a connection reset.
DRAIN_SECONDS = 2.0


def _megabytes(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


def body_limit(*, method: str, path: str, signed_in: bool) -> int:
    """The most bytes a request body may have."""
    if signed_in and method.upper() == "POST" and path == UPLOAD_PATH:
        return settings.UPLOAD_MAX_BYTES + UPLOAD_MARGIN_BYTES
    return settings.REQUEST_MAX_BYTES


def refusal_message(*, limit: int, path: str) -> str:
    if path == UPLOAD_PATH:
        return (
            f"Request refused: the body is larger than {_megabytes(limit)}. A file may be at most "
            f"{_megabytes(settings.UPLOAD_MAX_BYTES)}; send several files in separate requests.\n"
        )
    return f"Request refused: the body is larger than {_megabytes(limit)}, the most {path} accepts.\n"


def has_session_cookie(cookie_headers: list[bytes] | list[str] | None) -> bool:
    for header in cookie_headers or []:
        text = header.decode("latin-1") if isinstance(header, bytes) else header
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(text)
        except Exception:  # noqa: BLE001 - a malformed cookie header is no session
            continue
        if cookie.get(settings.SESSION_COOKIE_NAME) and cookie[settings.SESSION_COOKIE_NAME].value:
            return True
    return False


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """ASGI middleware: 413 for a declared or streamed body over the limit, before the app reads it."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        cookies = [value for name, value in headers if name.lower() == b"cookie"]
        path = scope.get("path", "")
        limit = body_limit(method=scope.get("method", "GET"), path=path, signed_in=has_session_cookie(cookies))
        declared = next((value for name, value in headers if name.lower() == b"content-length"), None)
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False  # the server answers a malformed length itself
            if too_large:
                await self._refuse(send, limit=limit, path=path)
                return

        received = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, limit=limit, path=path)

    @staticmethod
    async def _refuse(send: Callable, *, limit: int, path: str) -> None:
        body = refusal_message(limit=limit, path=path).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install_daphne_guard() -> None:
    """Teach daphne's request class to refuse an oversize body while it arrives. Idempotent."""
    from daphne.http_protocol import WebRequest

    if getattr(WebRequest, "_intake_guarded", False):
        return
    original_got_length = WebRequest.gotLength
    original_chunk = WebRequest.handleContentChunk
    original_process = WebRequest.process

    def refuse(request) -> None:
        from twisted.internet import reactor  # daphne's, installed before the application loads

        if request._intake_refused:
            return
        request._intake_refused = True
        path = request._intake_path
        body = refusal_message(limit=request._intake_limit, path=path).encode()
        log.warning("Refused a request body over %d bytes for %s from %s", request._intake_limit, path, request.client)
        # No "100 Continue" after this: a client that waits for it never sends the body.
        request.requestHeaders.removeHeader(b"Expect")
        transport = request.channel.transport
        transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n" + body
        )
        reactor.callLater(DRAIN_SECONDS, transport.loseConnection)

    def gotLength(self, length):  # noqa: N802 - Twisted's name
        command = getattr(self.channel, "_command", b"GET").decode("latin-1")
        raw_path = getattr(self.channel, "_path", b"/").split(b"?", 1)[0]
        self._intake_path = raw_path.decode("latin-1")
        self._intake_limit = body_limit(
            method=command,
            path=self._intake_path,
            signed_in=has_session_cookie(self.requestHeaders.getRawHeaders(b"cookie")),
        )
        self._intake_received = 0
        self._intake_refused = False
        # Daphne never reads Twisted's parsed form arguments: parsing a multipart body here
        # would read the whole file into memory a second time.
        self._parsePOSTFormSubmission = False
        if length is not None and length > self._intake_limit:
            original_got_length(self, 0)  # nothing of this body will be kept
            refuse(self)
            return
        original_got_length(self, length)

    def handleContentChunk(self, data):  # noqa: N802 - Twisted's name
        if self._intake_refused:
            return
        self._intake_received += len(data)
        if self._intake_received > self._intake_limit:
            self.content.truncate(0)
            refuse(self)
            return
        original_chunk(self, data)

    def process(self):
        if getattr(self, "_intake_refused", False):
            self.channel.transport.loseConnection()
            return None
        return original_process(self)

    WebRequest.gotLength = gotLength
    WebRequest.handleContentChunk = handleContentChunk
    WebRequest.process = process
    WebRequest._intake_guarded = True
