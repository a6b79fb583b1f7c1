"""`make bench`: load generated purchase-order files through ONE real Celery worker into
PostgreSQL and measure, beside PostgreSQL's own COPY of the same file.

For every file (cached in bench/data/, built by ingestion.sample), on a fresh worker
(prefork, one child) warmed up by a small load:
  * COPY rows/s: psycopg `COPY ... FROM STDIN (FORMAT csv)` of the file into one plain
    table of text columns: the physical limit of this machine and database;
  * end-to-end rows/s: rows / (Upload.created_at -> Upload.finished_at), on an empty
    database, through services.create_upload_from_path exactly as the web does; the
    counts must be those the generator promises;
  * worker peak RSS: max RSS of the worker's prefork child, sampled every 20 ms;
  * cancel -> stopped: the same file is loaded again and cancelled (services.cancel_upload)
    once three batches are in, then again once 90% of its rows are read (nine tenths of
    its lines are written, not yet committed); time from the request until the row says
    'cancelled' (the worker's finished_at), and no line of that upload may exist;
  * with daphne (skip with --no-server), issue 3's live-dashboard figures, through a
    websocket client that is a signed-in dashboard page: progress latency (a state's seq,
    its µs timestamp, -> its fragment's arrival), task end -> final card, cancel sent on
    the socket -> 'cancelled' card (largest file), and GET / p50/p95 while the worker reads
    90% of the largest file (during the late-cancel run, so that the page requests, which
    share the CPUs, do not slow the timed end-to-end load).

Prints a table and PASS/FAIL against the issues' targets, writes bench/results.json (with
machine info and load average: the figures are only as quiet as the machine). Each run's
figures are plain keys of a dict and the table is built from COLUMNS, so a new figure is
one entry.

    .venv/bin/python bench/run.py [--sizes 100000 1000000] [--messy-sizes 100000]
        [--shared-worker] [--no-cancel] [--no-late-cancel] [--no-copy] [--no-server]
        [--page-requests 1000] [--rebuild]
    make bench BENCH_ARGS="--sizes 100000 --messy-sizes"

Environment: DATABASE_URL or BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/intake_bench; created and migrated if missing; its
ingestion tables are emptied before each load), REDIS_URL (`make bench` sets it; no other
worker may listen there), INGEST_BATCH_ROWS (the worker's batch size).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.processes import Daphne  # noqa: E402
from scripts.processes import Worker as ProcessWorker  # noqa: E402

DATA = ROOT / "bench" / "data"
BIN = Path(sys.executable).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/intake_bench"
BENCH_USER = "bench"

TARGETS = {
    "e2e_rows_per_s_100k": 20_000,  # issue 2
    "peak_rss_mb": 300,  # issue 2, on 1M rows the same as on 100k
    "cancel_ms": 1_000,  # issue 2: cancel request -> task ended
    "cancel_click_to_card_ms": 1_000,  # issue 3: click -> cancelled card at the page
    "progress_latency_p95_ms": 50,  # issue 3: batch -> its fragment at the page
    "page_load_p95_ms": 200,  # issue 3: GET / during a 1M-row load
}

# (key in a run's dict, header, format). A missing value prints as '-'.
COLUMNS = [
    ("label", "file", "{}"),
    ("rows", "rows", "{:,}"),
    ("e2e_rows_per_s", "e2e rows/s", "{:,.0f}"),
    ("copy_rows_per_s", "COPY rows/s", "{:,.0f}"),
    ("ratio_to_copy", "e2e/COPY", "{:.1%}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("cancel_ms", "cancel->stopped ms", "{:.0f}"),
    ("cancel_late_ms", "cancel at 90% ms", "{:.0f}"),
    ("page_load_p95_ms", "GET / p95 ms", "{:.0f}"),
    # Issue 3 (live dashboard), measured with a websocket client as a page.
    ("progress_latency_p95_ms", "progress p95 ms", "{:.0f}"),
    ("cancel_click_to_card_ms", "cancel click->card ms", "{:.0f}"),
    ("final_card_ms", "end->final card ms", "{:.0f}"),
]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- set-up ------------------------------------------------------------------------------


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            log(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bench_user():
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user, created = User.objects.get_or_create(username=BENCH_USER)
    if created:
        user.set_unusable_password()
        user.save()
    return user


def empty_tables() -> None:
    from django.db import connection

    from ingestion.models import Material, PurchaseOrder, PurchaseOrderLine, RowIssue, StagedLine, Supplier, Upload

    tables = [
        m._meta.db_table for m in (PurchaseOrderLine, StagedLine, RowIssue, PurchaseOrder, Material, Supplier, Upload)
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


def sample_file(rows: int, *, messy: bool, seed: int, rebuild: bool) -> tuple[Path, dict]:
    """The cached sample file and its expected counts (bench/data/*.json beside it)."""
    from ingestion.sample import write_sample

    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"po_{rows}_seed{seed}{'_messy' if messy else ''}.csv"
    meta = path.with_suffix(".json")
    if rebuild or not path.exists() or not meta.exists():
        log(f"building {path.name}")
        started = time.monotonic()
        stats = write_sample(path, rows=rows, seed=seed, messy=messy)
        meta.write_text(json.dumps(stats.as_dict(), indent=1))
        log(f"built {path.name} ({path.stat().st_size / 1_048_576:.0f} MB) in {time.monotonic() - started:.1f} s")
    return path, json.loads(meta.read_text())


# --- processes ---------------------------------------------------------------------------


class Worker:
    """One real Celery worker (prefork, -c 1, started as `make run` and the tests start
    theirs: scripts.processes.Worker), and an RSS sampler of its child process(es)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.worker = ProcessWorker(
            env=env,
            log_path=log_path,
            concurrency=1,
            loglevel="warning",
            events=False,
            name=f"bench-{os.getpid()}-{id(self)}@{socket.gethostname()}",
        )
        self.name = self.worker.name
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def process(self) -> subprocess.Popen | None:
        return self.worker.process

    def start(self) -> None:
        from config.celery import app

        app.control.purge()
        try:
            self.worker.start(timeout=60)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from exc
        # Another worker on the same broker would take some of the tasks and void the figures.
        others = [name for reply in app.control.ping(timeout=1) for name in reply if name != self.name]
        if others:
            self.stop()
            raise SystemExit(
                f"Other Celery workers listen on this broker ({', '.join(others)}); stop them or "
                f"set REDIS_URL to another database."
            )
        self._sampler = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._sampler.start()

    def children(self):
        import psutil

        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def child_rss(self) -> int:
        total = 0
        for child in self.children():
            try:
                total = max(total, child.memory_info().rss)
            except Exception:  # noqa: BLE001 - a child may be replaced between calls
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            rss = self.child_rss()
            with self._lock:
                self._peak = max(self._peak, rss)

    def reset_peak(self) -> int:
        with self._lock:
            self._peak = self.child_rss()
            return self._peak

    def peak(self) -> int:
        with self._lock:
            return self._peak

    def stop(self) -> None:
        self._stop.set()
        self.worker.stop(timeout=30)


def session_cookie(user) -> str:
    """A signed-in session for `user`, as the login view would leave it."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    from django.conf import settings

    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class PageLoader(threading.Thread):
    """GET / with a signed-in session, one request after another, until told to stop or
    `limit` requests are done. Latencies in ms; non-200 answers are counted."""

    def __init__(self, port: int, cookie: str, *, limit: int, pause: float = 0.05) -> None:
        super().__init__(name="page-loader", daemon=True)
        self.port, self.cookie, self.limit, self.pause = port, cookie, limit, pause
        self.latencies: list[float] = []
        self.errors = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        import http.client

        while not self.stopping.is_set() and len(self.latencies) + self.errors < self.limit:
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", "/", headers={"Cookie": self.cookie, "Host": "127.0.0.1"})
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status == 200:
                    self.latencies.append((time.perf_counter() - started) * 1000)
                else:
                    self.errors += 1
            except OSError:
                self.errors += 1
            self.stopping.wait(self.pause)

    def summary(self) -> dict:
        if not self.latencies:
            return {"page_load_requests": 0, "page_load_errors": self.errors}
        ordered = sorted(self.latencies)
        return {
            "page_load_requests": len(ordered),
            "page_load_errors": self.errors,
            "page_load_p50_ms": statistics.median(ordered),
            "page_load_p95_ms": percentile(ordered, 0.95),
            "page_load_max_ms": ordered[-1],
        }


class LiveMonitor(threading.Thread):
    """A websocket client on /ws/uploads/ as a signed-in page: records every card it
    receives (upload, status, processed rows, seq = the µs timestamp of that state) with
    its arrival time, and can send a cancel as the Cancel button does. Issue 3's figures:
    progress latency (state change -> fragment at the page) and cancel click -> card."""

    CARD = re.compile(r'<article\b[^>]*\bclass="upload-card[^"]*"[^>]*>')
    ATTR = re.compile(r'data-(upload-id|status|processed|seq)="([^"]*)"')

    def __init__(self, port: int, cookie: str) -> None:
        super().__init__(name="live-monitor", daemon=True)
        self.url = f"ws://127.0.0.1:{port}/ws/uploads/"
        self.headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
        self.cards: list[dict] = []  # {"upload_id", "status", "processed", "seq", "at_us"}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.failed: str | None = None
        self._loop = None
        self._socket = None
        self._stopping = None

    def run(self) -> None:
        import asyncio

        asyncio.run(self._main())

    async def _main(self) -> None:
        import asyncio

        from websockets.asyncio.client import connect

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            async with connect(self.url, additional_headers=self.headers, open_timeout=10, max_size=None) as socket:
                self._socket = socket
                self.connected.set()
                reader = asyncio.ensure_future(self._read(socket))
                await self._stopping.wait()
                reader.cancel()
        except Exception as exc:  # noqa: BLE001 - the figures are then missing, the bench goes on
            self.failed = f"{type(exc).__name__}: {exc}"
            self.connected.set()

    async def _read(self, socket) -> None:
        async for message in socket:
            at_us = time.time_ns() // 1000
            if not isinstance(message, str):
                continue
            found = []
            for tag in self.CARD.findall(message):
                attrs = dict(self.ATTR.findall(tag))
                try:
                    found.append(
                        {
                            "upload_id": attrs["upload-id"],
                            "status": attrs["status"],
                            "processed": int(attrs.get("processed") or 0),
                            "seq": int(attrs.get("seq") or 0),
                            "at_us": at_us,
                        }
                    )
                except (KeyError, ValueError):
                    continue
            with self.lock:
                self.cards.extend(found)

    def send_cancel(self, upload_id) -> None:
        import asyncio

        message = json.dumps({"action": "cancel", "upload_id": str(upload_id), "HEADERS": {}})
        asyncio.run_coroutine_threadsafe(self._socket.send(message), self._loop).result(timeout=5)

    def cards_of(self, upload_id) -> list[dict]:
        with self.lock:
            return [c for c in self.cards if c["upload_id"] == str(upload_id)]

    def wait_for(self, upload_id, predicate, *, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for card in self.cards_of(upload_id):
                if predicate(card):
                    return card
            time.sleep(0.002)
        return None

    def progress_latency(self, upload_id) -> dict:
        """State change (seq) -> arrival, for the progress fragments of one upload (the
        first arrival of each seq; the final states' 1 s insurance resends excluded)."""
        seen, latencies = set(), []
        for card in self.cards_of(upload_id):
            if card["status"] != "processing" or card["processed"] <= 0 or card["seq"] in seen:
                continue
            seen.add(card["seq"])
            latencies.append((card["at_us"] - card["seq"]) / 1000)
        if not latencies:
            return {}
        ordered = sorted(latencies)
        return {
            "progress_fragments": len(ordered),
            "progress_latency_p50_ms": statistics.median(ordered),
            "progress_latency_p95_ms": percentile(ordered, 0.95),
            "progress_latency_max_ms": ordered[-1],
        }

    def stop(self) -> None:
        if self._loop and self._stopping and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=10)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


# --- measurements ------------------------------------------------------------------------


def measure_copy(database_url: str, path: Path, rows: int) -> dict:
    """COPY the CSV into one plain table of text columns: the physical limit."""
    import csv

    import psycopg

    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    columns = ", ".join(f"c{i} text" for i in range(len(header)))
    with psycopg.connect(database_url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute(f"CREATE TABLE bench_copy ({columns})")
        conn.commit()
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            path.open("rb") as handle,
            cursor.copy("COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while data := handle.read(1 << 20):
                copy.write(data)
        conn.commit()
        elapsed = time.perf_counter() - started
        copied = conn.execute("SELECT count(*) FROM bench_copy").fetchone()[0]
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    if copied != rows:
        log(f"COPY loaded {copied} rows, expected {rows}")
    return {"copy_seconds": elapsed, "copy_rows_per_s": copied / elapsed}


def wait_until(upload, predicate, *, timeout: float, poll: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        upload.refresh_from_db()
        if predicate(upload):
            return upload
        time.sleep(poll)
    raise RuntimeError(
        f"upload {upload.pk} stuck in {upload.status} at {upload.processed_rows}/{upload.total_rows} rows"
    )


def discard_file(upload) -> None:
    try:
        upload.file.delete(save=False)
    except Exception:  # noqa: BLE001 - only disk space is at stake
        pass


def measure_load(
    user,
    path: Path,
    expected: dict,
    worker: Worker,
    *,
    timeout: float,
    page_loader: PageLoader | None = None,
    monitor: LiveMonitor | None = None,
) -> dict:
    from ingestion import services
    from ingestion.models import PurchaseOrderLine, Upload

    empty_tables()
    idle = worker.reset_peak()
    upload = services.create_upload_from_path(owner=user, path=path)
    if page_loader is not None:
        wait_until(upload, lambda u: u.status != Upload.Status.QUEUED, timeout=60)
        page_loader.start()
    try:
        upload = wait_until(upload, lambda u: u.is_finished, timeout=timeout, poll=0.05)
    finally:
        if page_loader is not None:
            page_loader.stopping.set()
            page_loader.join(timeout=60)
    peak = worker.peak()
    result = {
        "status": upload.status,
        "error": upload.error_message or None,
        "e2e_seconds": (upload.finished_at - upload.created_at).total_seconds(),
        "queue_seconds": (upload.started_at - upload.created_at).total_seconds() if upload.started_at else None,
        "processing_seconds": (upload.finished_at - upload.started_at).total_seconds() if upload.started_at else None,
        "imported_rows": upload.imported_rows,
        "rejected_rows": upload.rejected_rows,
        "warnings": upload.warning_count,
        "created_lines": upload.created_lines,
        "lines_in_db": PurchaseOrderLine.objects.count(),
        "idle_rss_mb": idle / 1_048_576,
        "peak_rss_mb": peak / 1_048_576,
    }
    result["e2e_rows_per_s"] = expected["rows"] / result["e2e_seconds"]
    mismatches = {
        key: (got, expected[want])
        for key, got, want in (
            ("imported_rows", upload.imported_rows, "valid_rows"),
            ("rejected_rows", upload.rejected_rows, "invalid_rows"),
            ("warnings", upload.warning_count, "warnings"),
            ("created_lines", upload.created_lines, "lines"),
            ("created_suppliers", upload.created_suppliers, "suppliers"),
            ("created_materials", upload.created_materials, "materials"),
            ("created_purchase_orders", upload.created_purchase_orders, "purchase_orders"),
        )
        if got != expected[want]
    }
    result["counts_as_expected"] = not mismatches and upload.status == Upload.Status.COMPLETED
    if mismatches:
        result["count_mismatches"] = mismatches
        log(f"counts differ from the generator's: {mismatches}")
    if page_loader is not None:
        result.update(page_loader.summary())
    if monitor is not None:
        result.update(monitor.progress_latency(upload.pk))
        final = monitor.wait_for(upload.pk, lambda c: c["status"] == upload.status, timeout=3)
        if final is not None and upload.finished_at:
            # The task's end (the row's finished_at) -> its final card at the page.
            result["final_card_ms"] = (final["at_us"] - upload.finished_at.timestamp() * 1e6) / 1000
    discard_file(upload)
    return result


def measure_ws_cancel(user, path: Path, monitor: LiveMonitor, *, batch_rows: int, timeout: float) -> dict:
    """Cancel as the page's Cancel button does (a message on the websocket) once a few
    batches are in: click -> 'cancelling' card (the consumer's answer) and click ->
    'cancelled' card (the task stopped), as a page sees them."""
    from ingestion import services
    from ingestion.models import PurchaseOrderLine

    empty_tables()
    upload = services.create_upload_from_path(owner=user, path=path)
    seen = monitor.wait_for(
        upload.pk, lambda c: c["status"] == "processing" and c["processed"] >= 3 * batch_rows, timeout=timeout
    )
    if seen is None:
        upload.refresh_from_db()
        discard_file(upload)
        return {"ws_cancel_error": f"no progress card with {3 * batch_rows} rows seen (upload {upload.status})"}
    clicked_us = time.time_ns() // 1000
    monitor.send_cancel(upload.pk)
    ack = monitor.wait_for(
        upload.pk, lambda c: c["status"] in ("cancelling", "cancelled") and c["at_us"] >= clicked_us, timeout=10
    )
    done = monitor.wait_for(upload.pk, lambda c: c["status"] == "cancelled" and c["at_us"] >= clicked_us, timeout=30)
    upload = wait_until(upload, lambda u: u.is_finished, timeout=60)
    lines_left = PurchaseOrderLine.objects.filter(upload=upload).count()
    discard_file(upload)
    return {
        "cancel_click_to_ack_ms": (ack["at_us"] - clicked_us) / 1000 if ack else None,
        "cancel_click_to_card_ms": (done["at_us"] - clicked_us) / 1000 if done else None,
        "ws_cancel_status": upload.status,
        "ws_cancel_lines_left": lines_left,
        "ws_cancel_verified": upload.status == "cancelled" and lines_left == 0 and done is not None,
    }


def warm_up(user, *, timeout: float) -> None:
    """One small load first, so lazy imports and first connections are not timed."""
    from ingestion import services
    from ingestion.sample import write_sample

    path = DATA / "warmup.csv"
    if not path.exists():
        write_sample(path, rows=2000, seed=99)
    upload = services.create_upload_from_path(owner=user, path=path)
    wait_until(upload, lambda u: u.is_finished, timeout=timeout, poll=0.05)
    discard_file(upload)


def measure_cancel(
    user, path: Path, *, late: bool, batch_rows: int, timeout: float, page_loader: PageLoader | None = None
) -> dict:
    """Cancel a load once a few batches are in (or, `late`, once 90% of the rows are read:
    most lines are written, uncommitted); time from the request until the row says
    'cancelled'. A page loader, if given, runs from the start of processing to the cancel:
    a late cancel of the largest file reads nine tenths of it, without slowing the timed end-to-end load."""
    from django.utils import timezone

    from ingestion import services
    from ingestion.models import PurchaseOrderLine, Upload

    empty_tables()
    upload = services.create_upload_from_path(owner=user, path=path)
    if late:
        ready = lambda u: u.is_finished or (u.total_rows and u.processed_rows >= 0.9 * u.total_rows)  # noqa: E731
    else:
        ready = lambda u: u.is_finished or (u.status == Upload.Status.PROCESSING and u.processed_rows >= 3 * batch_rows)  # noqa: E731
    page_figures = {}
    if page_loader is not None:
        wait_until(upload, lambda u: u.status != Upload.Status.QUEUED, timeout=60)
        page_loader.start()
    try:
        upload = wait_until(upload, ready, timeout=timeout, poll=0.005)
    finally:
        if page_loader is not None:
            page_loader.stopping.set()
            page_loader.join(timeout=60)
            page_figures = page_loader.summary()
    key = "cancel_late" if late else "cancel"
    if upload.is_finished:
        log(f"{key}: the upload finished ({upload.status}) before it could be cancelled")
        discard_file(upload)
        return {f"{key}_error": f"finished ({upload.status}) before the cancel", **page_figures}
    at_rows = upload.processed_rows
    requested = timezone.now()
    started = time.perf_counter()
    services.cancel_upload(upload=upload, by=user)
    upload = wait_until(upload, lambda u: u.is_finished, timeout=60, poll=0.005)
    observed_ms = (time.perf_counter() - started) * 1000
    lines_of_upload = PurchaseOrderLine.objects.filter(upload=upload).count()
    result = {
        f"{key}_status": upload.status,
        f"{key}_at_rows": at_rows,
        # The row's finished_at is written by the worker when it ends: no polling error.
        f"{key}_ms": (upload.finished_at - requested).total_seconds() * 1000 if upload.finished_at else observed_ms,
        f"{key}_observed_ms": observed_ms,
        f"{key}_lines_left": lines_of_upload,
        f"{key}_lines_in_db": PurchaseOrderLine.objects.count(),
        f"{key}_verified": upload.status == Upload.Status.CANCELLED
        and lines_of_upload == 0
        and PurchaseOrderLine.objects.count() == 0,
        **page_figures,
    }
    discard_file(upload)
    return result


# --- report ------------------------------------------------------------------------------


def machine_info(database_url: str, redis_url: str) -> dict:
    import celery
    import django
    import pandas
    import psutil
    import psycopg
    import redis

    info = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "django": django.get_version(),
        "celery": celery.__version__,
        "pandas": pandas.__version__,
        "psycopg": psycopg.__version__,
    }
    try:
        with psycopg.connect(database_url) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:  # noqa: BLE001
        info["postgresql"] = f"unknown ({exc})"
    try:
        info["redis"] = redis.Redis.from_url(redis_url).info("server")["redis_version"]
    except Exception as exc:  # noqa: BLE001
        info["redis"] = f"unknown ({exc})"
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except Exception:  # noqa: BLE001
        info["git_commit"] = None
    return info


def table(runs: list[dict]) -> str:
    present = [c for c in COLUMNS if any(run.get(c[0]) is not None for run in runs)]
    cells = [[header for _, header, _ in present]]
    for run in runs:
        cells.append([fmt.format(run[key]) if run.get(key) is not None else "-" for key, _, fmt in present])
    widths = [max(len(row[i]) for row in cells) for i in range(len(present))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def check_targets(runs: list[dict]) -> dict:
    checks = {}
    for run in runs:
        if run["rows"] == 100_000 and not run.get("messy") and run.get("e2e_rows_per_s"):
            checks["e2e >= 20,000 rows/s on 100k"] = run["e2e_rows_per_s"] >= TARGETS["e2e_rows_per_s_100k"]
        if run.get("peak_rss_mb"):
            checks[f"peak RSS <= 300 MB ({run['label']})"] = run["peak_rss_mb"] <= TARGETS["peak_rss_mb"]
        for key in ("cancel_ms", "cancel_late_ms"):
            if run.get(key) is not None:
                checks[f"{key.replace('_ms', '')} <= 1 s ({run['label']})"] = run[key] <= TARGETS["cancel_ms"]
        for key in ("cancel_verified", "cancel_late_verified"):
            if key in run:
                checks[f"{key.replace('_verified', '')} left no lines ({run['label']})"] = bool(run[key])
        if "counts_as_expected" in run:
            checks[f"counts as generated ({run['label']})"] = bool(run["counts_as_expected"])
        for key in ("progress_latency_p95_ms", "page_load_p95_ms", "cancel_click_to_card_ms"):
            if run.get(key) is not None:
                checks[f"{key} <= {TARGETS[key]} ({run['label']})"] = run[key] <= TARGETS[key]
        if "ws_cancel_verified" in run:
            checks[f"websocket cancel left no lines ({run['label']})"] = bool(run["ws_cancel_verified"])
    rss = [r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb") and not r.get("messy")]
    if len(rss) >= 2:
        # "the same as on 100k": within 20% of the smallest file's peak.
        checks["peak RSS flat across sizes (within 20%)"] = max(rss) <= 1.2 * min(rss)
    return checks


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="clean files' row counts")
    parser.add_argument("--messy-sizes", type=int, nargs="*", default=[100_000], help="messy files' row counts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--shared-worker",
        action="store_true",
        help="one worker for all files (default: a fresh worker per file, so RSS figures do not depend on order)",
    )
    parser.add_argument("--no-cancel", action="store_true", help="skip the cancel runs")
    parser.add_argument("--no-late-cancel", action="store_true", help="skip the cancel at 90%% of the rows")
    parser.add_argument("--no-copy", action="store_true", help="skip the COPY baseline")
    parser.add_argument("--no-server", action="store_true", help="no daphne: skip GET / and websocket figures")
    parser.add_argument(
        "--page-requests",
        type=int,
        default=1000,
        help="at most this many GET / while the largest file is read (needs the late cancel run)",
    )
    parser.add_argument("--debug", action="store_true", help="run the worker and daphne with DJANGO_DEBUG=1")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached sample files")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one load may take")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args(argv)

    database_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(f"The benchmark needs PostgreSQL; DATABASE_URL is {database_url}")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5")
    media = DATA / "media"
    shutil.rmtree(media, ignore_errors=True)
    media.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MEDIA_ROOT=str(media),
        # Production settings unless --debug: DEBUG keeps every query's SQL in memory.
        DJANGO_DEBUG="1" if args.debug else "0",
        DJANGO_SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "ERROR"),
        CHANNELS_PREFIX=os.environ.get("CHANNELS_PREFIX", "intake-bench"),
        PYTHONUNBUFFERED="1",
    )

    load_at_start = os.getloadavg()
    ensure_database(database_url)
    setup_django(env)
    from django.conf import settings

    user = bench_user()
    batch_rows = settings.INGEST_BATCH_ROWS
    plan = [(rows, False) for rows in args.sizes] + [(rows, True) for rows in args.messy_sizes]
    files = [
        (rows, messy, *sample_file(rows, messy=messy, seed=args.seed, rebuild=args.rebuild)) for rows, messy in plan
    ]
    largest = max((rows for rows, messy, *_ in files if not messy), default=None)

    logs = DATA / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    worker: Worker | None = None
    server = monitor = None
    runs: list[dict] = []
    try:
        if not args.no_server:
            server = Daphne(env, logs / "daphne.log")
            server.start()
            cookie = session_cookie(user)
        for n, (rows, messy, path, expected) in enumerate(files):
            label = (f"{rows // 1000}k" if rows < 1_000_000 else f"{rows / 1e6:g}M") + (" messy" if messy else "")
            run = {
                "label": label,
                "rows": rows,
                "messy": messy,
                "file": path.name,
                "file_mb": round(path.stat().st_size / 1_048_576, 1),
                "expected": expected,
            }
            if worker is None or not args.shared_worker:
                if worker is not None:
                    worker.stop()
                log(f"starting a worker (batch {batch_rows} rows, redis {redis_url})")
                worker = Worker(env, logs / f"worker-{n}.log")
                worker.start()
                warm_up(user, timeout=args.timeout)
            if not args.no_copy:
                run.update(measure_copy(database_url, path, rows))
                log(f"{label}: COPY {run['copy_rows_per_s']:,.0f} rows/s")
            if server is not None:
                monitor = LiveMonitor(server.port, cookie)
                monitor.start()
                monitor.connected.wait(15)
                if monitor.failed:
                    log(f"websocket unavailable, no live figures: {monitor.failed}")
                    monitor = None
            pages_here = server is not None and rows == largest and not messy
            run.update(measure_load(user, path, expected, worker, timeout=args.timeout, monitor=monitor))
            if run.get("copy_rows_per_s"):
                run["ratio_to_copy"] = run["e2e_rows_per_s"] / run["copy_rows_per_s"]
            log(
                f"{label}: {run['status']} in {run['e2e_seconds']:.1f} s, {run['e2e_rows_per_s']:,.0f} rows/s, "
                f"peak RSS {run['peak_rss_mb']:.0f} MB"
            )
            if not args.no_cancel:
                run.update(measure_cancel(user, path, late=False, batch_rows=batch_rows, timeout=args.timeout))
                log(f"{label}: cancel -> stopped {run.get('cancel_ms') or float('nan'):.0f} ms")
                if not args.no_late_cancel:
                    loader = PageLoader(server.port, cookie, limit=args.page_requests) if pages_here else None
                    run.update(
                        measure_cancel(
                            user, path, late=True, batch_rows=batch_rows, timeout=args.timeout, page_loader=loader
                        )
                    )
                    log(f"{label}: cancel at 90% -> stopped {run.get('cancel_late_ms') or float('nan'):.0f} ms")
                if monitor is not None and rows == largest and not messy:
                    run.update(measure_ws_cancel(user, path, monitor, batch_rows=batch_rows, timeout=args.timeout))
                    log(
                        f"{label}: websocket cancel click -> cancelled card {run.get('cancel_click_to_card_ms') or float('nan'):.0f} ms"
                    )
            run["worker_rss_after_mb"] = worker.child_rss() / 1_048_576
            if monitor is not None:
                monitor.stop()
                monitor = None
            runs.append(run)
    finally:
        if monitor is not None:
            monitor.stop()
        if server:
            server.stop()
        if worker is not None:
            worker.stop()
        shutil.rmtree(media, ignore_errors=True)

    checks = check_targets(runs)
    machine = machine_info(database_url, redis_url)
    # Other work on the machine skews the figures: a load average near the CPU count says so.
    machine["loadavg_at_start"] = [round(x, 2) for x in load_at_start]
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results = {
        "machine": machine,
        "settings": {
            "INGEST_BATCH_ROWS": batch_rows,
            "DEBUG": settings.DEBUG,
            "worker_concurrency": 1,
            "seed": args.seed,
            "fresh_worker_per_file": not args.shared_worker,
        },
        "targets": TARGETS,
        "runs": runs,
        "checks": checks,
    }
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(table(runs))
    print()
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    info = results["machine"]
    print(
        f"\n{info['cpu_count']} CPUs, {info['memory_gb']} GB, Python {info['python']}, PostgreSQL {info['postgresql']}, "
        f"Redis {info['redis']}; load average {info['loadavg_at_start'][0]} at start, {info['loadavg_at_end'][0]} at end; "
        f"results in {args.out}"
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
