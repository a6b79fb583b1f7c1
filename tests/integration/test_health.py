"""/healthz against the real services, and with them really unreachable (a port where
nothing listens)."""

from __future__ import annotations

import socket

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: connections are refused


def test_healthy_with_database_redis_broker_and_a_worker(live_worker):
    response = Client().get("/healthz")  # no sign-in
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "broker": True,
        "workers": True,
    }
    assert body["checks"]["workers"]["answered"] == 1
    assert response["Cache-Control"].startswith("max-age=0")


def test_unreachable_redis_and_broker_answer_503_without_secrets(settings):
    port = closed_port()
    url = f"redis://:s3cret-password@127.0.0.1:{port}/0"
    settings.REDIS_URL = settings.CELERY_BROKER_URL = url
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError", "ms": body["checks"]["redis"]["ms"]}
    assert body["checks"]["broker"]["ok"] is False
    text = response.content.decode()
    assert "s3cret" not in text and str(port) not in text and "127.0.0.1" not in text
