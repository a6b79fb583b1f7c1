"""Shared fixtures. Integration and end-to-end tests run against real services: a real
Celery worker process on the test database, the real Redis and the real channel layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.processes import Worker, hostname
from tests.helpers import database_url_for, wait_until_worker_idle


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def _media_root(settings, media_root):
    settings.MEDIA_ROOT = str(media_root)


@pytest.fixture(scope="session")
def service_env(django_db_setup, django_db_blocker, media_root) -> dict[str, str]:
    """Environment for the worker and server processes: the test database, the tests' Redis."""
    from django.conf import settings
    from django.db import connection

    with django_db_blocker.unblock():
        url = database_url_for(connection.settings_dict)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        REDIS_URL=settings.REDIS_URL,
        CHANNELS_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        MEDIA_ROOT=str(media_root),
        DJANGO_DEBUG="1",
        INGEST_BATCH_ROWS=os.environ.get("TEST_INGEST_BATCH_ROWS", "1000"),
        # A killed worker's upload is taken over after 8 s instead of 30.
        INGEST_HEARTBEAT_SECONDS="1",
        INGEST_STALE_SECONDS="8",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def worker(service_env, tmp_path_factory):
    """One real Celery worker process (prefork, 2 children) for the whole session."""
    from config.celery import app

    app.control.purge()
    log_file = tmp_path_factory.mktemp("worker") / "worker.log"
    process = Worker(env=service_env, log_path=log_file, concurrency=2, name=f"test-{os.getpid()}@{hostname()}")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        if os.environ.get("SHOW_WORKER_LOG"):
            print(log_file.read_text(errors="replace"))


@pytest.fixture
def live_worker(worker, transactional_db):
    """A worker that sees the test's committed data."""
    return worker


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="alice-password-1")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="bob-password-1")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Before a test that used the worker is torn down (its database flushed), the worker
    finishes what the test left it: see wait_until_worker_idle."""
    worker = getattr(item, "funcargs", {}).get("worker")
    if worker is not None and worker.process is not None and worker.process.poll() is None:
        wait_until_worker_idle(worker)


def pytest_collection_modifyitems(config, items):
    """Browser tests last: Playwright's sync API holds an event loop in the main thread for
    as long as the browser lives, and asyncio tests cannot run beside it."""
    items.sort(key=lambda item: "/tests/e2e/" in str(item.fspath))
