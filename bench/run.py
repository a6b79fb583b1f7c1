"""`make bench`: load files of every shape an ERP exports through ONE real Celery worker
into PostgreSQL, and measure each beside what PostgreSQL alone does with the same file.

For every file (a shape of bench/shapes.py at a size, cached in bench/data/), on a fresh
worker (prefork, one child) warmed up by a small load, `--runs` times, one after the other:
  * reference rows/s: bench/reference.py, PostgreSQL's own COPY into a staging table plus
    the set-based INSERT ... SELECT ... ON CONFLICT into normalized supplier, material, PO
    and line tables made like the project's (a separate schema), in one transaction;
  * end-to-end rows/s: rows / (Upload.created_at -> Upload.finished_at), on an empty
    database, through services.create_upload_from_path exactly as the web does; the
    counts must be those the generator promises; and the ratio e2e / reference;
then once per file:
  * COPY rows/s: psycopg `COPY ... FROM STDIN (FORMAT csv)` of the file into one plain
    table of text columns: the physical limit of this machine and database;
  * worker peak RSS: max RSS of the worker's prefork child over the file's loads, sampled
    every 20 ms;
  * cancel -> stopped: the same file is loaded again and cancelled (services.cancel_upload)
    once three batches are in (and, for the largest erp file, once 90% of its rows are read:
    nine tenths of its lines are written, not yet committed); time from the request until
    the row says 'cancelled' (the worker's finished_at), and no line of that upload may exist;
  * with daphne (skip with --no-server), issue 3's live-dashboard figures, through a
    websocket client that is a signed-in dashboard page: progress latency (a state's seq,
    its µs timestamp, -> its fragment's arrival), task end -> final card, cancel sent on
    the socket -> 'cancelled' card (largest erp file), and GET / p50/p95 while the worker
    reads 90% of the largest erp file (during the late-cancel run, so that the page
    requests, which share the CPUs, do not slow a timed load).
Last, one shape is loaded once more by a worker with DJANGO_DEBUG=1 (what `make run` uses).

Prints a table (medians of the runs, with their spread) and PASS/FAIL against the issues'
targets, writes bench/results.json (every run's figures, machine info and load average: the
figures are only as quiet as the machine). A new figure is one key in a file's dict and
one entry in COLUMNS.

    .venv/bin/python bench/run.py [--shapes erp wide ...] [--sizes 300000 1000000]
        [--runs 3] [--large-runs 1] [--debug-shape erp] [--no-cancel] [--no-late-cancel]
        [--no-copy] [--no-reference] [--no-server] [--page-requests 1000] [--rebuild]
    make bench BENCH_ARGS="--shapes erp --sizes 300000 --runs 1"

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
    "ratio_to_reference": 0.8,  # issue 7: e2e at least 0.8x the set-based reference, every shape
    "peak_rss_mb": 300,  # issues 2 and 7: on every shape, 1M rows included
    "cancel_ms": 1_000,  # issue 2: cancel request -> task ended
    "cancel_click_to_card_ms": 1_000,  # issue 3: click -> cancelled card at the page
    "progress_latency_p95_ms": 50,  # issue 3: batch -> its fragment at the page
    "page_load_p95_ms": 200,  # issue 3: GET / during a 1M-row load
    "quality_share": 0.05,  # issue 11: the quality score costs at most 5% of the load's time
}

# (key in a file's dict, header, format). A missing value prints as '-'. Figures measured
# in every run are the runs' median; "<key>_spread" holds (min, max).
COLUMNS = [
    ("label", "file", "{}"),
    ("e2e_rows_per_s", "e2e rows/s", "{:,.0f}"),
    ("e2e_rows_per_s_spread", "e2e min-max", "{0[0]:,.0f}-{0[1]:,.0f}"),
    ("reference_rows_per_s", "reference rows/s", "{:,.0f}"),
    ("reference_rows_per_s_spread", "ref min-max", "{0[0]:,.0f}-{0[1]:,.0f}"),
    ("ratio_to_reference", "e2e/ref", "{:.2f}"),
    ("ratio_to_reference_spread", "ratio min-max", "{0[0]:.2f}-{0[1]:.2f}"),
    ("runs", "runs", "{}"),
    ("copy_rows_per_s", "COPY rows/s", "{:,.0f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    # Issue 11: UploadQuality.seconds (the counting thread's CPU time + storing) / the load.
    ("quality_share", "score share", "{:.1%}"),
    ("quality_share_spread", "score min-max", "{0[0]:.1%}-{0[1]:.1%}"),
    ("price_check_seconds", "price check s (after)", "{:.1f}"),
    ("figures_refresh_seconds", "figures s (after)", "{:.1f}"),
    ("cancel_ms", "cancel->stopped ms", "{:.0f}"),
    ("cancel_late_ms", "cancel at 90% ms", "{:.0f}"),
    ("page_load_p95_ms", "GET / p95 ms", "{:.0f}"),
    # Issue 3 (live dashboard), measured with a websocket client as a page.
    ("progress_latency_p95_ms", "progress p95 ms", "{:.0f}"),
    ("cancel_click_to_card_ms", "cancel click->card ms", "{:.0f}"),
]
# Measured in every run: reported as median and spread.
PER_RUN = (
    "e2e_rows_per_s",
    "reference_rows_per_s",
    "ratio_to_reference",
    "progress_latency_p95_ms",
    "quality_share",
    "quality_seconds",
    "price_check_seconds",
    "figures_refresh_seconds",
)


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

    from ingestion.models import (
        LineVersion,
        Material,
        ProposedChange,
        PurchaseOrder,
        PurchaseOrderChange,
        PurchaseOrderLine,
        RowIssue,
        StagedLine,
        Supplier,
        Upload,
    )

    tables = [
        m._meta.db_table
        for m in (
            LineVersion,
            ProposedChange,
            PurchaseOrderChange,
            PurchaseOrderLine,
            StagedLine,
            RowIssue,
            PurchaseOrder,
            Material,
            Supplier,
            Upload,
        )
    ]
    from analytics import models as analytics

    # The analytics summaries too: they describe the lines, and a refresh after an emptied
    # database would otherwise only add the new lines' groups to the old ones' (ids are new).
    tables += [
        m._meta.db_table
        for m in (
            analytics.SpendMonth,
            analytics.SupplierMonth,
            analytics.CategoryMonth,
            analytics.MaterialTotal,
            analytics.MaterialMonth,
            analytics.LineOutlier,
            analytics.VarianceGroup,
        )
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        # Never built: the next refresh rebuilds them whole, from these lines alone.
        cursor.execute(f"UPDATE {analytics.SummaryState._meta.db_table} SET built_at = NULL, pending = 0")
        for table in tables:
            cursor.execute(f"ANALYZE {table}")
        # The previous load's dirty pages are written now, not during the next timed one.
        cursor.execute("CHECKPOINT")


def shape_file(shape, rows: int, *, seed: int, rebuild: bool) -> tuple[Path, Path, dict]:
    """The cached file of a shape, the CSV the reference loads (the same file, or a
    workbook's CSV twin) and the counts the pipeline must report (a .json beside it)."""
    from bench.shapes import write_shape

    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / shape.file_name(rows, seed)
    meta = path.with_suffix(".json")
    twin = path.with_suffix(".twin.csv") if shape.excel else path
    if rebuild or not path.exists() or not meta.exists() or not twin.exists():
        log(f"building {path.name}")
        started = time.monotonic()
        meta.write_text(json.dumps(write_shape(path, shape=shape, rows=rows, seed=seed), indent=1))
        if shape.excel:
            write_shape(twin, shape=shape, rows=rows, seed=seed, as_csv=True)
        log(f"built {path.name} ({path.stat().st_size / 1_048_576:.0f} MB) in {time.monotonic() - started:.1f} s")
    return path, twin, json.loads(meta.read_text())


def check_mapping(shapes) -> None:
    """Every shape's file columns must map to exactly the fields the shape says."""
    from ingestion.columns import resolve_columns

    for shape in shapes:
        want = {field: header for header, field in shape.columns if field}
        got = resolve_columns(shape.headers, {})
        if got != want:
            raise SystemExit(f"shape {shape.name}: the headers map to {got}, not {want}")


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
    from analytics.models import UploadQuality

    # The score the load stored (its cost is the load's), then the price check its task does
    # just after (on the same worker: its memory counts in the peak, its time apart).
    scored = UploadQuality.objects.filter(upload=upload).first()
    deadline = time.monotonic() + timeout
    while scored is not None and not scored.prices_checked:
        if time.monotonic() > deadline:
            raise RuntimeError(f"upload {upload.pk}: its price check never ended")
        time.sleep(0.05)
        scored.refresh_from_db()
    # And the analytics figures the load queued (analytics.tasks.refresh_summaries, same
    # worker): timed apart too, and over before the next measurement begins.
    refresh_seconds = wait_for_figures(upload, timeout=timeout)
    upload.refresh_from_db()
    peak = worker.peak()
    # Price outliers are warnings the generator does not count (ingestion/quality.py).
    outlier_warnings = (scored.counts.get("price_outliers") or [0, 0])[1] if scored else 0
    result = {
        "status": upload.status,
        "error": upload.error_message or None,
        "e2e_seconds": (upload.finished_at - upload.created_at).total_seconds(),
        "queue_seconds": (upload.started_at - upload.created_at).total_seconds() if upload.started_at else None,
        "processing_seconds": (upload.finished_at - upload.started_at).total_seconds() if upload.started_at else None,
        "imported_rows": upload.imported_rows,
        "rejected_rows": upload.rejected_rows,
        "warnings": upload.warning_count,
        "outlier_warnings": outlier_warnings,
        "quality_score": float(scored.score) if scored and scored.score is not None else None,
        "quality_seconds": scored.seconds if scored else None,
        "price_check_seconds": scored.price_check_seconds if scored else None,
        "figures_refresh_seconds": refresh_seconds,
        "created_lines": upload.created_lines,
        "lines_in_db": PurchaseOrderLine.objects.count(),
        "idle_rss_mb": idle / 1_048_576,
        "peak_rss_mb": peak / 1_048_576,
    }
    result["e2e_rows_per_s"] = expected["rows"] / result["e2e_seconds"]
    if scored and result["processing_seconds"]:
        result["quality_share"] = scored.seconds / result["processing_seconds"]
        log(
            f"quality score {result['quality_score']}: {scored.seconds:.2f} s, {result['quality_share']:.1%} of the "
            f"load; price check after it {scored.price_check_seconds:.2f} s"
        )
    mismatches = {
        key: (got, expected[want])
        for key, got, want in (
            ("imported_rows", upload.imported_rows, "valid_rows"),
            ("rejected_rows", upload.rejected_rows, "invalid_rows"),
            ("warnings", upload.warning_count - outlier_warnings, "warnings"),
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


def wait_for_figures(upload, *, timeout: float) -> float | None:
    """Wait until no analytics refresh is pending; seconds from the load's end, or None if
    none was (the figures were fresh when the load ended)."""
    from analytics.models import SummaryState

    deadline = time.monotonic() + timeout
    waited = False
    while SummaryState.objects.filter(pk=1, pending__gt=0).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"upload {upload.pk}: the analytics refresh it queued never ended")
        waited = True
        time.sleep(0.05)
    if not waited:
        return None
    done = SummaryState.objects.filter(pk=1).values_list("refreshed_at", "built_at").first() or (None, None)
    last = max((when for when in done if when is not None), default=None)
    return (last - upload.finished_at).total_seconds() if last and upload.finished_at else None


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


def markdown(runs: list[dict]) -> str:
    """The same table in Markdown, for the READMEs."""
    present = [c for c in COLUMNS if any(run.get(c[0]) is not None for run in runs)]
    lines = ["| " + " | ".join(header for _, header, _ in present) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(present))) + "|")
    for run in runs:
        cells = [fmt.format(run[key]) if run.get(key) is not None else "" for key, _, fmt in present]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_targets(files: list[dict]) -> dict:
    checks = {}
    for run in files:
        label = run["label"]
        if run.get("ratio_to_reference") is not None and not run.get("debug"):
            checks[f"e2e >= 0.8x reference ({label})"] = run["ratio_to_reference"] >= TARGETS["ratio_to_reference"]
        if run.get("peak_rss_mb"):
            checks[f"peak RSS <= 300 MB ({label})"] = run["peak_rss_mb"] <= TARGETS["peak_rss_mb"]
        if run.get("quality_share") is not None and not run.get("debug"):
            checks[f"quality score <= 5% of the load ({label})"] = run["quality_share"] <= TARGETS["quality_share"]
        for key in ("cancel_ms", "cancel_late_ms"):
            if run.get(key) is not None:
                checks[f"{key.replace('_ms', '')} <= 1 s ({label})"] = run[key] <= TARGETS["cancel_ms"]
        for key in ("cancel_verified", "cancel_late_verified"):
            if key in run:
                checks[f"{key.replace('_verified', '')} left no lines ({label})"] = bool(run[key])
        if "counts_as_expected" in run:
            checks[f"counts as generated ({label})"] = bool(run["counts_as_expected"])
        if "reference_counts_as_expected" in run:
            checks[f"reference counts as generated ({label})"] = bool(run["reference_counts_as_expected"])
        for key in ("progress_latency_p95_ms", "page_load_p95_ms", "cancel_click_to_card_ms"):
            if run.get(key) is not None:
                checks[f"{key} <= {TARGETS[key]} ({label})"] = run[key] <= TARGETS[key]
        if "ws_cancel_verified" in run:
            checks[f"websocket cancel left no lines ({label})"] = bool(run["ws_cancel_verified"])
    return checks


def summarize(run: dict, loads: list[dict]) -> None:
    """The runs' median (and min, max) of each per-run figure, into the file's dict."""
    for key in PER_RUN:
        values = [load[key] for load in loads if load.get(key) is not None]
        if values:
            run[key] = statistics.median(values)
            run[f"{key}_spread"] = (min(values), max(values))
    run["runs"] = len(loads)


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from bench.shapes import SHAPES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES), help="file shapes")
    parser.add_argument("--sizes", type=int, nargs="*", default=[300_000, 1_000_000], help="row counts")
    parser.add_argument("--excel-max-rows", type=int, default=300_000, help="the .xlsx shape only up to this size")
    parser.add_argument("--runs", type=int, default=3, help="timed loads (and references) per file below 1M rows")
    parser.add_argument("--large-runs", type=int, default=1, help="timed loads per file of 1M rows or more")
    parser.add_argument(
        "--debug-shape", default="erp", help="load this shape (smallest size) with DJANGO_DEBUG=1 too; '' for none"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-cancel", action="store_true", help="skip the cancel runs")
    parser.add_argument("--no-late-cancel", action="store_true", help="skip the cancel at 90%% of the rows")
    parser.add_argument("--no-copy", action="store_true", help="skip the bare COPY figure")
    parser.add_argument("--no-reference", action="store_true", help="skip the set-based reference")
    parser.add_argument("--no-server", action="store_true", help="no daphne: skip GET / and websocket figures")
    parser.add_argument(
        "--page-requests",
        type=int,
        default=1000,
        help="at most this many GET / while the largest file is read (needs the late cancel run)",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached files")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one load may take")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument(
        "--history",
        action="store_true",
        help="only what line history costs (bench/history.py): --sizes of the clean shape, first load and a "
        "reload with 10%% of the prices changed, with and without history; results in bench/history_results.json",
    )
    parser.add_argument(
        "--mapping",
        action="store_true",
        help="only what the mapping step costs (bench/mapping.py): --sizes of the erp shape, the plan and the "
        "preview in-process, upload -> needs_mapping and -> first batch through a worker; results in "
        "bench/mapping_results.json",
    )
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
        # Production settings: DEBUG keeps every query's SQL in memory (see --debug-shape).
        DJANGO_DEBUG="0",
        DJANGO_HTTPS="0",  # plain HTTP on loopback: no TLS redirect, cookies without Secure
        DJANGO_SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "ERROR"),
        CHANNELS_PREFIX=os.environ.get("CHANNELS_PREFIX", "intake-bench"),
        PYTHONUNBUFFERED="1",
        # The 40-column export of 1M rows is 296 MB, over the default 200 MB an upload may
        # be (a deployment that takes such files raises it the same way).
        UPLOAD_MAX_BYTES=os.environ.get("UPLOAD_MAX_BYTES", str(512 * 1024 * 1024)),
    )

    load_at_start = os.getloadavg()
    ensure_database(database_url)
    setup_django(env)
    from django.conf import settings

    from bench.reference import measure as measure_reference

    user = bench_user()
    batch_rows = settings.INGEST_BATCH_ROWS
    if args.mapping:
        from bench import mapping

        (DATA / "logs").mkdir(parents=True, exist_ok=True)
        found = mapping.run(
            user=user,
            env=env,
            sizes=args.sizes,
            runs=args.runs,
            seed=args.seed,
            rebuild=args.rebuild,
            timeout=args.timeout,
            logs=DATA / "logs",
        )
        found["command"] = " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])])
        found["machine"] = machine_info(database_url, redis_url)
        found["machine"]["loadavg_at_start"] = [round(x, 2) for x in load_at_start]
        found["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        out = ROOT / "bench" / "mapping_results.json"
        previous = json.loads(out.read_text()) if out.exists() else []
        out.write_text(json.dumps([*previous, found], indent=2, default=str) + "\n")
        print(mapping.report(found))
        return 0 if all(f["as_expected"] for f in found["files"]) else 1
    if args.history:
        from bench import history

        (DATA / "logs").mkdir(parents=True, exist_ok=True)
        found = history.run(
            user=user,
            env=env,
            sizes=args.sizes,
            runs=args.runs,
            seed=args.seed,
            rebuild=args.rebuild,
            timeout=args.timeout,
            logs=DATA / "logs",
        )
        found["command"] = " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])])
        found["machine"] = machine_info(database_url, redis_url)
        (ROOT / "bench" / "history_results.json").write_text(json.dumps(found, indent=2, default=str) + "\n")
        print(history.report(found))
        return 0 if all(f["reload_counts_as_expected"] for f in found["files"]) else 1
    shapes = [SHAPES[name] for name in args.shapes]
    check_mapping(shapes)
    files = [
        (shape, rows, *shape_file(shape, rows, seed=args.seed, rebuild=args.rebuild))
        for rows in args.sizes
        for shape in shapes
        if not (shape.excel and rows > args.excel_max_rows)
    ]
    erp_sizes = [rows for shape, rows, *_ in files if shape.name == "erp"]
    # The live figures under load (GET /, cancel at 90%, websocket cancel) on the largest erp file.
    largest = ("erp", max(erp_sizes)) if erp_sizes else None

    def size_label(rows: int) -> str:
        return f"{rows // 1000}k" if rows < 1_000_000 else f"{rows / 1e6:g}M"

    def reference(shape, twin: Path, rows: int, expected: dict) -> dict:
        if args.no_reference:
            return {}
        figures = measure_reference(database_url, twin, roles=shape.roles, rows=rows)
        made = figures["reference_counts"]
        figures["reference_counts_as_expected"] = made == {
            "supplier": expected["suppliers"],
            "material": expected["materials"],
            "purchase_order": expected["purchase_orders"],
            "line": expected["lines"],
        }
        return figures

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
        for n, (shape, rows, path, twin, expected) in enumerate(files):
            label = f"{shape.name} {size_label(rows)}"
            run: dict = {
                "label": label,
                "shape": shape.name,
                "description": shape.description,
                "rows": rows,
                "file": path.name,
                "file_mb": round(path.stat().st_size / 1_048_576, 1),
                "expected": expected,
            }
            if worker is not None:
                worker.stop()
            log(f"starting a worker (batch {batch_rows} rows, redis {redis_url})")
            worker = Worker(env, logs / f"worker-{n}.log")
            worker.start()
            warm_up(user, timeout=args.timeout)
            if not args.no_copy:
                run.update(measure_copy(database_url, twin, rows))
            if server is not None:
                monitor = LiveMonitor(server.port, cookie)
                monitor.start()
                monitor.connected.wait(15)
                if monitor.failed:
                    log(f"websocket unavailable, no live figures: {monitor.failed}")
                    monitor = None
            loads = []
            for i in range(args.large_runs if rows >= 1_000_000 else args.runs):
                load = reference(shape, twin, rows, expected)
                load.update(measure_load(user, path, expected, worker, timeout=args.timeout, monitor=monitor))
                if load.get("reference_rows_per_s"):
                    load["ratio_to_reference"] = load["e2e_rows_per_s"] / load["reference_rows_per_s"]
                loads.append(load)
                log(
                    f"{label} run {i + 1}: {load['status']}, e2e {load['e2e_rows_per_s']:,.0f} rows/s, reference "
                    f"{load.get('reference_rows_per_s') or float('nan'):,.0f} rows/s, ratio "
                    f"{load.get('ratio_to_reference') or float('nan'):.2f}, peak RSS {load['peak_rss_mb']:.0f} MB"
                )
            summarize(run, loads)
            run["loads"] = loads
            run["peak_rss_mb"] = max(load["peak_rss_mb"] for load in loads)
            run["counts_as_expected"] = all(load["counts_as_expected"] for load in loads)
            if not args.no_reference:
                run["reference_counts_as_expected"] = all(load["reference_counts_as_expected"] for load in loads)
            here = (shape.name, rows) == largest
            if not args.no_cancel:
                run.update(measure_cancel(user, path, late=False, batch_rows=batch_rows, timeout=args.timeout))
                log(f"{label}: cancel -> stopped {run.get('cancel_ms') or float('nan'):.0f} ms")
                if here and not args.no_late_cancel:
                    loader = PageLoader(server.port, cookie, limit=args.page_requests) if server else None
                    run.update(
                        measure_cancel(
                            user, path, late=True, batch_rows=batch_rows, timeout=args.timeout, page_loader=loader
                        )
                    )
                    log(f"{label}: cancel at 90% -> stopped {run.get('cancel_late_ms') or float('nan'):.0f} ms")
                if monitor is not None and here:
                    run.update(measure_ws_cancel(user, path, monitor, batch_rows=batch_rows, timeout=args.timeout))
                    log(
                        f"{label}: websocket cancel click -> cancelled card {run.get('cancel_click_to_card_ms') or float('nan'):.0f} ms"
                    )
            if monitor is not None:
                monitor.stop()
                monitor = None
            runs.append(run)
        debug_files = [f for f in files if f[0].name == args.debug_shape]
        if debug_files:
            shape, rows, path, twin, expected = min(debug_files, key=lambda f: f[1])
            worker.stop()
            log("starting a worker with DJANGO_DEBUG=1")
            worker = Worker({**env, "DJANGO_DEBUG": "1"}, logs / "worker-debug.log")
            worker.start()
            warm_up(user, timeout=args.timeout)
            load = reference(shape, twin, rows, expected)
            load.update(measure_load(user, path, expected, worker, timeout=args.timeout))
            if load.get("reference_rows_per_s"):
                load["ratio_to_reference"] = load["e2e_rows_per_s"] / load["reference_rows_per_s"]
            run = {
                "label": f"{shape.name} {size_label(rows)} DEBUG=1",
                "shape": shape.name,
                "rows": rows,
                "debug": True,
            }
            summarize(run, [load])
            run.update(loads=[load], peak_rss_mb=load["peak_rss_mb"], counts_as_expected=load["counts_as_expected"])
            log(f"{run['label']}: e2e {load['e2e_rows_per_s']:,.0f} rows/s")
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
        "command": " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {
            "INGEST_BATCH_ROWS": batch_rows,
            "DEBUG": settings.DEBUG,
            "worker_concurrency": 1,
            "seed": args.seed,
            "runs": args.runs,
            "large_runs": args.large_runs,
        },
        "targets": TARGETS,
        "files": runs,
        "checks": checks,
    }
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(table(runs))
    print()
    print(markdown(runs))
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
