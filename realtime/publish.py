"""Publishing upload states to the pages that watch them.

Called from sync code: the Celery task after every batch, services after a cancel or a
retry (in a view, or in the consumer through database_sync_to_async). Each process keeps
ONE event loop in a daemon thread for all its publishing, so the channel layer keeps one
connection pool; `async_to_sync(group_send)` per event would build and tear down a loop
each time, which channels-redis 4 answers with "Event loop is closed".

Progress is coalesced: at most one fragment per upload per REALTIME_MIN_INTERVAL, and the
latest state is always the one that goes out. A final state goes at once, and again a
second later: channels-redis drops messages silently when a channel is full, and a page
must still learn that an upload ended. Each fragment carries the upload's `seq`, so a
duplicate or a late, older fragment never overwrites a newer state in the browser."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import TimeoutError as FutureTimeout

from celery.exceptions import SoftTimeLimitExceeded
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings

from ingestion.cards import render_card

from .groups import DATA_GROUP, upload_group, user_group

log = logging.getLogger(__name__)

FINAL_RESEND_SECONDS = 1.0
FINAL_WAIT_SECONDS = 2.0
# A Redis that hangs instead of refusing must not let sends pile up on the loop.
SEND_TIMEOUT_SECONDS = 5.0


def card_message(upload) -> dict:
    return {
        "type": "upload.card",
        "upload_id": str(upload.pk),
        "seq": upload.seq,
        "status": str(upload.status),
        "html": render_card(upload),
    }


def data_changed_message(upload) -> dict:
    """For open analytics pages: new data was loaded (no file name: the data is shared, the
    upload is its owner's)."""
    return {
        "type": "data.changed",
        "upload_id": f"data-{upload.pk}",
        "seq": upload.seq,
        "status": str(upload.status),
        "html": f'<div id="data-changed" data-changed="{upload.seq}"></div>',
    }


def data_refreshed_message(*, seq: int) -> dict:
    """For open analytics pages: the summaries they read were refreshed (after a load or a
    revert), so a reload shows the new figures."""
    return {
        "type": "data.changed",
        "upload_id": "data-refreshed",
        "seq": seq,
        "status": "refreshed",
        "html": f'<div id="data-changed" data-changed="{seq}"></div>',
    }


class _Publisher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Touched only on the loop's thread:
        self._last_sent: dict[str, float] = {}
        self._pending: dict[str, tuple[dict, list[str]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def reset(self) -> None:
        """After a fork the parent's loop thread does not exist in the child."""
        self._lock = threading.Lock()
        self._loop = self._thread = None
        self._last_sent, self._pending, self._timers = {}, {}, {}

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="realtime-publisher", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def publish(self, message: dict, groups: list[str], *, final: bool) -> None:
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._publish(message, groups, final), loop)
        if final and not _in_event_loop():  # a final state is worth a short wait; progress is fire-and-forget
            try:
                future.result(timeout=FINAL_WAIT_SECONDS)
            except FutureTimeout:
                log.warning("Publishing the final state of upload %s timed out", message["upload_id"])

    async def _publish(self, message: dict, groups: list[str], final: bool) -> None:
        loop = asyncio.get_running_loop()
        key = message["upload_id"]
        now = loop.time()
        if final:
            timer = self._timers.pop(key, None)
            if timer:
                timer.cancel()
            self._pending.pop(key, None)
            self._last_sent.pop(key, None)
            await self._send(message, groups)
            loop.call_later(FINAL_RESEND_SECONDS, lambda: asyncio.ensure_future(self._send(message, groups)))
            return
        interval = settings.REALTIME_MIN_INTERVAL
        last = self._last_sent.get(key)
        if key not in self._timers and (last is None or now - last >= interval):
            self._last_sent[key] = now
            await self._send(message, groups)
            return
        self._pending[key] = (message, groups)
        if key not in self._timers:
            wait = 0.0 if last is None else max(0.0, last + interval - now)
            self._timers[key] = loop.call_later(wait, self._flush, key)

    def _flush(self, key: str) -> None:
        self._timers.pop(key, None)
        item = self._pending.pop(key, None)
        if item:
            self._last_sent[key] = asyncio.get_running_loop().time()
            asyncio.ensure_future(self._send(*item))

    async def _send(self, message: dict, groups: list[str]) -> None:
        layer = get_channel_layer()

        async def send_to(group: str) -> None:
            try:
                await asyncio.wait_for(layer.group_send(group, message), SEND_TIMEOUT_SECONDS)
            except Exception:  # noqa: BLE001 - Redis away: the row stays the truth
                log.warning("Could not send upload %s to %s", message["upload_id"], group, exc_info=True)

        # The groups at once: each group_send is four Redis round trips.
        await asyncio.gather(*(send_to(group) for group in groups))


def _in_event_loop() -> bool:
    """Blocking a running loop (async code calling us directly) would stall every socket on it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_publisher = _Publisher()


def _after_fork() -> None:
    _publisher.reset()
    channel_layers.backends.clear()  # the parent's connection pools are not ours


os.register_at_fork(after_in_child=_after_fork)


def publish_upload(upload, *, final: bool | None = None) -> None:
    """Send the upload's card to its owner's pages and its detail pages. Never raises."""
    try:
        final = upload.is_finished if final is None else final
        message = card_message(upload)
        _publisher.publish(message, [user_group(upload.owner_id), upload_group(upload.pk)], final=final)
        if final and upload.status == "completed":
            _publisher.publish(data_changed_message(upload), [DATA_GROUP], final=True)
    except SoftTimeLimitExceeded:
        raise  # the task's time is up: that must reach the runner, not be logged away
    except Exception:  # noqa: BLE001 - a lost event must never fail a load or a request
        log.warning("Could not publish upload %s", getattr(upload, "pk", None), exc_info=True)


def publish_data_changed(*, seq: int) -> None:
    """Tell the open analytics pages that their figures changed. Never raises."""
    try:
        _publisher.publish(data_refreshed_message(seq=seq), [DATA_GROUP], final=True)
    except Exception:  # noqa: BLE001 - a lost notice must never fail the refresh
        log.warning("Could not announce the analytics refresh", exc_info=True)
