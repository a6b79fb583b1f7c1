"""Signing out closes the user's open sockets: a socket keeps the user its handshake had, so
without this one would outlive its session and could still cancel uploads."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import TimeoutError as FutureTimeout

from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from .groups import user_sockets_group

log = logging.getLogger(__name__)

SEND_WAIT_SECONDS = 2.0


def session_tag(session_key: str | None) -> str:
    """Names a session in a channel-layer message without putting its key in Redis."""
    return hashlib.sha256((session_key or "").encode()).hexdigest()[:24]


@receiver(user_logged_out)
def close_sockets_on_sign_out(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    session = getattr(request, "session", None)
    message = {"type": "session.ended", "session": session_tag(getattr(session, "session_key", None))}
    # The publisher's loop: one channel-layer connection pool per process (see publish.py).
    from .publish import _in_event_loop, _publisher

    future = asyncio.run_coroutine_threadsafe(
        get_channel_layer().group_send(user_sockets_group(user.pk), message), _publisher._ensure_loop()
    )
    if _in_event_loop():
        return
    try:
        future.result(timeout=SEND_WAIT_SECONDS)
    except (FutureTimeout, Exception):  # noqa: BLE001 - signing out must succeed without Redis
        log.warning("Could not tell the sockets of user %s that they signed out", user.pk, exc_info=True)
