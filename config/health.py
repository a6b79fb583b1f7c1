"""/healthz: is this instance able to do its work? For a load balancer or a monitor: no
sign-in, JSON, 200 when the database, Redis, the broker and at least one worker answer,
else 503. It names what failed and the kind of error, never an address or a password."""

from __future__ import annotations

import asyncio
import time

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

TIMEOUT_SECONDS = 1.0


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {}
    finally:
        connection.close()  # this check's own thread: leave no connection behind


def _redis() -> dict:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()
    return {}


def _broker() -> dict:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=TIMEOUT_SECONDS) as broker:
        broker.ensure_connection(max_retries=1, timeout=TIMEOUT_SECONDS)
    return {}


def _workers() -> dict:
    from config.celery import app

    # The first answer is enough to know the queue is served; no waiting for the rest.
    replies = app.control.ping(timeout=TIMEOUT_SECONDS, limit=1)
    if not replies:
        raise TimeoutError("no worker answered")
    return {"answered": len(replies)}


CHECKS = {"database": _database, "redis": _redis, "broker": _broker, "workers": _workers}


async def _run(check) -> dict:
    started = time.monotonic()
    try:
        details = await sync_to_async(check, thread_sensitive=False)()
        result = {"ok": True, **details}
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.monotonic() - started) * 1000)
    return result


@never_cache
@require_GET
async def healthz(request):
    results = await asyncio.gather(*(_run(check) for check in CHECKS.values()))
    checks = dict(zip(CHECKS, results))
    healthy = all(result["ok"] for result in results)
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
