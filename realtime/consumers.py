"""The dashboard's and the detail page's websocket: one per page.

On connect it joins the group, then sends a snapshot, so a page that (re)connects shows
the truth whatever it missed; after that it forwards published cards. It takes two
messages from the browser: cancel an upload, and sync (resend the current cards of some
uploads). Every read and write goes through the same selectors and services as the views,
so the socket applies the same ownership rule."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django.utils.html import escape

from ingestion import selectors, services
from ingestion.cards import render_cards
from ingestion.models import Upload

from .groups import upload_group, user_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
RECENTLY_FINISHED = timedelta(minutes=15)
MAX_SYNC = 100


def error_fragment(message: str) -> str:
    text = escape(message)
    return f'<div id="ws-error" class="ws-error" data-error="{text}">{text}</div>'


@database_sync_to_async
def _cards(uploads) -> str:
    return render_cards(uploads)


@database_sync_to_async
def _snapshot(user, upload_id) -> list[Upload]:
    if upload_id:
        upload = selectors.upload_for_user(user=user, upload_id=upload_id)
        return [upload] if upload else []
    # Unfinished uploads, and those that ended lately: a page that was away while they
    # ended must see how.
    recent = timezone.now() - RECENTLY_FINISHED
    active = list(selectors.active_uploads_for_user(user=user))
    ended = list(
        selectors.uploads_for_user(user=user).filter(status__in=Upload.FINISHED_STATUSES, finished_at__gte=recent)[:50]
    )
    return active + ended


class UploadsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.watch_groups: list[str] = []
        upload_id = parse_qs(self.scope.get("query_string", b"").decode()).get("upload", [None])[0]
        if upload_id:
            upload = await database_sync_to_async(selectors.upload_for_user)(user=user, upload_id=upload_id)
            if upload is None:
                await self.accept()
                await self.close(code=CLOSE_NOT_FOUND)
                return
            self.watch_groups = [upload_group(upload.pk)]
        else:
            self.watch_groups = [user_group(user.pk)]
        for group in self.watch_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        # Joined first, snapshot second: nothing can fall between them.
        uploads = await _snapshot(user, upload_id)
        await self.send(text_data=await _cards(uploads) if uploads else '<div id="ws-snapshot"></div>')

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "watch_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "")
        except (TypeError, ValueError):
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
        upload = await database_sync_to_async(selectors.upload_for_user)(user=self.user, upload_id=upload_id)
        if upload is None:
            await self.send(text_data=error_fragment("That upload does not exist, or is not yours."))
            return
        try:
            upload = await database_sync_to_async(services.cancel_upload)(upload=upload, by=self.user)
        except PermissionDenied:
            await self.send(text_data=error_fragment("That upload does not exist, or is not yours."))
            return
        await self.send(text_data=await _cards([upload]))

    async def sync(self, upload_ids) -> None:
        if not isinstance(upload_ids, list) or not all(isinstance(i, str) for i in upload_ids):
            await self.send(text_data=error_fragment("sync needs upload_ids, a list of ids."))
            return

        ids = []
        for value in upload_ids[:MAX_SYNC]:
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                continue
        uploads = await database_sync_to_async(list)(selectors.uploads_for_user(user=self.user).filter(pk__in=ids))
        if uploads:
            await self.send(text_data=await _cards(uploads))

    async def upload_card(self, event: dict) -> None:
        await self.send(text_data=event["html"])
