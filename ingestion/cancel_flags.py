"""Cancel flags: one Redis key per upload that a cancel sets and the running load's
supervisor polls. Redis answers in well under a millisecond, so the load sees a cancel within
a tenth of a second without touching its busy database; the upload's CANCELLING status is
the slower fallback when Redis is unreachable."""

from __future__ import annotations

import logging

import redis
from django.conf import settings

log = logging.getLogger(__name__)

# A flag outlives any load it could concern; it expires so a lost clear leaves nothing behind.
FLAG_SECONDS = 86400

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    return _client


def _key(upload_id) -> str:
    return f"intake:cancel:{upload_id}"


def set_cancel_flag(*, upload_id) -> None:
    try:
        _redis().set(_key(upload_id), "1", ex=FLAG_SECONDS)
    except redis.RedisError:
        log.warning("Redis unreachable; upload %s will see its cancel through the database", upload_id)


def clear_cancel_flag(*, upload_id) -> None:
    try:
        _redis().delete(_key(upload_id))
    except redis.RedisError:
        log.debug("could not clear the cancel flag of upload %s", upload_id, exc_info=True)


def cancel_flagged(*, upload_id) -> bool:
    """Whether a cancel is flagged; False when Redis cannot say (the caller also watches the
    database)."""
    try:
        return bool(_redis().exists(_key(upload_id)))
    except redis.RedisError:
        return False
