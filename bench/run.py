"""`make bench`: load generated purchase-order files through ONE real Celery worker into
PostgreSQL and measure, beside PostgreSQL's own COPY of the same file.

For every file (cached in bench/data/, built by ingestion.sample):
  * COPY rows/s: psycopg `COPY ... FROM STDIN (FORMAT csv)` of the file into one plain
    table of text columns: the physical limit of this machine and database;
  * end-to-end rows/s: rows / (Upload.created_at -> Upload.finished_at), on an empty
    database, through services.create_upload_from_path exactly as the web does;
  * worker peak RSS: max RSS of the worker's prefork child(ren), sampled every 20 ms;
  * cancel -> stopped: a second load of the same file is cancelled (services.cancel_upload)
    once a few batches are in, and the time until the row says 'cancelled' is measured
    (and that none of its lines exist);
  * GET / p95 during the largest load (optional): a daphne process serves the dashboard to
    a signed-in session, N sequential requests while the worker is busy.

Prints a table, writes bench/results.json. Metrics are plain keys of each run's dict and
the table is built from COLUMNS, so more figures (issue 3: progress latency, cancel
click-to-card) are one entry each.

    .venv/bin/python bench/run.py [--sizes 100000 1000000] [--messy-sizes 100000]
        [--no-cancel] [--no-page-load] [--page-requests 200] [--rebuild]

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/intake_bench; created
and migrated if missing; its ingestion tables are emptied before each load), REDIS_URL
(`make bench` sets it), INGEST_BATCH_ROWS (the worker's batch size, default the setting's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
BIN = Path(sys.executable).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/intake_bench"
BENCH_USER = "bench"

TARGETS = {
    "e2e_rows_per_s_100k": 20_000,
    "peak_rss_mb": 300,
    "cancel_ms": 1_000,
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
    ("cancel_late_ms", "cancel in save ms", "{:.0f}"),
    ("page_load_p95_ms", "GET / p95 ms", "{:.0f}"),
    # Issue 3 hooks (filled when measured): live-dashboard figures.
    ("progress_latency_p95_ms", "progress latency p95 ms", "{:.0f}"),
    ("cancel_click_to_card_ms", "cancel click->card ms", "{:.0f}"),
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

    tables = [m._meta.db_table for m in (PurchaseOrderLine, StagedLine, RowIssue, PurchaseOrder, Material, Supplier, Upload)]
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
    """One real Celery worker (prefork, -c 1), and an RSS sampler of its child process(es)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self) -> None:
        from config.celery import app

        app.control.purge()
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "config", "worker", "-c", "1", "-l", "warning",
             "--without-gossip", "--without-mingle", "-n", f"bench-{os.getpid()}@%h"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"The worker exited at start; see {self.log_path}")
            if app.control.ping(timeout=0.5):
                break
        else:
            raise SystemExit(f"The worker did not answer in 60 s; see {self.log_path}")
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
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()


class Server:
    """daphne serving the app, for page-load timings during a load."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.port = free_port()

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "config.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited at start; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("daphne did not listen in 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
            "page_load_p95_ms": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))],
            "page_load_max_ms": ordered[-1],
        }


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
        with conn.cursor() as cursor, path.open("rb") as handle:
            with cursor.copy("COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
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
    raise RuntimeError(f"upload {upload.pk} stuck in {upload.status} at {upload.processed_rows}/{upload.total_rows} rows")


def discard_file(upload) -> None:
    try:
        upload.file.delete(save=False)
    except Exception:  # noqa: BLE001 - only disk space is at stake
        pass


def measure_load(user, path: Path, expected: dict, worker: Worker, *, timeout: float,
                 page_loader: PageLoader | None = None) -> dict:
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
    discard_file(upload)
    return result


def measure_cancel(user, path: Path, *, late: bool, batch_rows: int, timeout: float) -> dict:
    """Cancel a load once a few batches are in (or, `late`, once every row is read and the
    lines are being saved); time from the request until the row says 'cancelled'."""
    from django.utils import timezone

    from ingestion import services
    from ingestion.models import PurchaseOrderLine, Upload

    empty_tables()
    upload = services.create_upload_from_path(owner=user, path=path)
    if late:
        ready = lambda u: u.is_finished or (u.total_rows and u.processed_rows >= u.total_rows)  # noqa: E731
    else:
        ready = lambda u: u.is_finished or (u.status == Upload.Status.PROCESSING and u.processed_rows >= 3 * batch_rows)  # noqa: E731
    upload = wait_until(upload, ready, timeout=timeout, poll=0.005)
    key = "cancel_late" if late else "cancel"
    if upload.is_finished:
        log(f"{key}: the upload finished ({upload.status}) before it could be cancelled")
        discard_file(upload)
        return {f"{key}_error": f"finished ({upload.status}) before the cancel"}
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
        f"{key}_verified": upload.status == Upload.Status.CANCELLED and lines_of_upload == 0
        and PurchaseOrderLine.objects.count() == 0,
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
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
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
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
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
    parser.add_argument("--no-cancel", action="store_true", help="skip the cancel runs")
    parser.add_argument("--no-late-cancel", action="store_true", help="skip the cancel while saving lines")
    parser.add_argument("--no-copy", action="store_true", help="skip the COPY baseline")
    parser.add_argument("--no-page-load", action="store_true", help="skip GET / timings during the largest load")
    parser.add_argument("--page-requests", type=int, default=300, help="at most this many GET / during the load")
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
        DATABASE_URL=database_url, REDIS_URL=redis_url, MEDIA_ROOT=str(media),
        DJANGO_DEBUG=os.environ.get("DJANGO_DEBUG", "1"), LOG_LEVEL=os.environ.get("LOG_LEVEL", "ERROR"),
        PYTHONUNBUFFERED="1",
    )

    ensure_database(database_url)
    setup_django(env)
    from django.conf import settings

    user = bench_user()
    plan = [(rows, False) for rows in args.sizes] + [(rows, True) for rows in args.messy_sizes]
    files = [(rows, messy, *sample_file(rows, messy=messy, seed=args.seed, rebuild=args.rebuild)) for rows, messy in plan]
    largest = max((rows for rows, messy, *_ in files if not messy), default=None)

    run_dir = DATA / "logs"
    run_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(env, run_dir / "worker.log")
    server = None
    runs: list[dict] = []
    try:
        log(f"starting the worker (batch {settings.INGEST_BATCH_ROWS} rows, redis {redis_url})")
        worker.start()
        if not args.no_page_load and largest:
            server = Server(env, run_dir / "daphne.log")
            server.start()
            cookie = session_cookie(user)
        for rows, messy, path, expected in files:
            label = f"{rows // 1000}k{' messy' if messy else ''}" if rows < 1_000_000 else f"{rows / 1e6:g}M{' messy' if messy else ''}"
            run = {"label": label, "rows": rows, "messy": messy, "file": path.name,
                   "file_mb": round(path.stat().st_size / 1_048_576, 1), "expected": expected}
            if not args.no_copy:
                run.update(measure_copy(database_url, path, rows))
                log(f"{label}: COPY {run['copy_rows_per_s']:,.0f} rows/s")
            loader = PageLoader(server.port, cookie, limit=args.page_requests) if server and rows == largest and not messy else None
            run.update(measure_load(user, path, expected, worker, timeout=args.timeout, page_loader=loader))
            log(f"{label}: {run['status']} in {run['e2e_seconds']:.1f} s, {run['e2e_rows_per_s']:,.0f} rows/s, "
                f"peak RSS {run['peak_rss_mb']:.0f} MB")
            if run.get("copy_rows_per_s"):
                run["ratio_to_copy"] = run["e2e_rows_per_s"] / run["copy_rows_per_s"]
            if not args.no_cancel:
                run.update(measure_cancel(user, path, late=False, batch_rows=settings.INGEST_BATCH_ROWS, timeout=args.timeout))
                log(f"{label}: cancel -> stopped {run.get('cancel_ms', float('nan')):.0f} ms")
                if not args.no_late_cancel:
                    run.update(measure_cancel(user, path, late=True, batch_rows=settings.INGEST_BATCH_ROWS, timeout=args.timeout))
                    log(f"{label}: cancel while saving -> stopped {run.get('cancel_late_ms', float('nan')):.0f} ms")
            runs.append(run)
    finally:
        if server:
            server.stop()
        worker.stop()
        shutil.rmtree(media, ignore_errors=True)

    checks = check_targets(runs)
    results = {
        "machine": machine_info(database_url, redis_url),
        "settings": {"INGEST_BATCH_ROWS": settings.INGEST_BATCH_ROWS, "worker_concurrency": 1, "seed": args.seed},
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
    print(f"\n{info['cpu_count']} CPUs, {info['memory_gb']} GB, Python {info['python']}, PostgreSQL {info['postgresql']}, "
          f"Redis {info['redis']}; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
