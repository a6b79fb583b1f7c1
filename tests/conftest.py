"""Shared fixtures. Integration and end-to-end tests run against real services: a real
Celery worker process on the test database, the real Redis and the real channel layer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def _media_root(settings, media_root):
    settings.MEDIA_ROOT = str(media_root)


def database_url_for(settings_dict: dict) -> str:
    """The URL of the database the tests run on, for processes the tests start."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


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


def _wait_for_worker(app, deadline: float) -> None:
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return
    raise RuntimeError("The Celery worker did not answer in time")


@pytest.fixture(scope="session")
def worker(service_env, tmp_path_factory):
    """One real Celery worker process (prefork, 2 children) for the whole session."""
    from config.celery import app

    app.control.purge()
    log_file = tmp_path_factory.mktemp("worker") / "worker.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "-E",
                "-l",
                "info",
                "-c",
                "2",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=service_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_worker(app, time.monotonic() + 60)
            yield process
        finally:
            stop_process(process)
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


def wait_for_upload(upload, *, timeout: float = 120, statuses=None):
    """Wait until an upload reaches a finished state (or one of `statuses`); return it fresh.
    A time-out here is a hang, not a speed check."""
    from ingestion.models import Upload

    statuses = set(statuses or Upload.FINISHED_STATUSES)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        upload.refresh_from_db()
        if upload.status in statuses:
            return upload
        time.sleep(0.05)
    raise AssertionError(f"upload {upload.pk} stuck in {upload.status} ({upload.processed_rows}/{upload.total_rows})")


def pytest_collection_modifyitems(config, items):
    """Browser tests last: Playwright's sync API holds an event loop in the main thread for
    as long as the browser lives, and asyncio tests cannot run beside it."""
    items.sort(key=lambda item: "/tests/e2e/" in str(item.fspath))
