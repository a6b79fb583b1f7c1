"""The dashboard's and the detail page's websocket: one per page.

On connect it joins the group, then sends a snapshot, so a page that (re)connects shows
the truth whatever it missed; after that it forwards published cards. It takes two
messages from the browser: cancel an upload, and sync (resend the cards of some uploads
that changed since this socket last sent them). Every read and write goes through the same
selectors and services as the views, so the socket applies the same ownership rule.

A socket must not be able to slow the server for everyone: each one has a token bucket of
messages (over it: closed with 4429), a size cap per message, and a user may hold only so
many sockets at once. The snapshot and a sync send a bounded number of cards, and the
database reads and card rendering run on a worker thread, not on the one thread that
daphne's HTTP views share. Signing out closes the session's sockets (4401)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import timedelta
from urllib.parse import parse_qs

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django.utils.html import escape

from ingestion import selectors, services
from ingestion.cards import render_cards
from ingestion.models import Upload

from . import sockets
from .groups import DATA_GROUP, upload_group, user_group, user_sockets_group
from .signals import session_tag
from .throttle import TokenBucket

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429
RECENTLY_FINISHED = timedelta(minutes=15)


def off_thread(func):
    """Database work (and rendering) on the thread pool, with Django's connection hygiene,
    instead of the single thread every sync view of this process waits for."""
    return DatabaseSyncToAsync(func, thread_sensitive=False)


def error_fragment(message: str) -> str:
    text = escape(message)
    return f'<div id="ws-error" class="ws-error" data-error="{text}">{text}</div>'


def more_fragment(more: int) -> str:
    """How many unfinished uploads the snapshot left out (the page links to the list)."""
    text = f"and {more:,} more unfinished upload{'s' if more != 1 else ''}" if more else ""
    return f'<div id="ws-more" data-more="{more}">{text}</div>'


def _render(uploads) -> tuple[str, dict[str, int]]:
    return render_cards(uploads), {str(u.pk): u.seq for u in uploads}


@off_thread
def _snapshot(user, upload_id) -> tuple[str, dict[str, int]]:
    """The cards a page needs on (re)connect: the user's unfinished uploads, newest first, and
    those that ended lately (a page that was away while they ended must see how), at most
    REALTIME_SNAPSHOT_MAX in all; then how many unfinished ones were left out."""
    if upload_id:
        upload = selectors.upload_for_user(user=user, upload_id=upload_id)
        return _render([upload] if upload else [])
    limit = settings.REALTIME_SNAPSHOT_MAX
    active_uploads = selectors.active_uploads_for_user(user=user)
    active = list(active_uploads[:limit])
    more = active_uploads.count() - len(active) if len(active) == limit else 0
    ended: list[Upload] = []
    if len(active) < limit:
        recent = timezone.now() - RECENTLY_FINISHED
        ended = list(
            selectors.uploads_for_user(user=user).filter(status__in=Upload.FINISHED_STATUSES, finished_at__gte=recent)[
                : limit - len(active)
            ]
        )
    html, seqs = _render(active + ended)
    if not html:
        html = '<div id="ws-snapshot"></div>'
    return html + "\n" + more_fragment(more), seqs


@off_thread
def _changed_cards(user, ids: list[uuid.UUID], sent: dict[str, int]) -> tuple[str, dict[str, int]]:
    """The cards of these uploads (own only) whose state differs from the one this socket
    sent last: one small query when nothing changed, which is the usual case."""
    owned = selectors.uploads_for_user(user=user).filter(pk__in=ids)
    changed = [pk for pk, seq in owned.values_list("pk", "seq") if sent.get(str(pk), -1) < seq]
    if not changed:
        return "", {}
    return _render(list(owned.filter(pk__in=changed)))


class UploadsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.watch_groups: list[str] = []
        self.registered = self.closing = False
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.sent_seq: dict[str, int] = {}
        self.bucket = TokenBucket(rate=settings.REALTIME_MESSAGES_PER_SECOND, burst=settings.REALTIME_MESSAGE_BURST)
        session = self.scope.get("session")
        self.session = session_tag(getattr(session, "session_key", None))
        query = parse_qs(self.scope.get("query_string", b"").decode())
        if query.get("watch", [None])[0] == "data":
            # An analytics page: told only that new data arrived; it sends nothing. It joins
            # the user's sockets group too, so signing out closes it like an upload page.
            self.watch_groups = [DATA_GROUP, user_sockets_group(user.pk)]
            for group in self.watch_groups:
                await self.channel_layer.group_add(group, self.channel_name)
            await self.accept()
            return
        upload_id = query.get("upload", [None])[0]
        if upload_id:
            upload = await off_thread(selectors.upload_for_user)(user=user, upload_id=upload_id[:64])
            if upload is None:
                await self.accept()
                await self.close(code=CLOSE_NOT_FOUND)
                return
            groups = [upload_group(upload.pk)]
        else:
            groups = [user_group(user.pk)]
        if not await off_thread(sockets.register)(user_id=user.pk, channel_name=self.channel_name):
            await self.refuse(
                f"You have {settings.REALTIME_MAX_SOCKETS_PER_USER} live pages open, the most allowed; "
                "close some tabs and reload."
            )
            return
        self.registered = True
        self.watch_groups = [*groups, user_sockets_group(user.pk)]
        for group in self.watch_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.renewer = asyncio.ensure_future(self.renew_registration())
        # Joined first, snapshot second: nothing can fall between them.
        html, seqs = await _snapshot(user, upload_id)
        self.sent_seq.update(seqs)
        await self.send(text_data=html)

    async def refuse(self, reason: str, *, accepted: bool = False) -> None:
        """Close with 4429. Daphne drops a close frame's reason, so the page reads it from the
        error fragment sent just before."""
        self.closing = True
        if not accepted:
            await self.accept()
        await self.send(text_data=error_fragment(reason))
        await self.close(code=CLOSE_TOO_MANY, reason=reason[:120])

    async def renew_registration(self) -> None:
        while True:
            await asyncio.sleep(sockets.RENEW_SECONDS)
            await off_thread(sockets.renew)(user_id=self.user.pk, channel_name=self.channel_name)

    async def disconnect(self, code: int) -> None:
        renewer = getattr(self, "renewer", None)
        if renewer:
            renewer.cancel()
        if self.registered:
            self.registered = False
            await off_thread(sockets.unregister)(user_id=self.user.pk, channel_name=self.channel_name)
        for group in self.watch_groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        if not self.bucket.take():
            await self.refuse(
                f"Too many messages: at most {settings.REALTIME_MESSAGES_PER_SECOND:g} a second "
                f"(bursts of {settings.REALTIME_MESSAGE_BURST}). Reload the page to reconnect.",
                accepted=True,
            )
            return
        try:
            await self.handle(text_data, bytes_data)
        except Exception:  # noqa: BLE001 - one bad message must not take the socket down
            log.exception("Websocket message of user %s failed", self.user.pk)
            await self.send(text_data=error_fragment("The server could not handle that message."))

    async def handle(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if text_data is None:
            await self.send(text_data=error_fragment("Messages must be JSON text, not binary."))
            return
        if len(text_data) > settings.REALTIME_MAX_MESSAGE_BYTES:
            await self.send(
                text_data=error_fragment(
                    f"The message is {len(text_data):,} characters; the most is {settings.REALTIME_MAX_MESSAGE_BYTES:,}."
                )
            )
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
            await self.send(text_data=error_fragment("The message is not valid JSON."))
            return
        if not isinstance(message, dict):
            await self.send(text_data=error_fragment("The message must be a JSON object."))
            return
        action = message.get("action")
        if action == "cancel":
            await self.cancel(message.get("upload_id"))
        elif action == "sync":
            await self.sync(message.get("upload_ids"))
        else:
            await self.send(text_data=error_fragment(f"Unknown action {str(action)[:40]!r}."))

    async def cancel(self, upload_id) -> None:
        if not isinstance(upload_id, str):
            upload_id = None
        upload = await off_thread(selectors.upload_for_user)(user=self.user, upload_id=upload_id)
        if upload is None:
            await self.send(text_data=error_fragment("That upload does not exist, or is not yours."))
            return
        try:
            # A write, and it publishes: on the sync thread, like the view that does the same.
            upload = await database_sync_to_async(services.cancel_upload)(upload=upload, by=self.user)
        except PermissionDenied:
            await self.send(text_data=error_fragment("That upload does not exist, or is not yours."))
            return
        html, seqs = await off_thread(_render)([upload])
        self.sent_seq.update(seqs)
        await self.send(text_data=html)

    async def sync(self, upload_ids) -> None:
        if not isinstance(upload_ids, list) or not all(isinstance(i, str) for i in upload_ids):
            await self.send(text_data=error_fragment("sync needs upload_ids, a list of ids."))
            return
        ids = []
        for value in upload_ids[: settings.REALTIME_SYNC_MAX]:
            try:
                ids.append(uuid.UUID(value[:64]))
            except ValueError:
                continue
        if not ids:
            return
        html, seqs = await _changed_cards(self.user, ids, dict(self.sent_seq))
        if html:
            self.sent_seq.update(seqs)
            await self.send(text_data=html)

    async def upload_card(self, event: dict) -> None:
        seq = event.get("seq")
        key = event.get("upload_id")
        if key and isinstance(seq, int):
            self.sent_seq[key] = max(seq, self.sent_seq.get(key, 0))
        await self.send(text_data=event["html"])

    async def session_ended(self, event: dict) -> None:
        if event.get("session") in (None, self.session):
            self.closing = True
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def data_changed(self, event: dict) -> None:
        await self.send(text_data=event["html"])
