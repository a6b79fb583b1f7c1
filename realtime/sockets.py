"""How many websockets each user holds open, counted in Redis across every daphne process.

A socket registers on connect and leaves on disconnect; it also renews its entry every
RENEW_SECONDS, so the entry of a socket whose process died without saying goodbye counts
no more after STALE_SECONDS. If Redis cannot be reached the socket is let in: the cap
protects the server, it must not lock users out."""

from __future__ import annotations

import logging
import time
from typing import cast

import redis
from django.conf import settings

log = logging.getLogger(__name__)

RENEW_SECONDS = 60.0
STALE_SECONDS = 3 * RENEW_SECONDS

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    return _client


def _key(user_id) -> str:
    config = cast(dict, settings.CHANNEL_LAYERS["default"]["CONFIG"])  # the channel layer's namespace
    prefix = config.get("prefix", "intake")
    return f"{prefix}:sockets:user:{user_id}"


def register(*, user_id, channel_name: str) -> bool:
    """Count this socket for its user; False (and not counted) if the user already has the
    most sockets allowed."""
    key, now = _key(user_id), time.time()
    try:
        with _redis().pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - STALE_SECONDS)
            pipe.zadd(key, {channel_name: now})
            pipe.zcard(key)
            pipe.expire(key, int(STALE_SECONDS) * 2)
            count = pipe.execute()[2]
        if count > settings.REALTIME_MAX_SOCKETS_PER_USER:
            _redis().zrem(key, channel_name)
            return False
    except redis.RedisError:
        log.warning("Redis unreachable: socket of user %s admitted without counting", user_id)
    return True


def renew(*, user_id, channel_name: str) -> None:
    try:
        _redis().zadd(_key(user_id), {channel_name: time.time()}, xx=True)
    except redis.RedisError:
        pass


def unregister(*, user_id, channel_name: str) -> None:
    try:
        _redis().zrem(_key(user_id), channel_name)
    except redis.RedisError:
        pass


def count(*, user_id) -> int:
    try:
        return int(_redis().zcount(_key(user_id), time.time() - STALE_SECONDS, "+inf"))
    except redis.RedisError:
        return 0
