"""The task's runtime in this process, without a worker: taking an upload (the lease), and
every way a run ends, each caused for real (a cancel through the service, Celery's
soft-time-limit signal, a database that refuses a write). Real database and Redis; the
pipeline runs here, on the test database, through `runner.run_upload` as the task calls it."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from billiard.pool import soft_timeout_sighandler
from django.conf import settings
from django.db import connection
from django.utils import timezone

from ingestion import runner, services
from ingestion.models import Material, PurchaseOrder, PurchaseOrderLine, RowIssue, Supplier, Upload
from tests.helpers import write_orders

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _small_batches(settings):
    settings.INGEST_BATCH_ROWS = 500
    settings.INGEST_STALE_SECONDS = 30


def new_upload(user, path, **fields) -> Upload:
    upload = services.create_upload_from_path(owner=user, path=path, enqueue=False)
    if fields:
        Upload.objects.filter(pk=upload.pk).update(**fields)
        upload.refresh_from_db()
    return upload


def when_loading(upload: Upload, action, *, rows: int = 1000) -> threading.Thread:
    """Run `action` from another thread (its own connection) once the load has processed
    `rows` rows, as a person or Celery would from outside the task."""

    def watch() -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                current = Upload.objects.get(pk=upload.pk)
                if current.status == Upload.Status.PROCESSING and current.processed_rows >= rows:
                    action(current)
                    return
                time.sleep(0.005)
        finally:
            connection.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


# --- the lease --------------------------------------------------------------------------------


def test_a_queued_upload_is_taken_and_counted_as_an_attempt(user, tmp_path):
    upload = new_upload(user, write_orders(tmp_path / "a.csv", 10))
    claimed = runner._claim(upload_id=upload.pk, task_id="task-1")
    assert (claimed.status, claimed.task_id, claimed.attempts) == (Upload.Status.PROCESSING, "task-1", 1)
    assert abs((timezone.now() - claimed.heartbeat_at).total_seconds()) < 5


def test_a_stale_lease_is_taken_over_from_a_clean_slate(user, tmp_path):
    stale = timezone.now() - timedelta(seconds=settings.INGEST_STALE_SECONDS + 5)
    upload = new_upload(
        user,
        write_orders(tmp_path / "a.csv", 10),
        status=Upload.Status.PROCESSING,
        task_id="dead-task",
        heartbeat_at=stale,
        attempts=1,
        processed_rows=500,
        imported_rows=480,
        rejected_rows=20,
        created_suppliers=3,
        created_purchase_orders=7,
    )
    RowIssue.objects.create(upload=upload, row_number=5, column="Qty", value="x", message="not a number")
    claimed = runner._claim(upload_id=upload.pk, task_id="new-task")
    assert claimed is not None
    assert (claimed.status, claimed.task_id, claimed.attempts) == (Upload.Status.PROCESSING, "new-task", 2)
    assert (claimed.processed_rows, claimed.imported_rows, claimed.rejected_rows) == (0, 0, 0)
    # What the dead run created stays counted: those rows exist, and this upload made them.
    assert (claimed.created_suppliers, claimed.created_purchase_orders) == (3, 7)
    assert claimed.heartbeat_at > stale + timedelta(seconds=settings.INGEST_STALE_SECONDS)
    assert not RowIssue.objects.filter(upload=upload).exists()


def test_a_fresh_lease_is_not_taken_and_says_when_to_try_again(user, tmp_path):
    beat = timezone.now() - timedelta(seconds=10)
    upload = new_upload(
        user,
        write_orders(tmp_path / "a.csv", 10),
        status=Upload.Status.PROCESSING,
        task_id="live-task",
        heartbeat_at=beat,
        attempts=1,
        processed_rows=500,
    )
    with pytest.raises(runner.UploadBusy) as busy:
        runner._claim(upload_id=upload.pk, task_id="second-delivery")
    # The lease goes stale 30 s after the last beat, 10 s ago: try again in about 21 s.
    assert busy.value.retry_in == pytest.approx(settings.INGEST_STALE_SECONDS - 10 + 1, abs=1)
    upload.refresh_from_db()
    assert (upload.task_id, upload.attempts, upload.processed_rows, upload.heartbeat_at) == ("live-task", 1, 500, beat)


def test_a_finished_upload_is_not_taken(user, tmp_path):
    upload = new_upload(user, write_orders(tmp_path / "a.csv", 10), status=Upload.Status.COMPLETED, attempts=1)
    assert runner._claim(upload_id=upload.pk, task_id="late") is None
    assert runner.run_upload(upload_id=upload.pk, task_id="late")["status"] == "completed"
    upload.refresh_from_db()
    assert (upload.attempts, upload.task_id) == (1, "")


# --- how a run ends ---------------------------------------------------------------------------


def test_completed(user, tmp_path):
    upload = new_upload(user, write_orders(tmp_path / "a.csv", 1200))
    result = runner.run_upload(upload_id=upload.pk, task_id="t")
    upload.refresh_from_db()
    assert (upload.status, upload.error_message, upload.heartbeat_at) == (Upload.Status.COMPLETED, "", None)
    assert (upload.processed_rows, upload.imported_rows, upload.created_lines) == (1200, 1200, 1200)
    assert (upload.created_suppliers, upload.created_materials, upload.created_purchase_orders) == (20, 50, 120)
    assert result == runner.task_result(upload)
    assert result["status"] == "completed" and result["error"] is None


def test_cancelled_before_anything_was_created(user, tmp_path):
    # Cancelled while its worker was dying: the run that takes it over ends it at once.
    stale = timezone.now() - timedelta(seconds=settings.INGEST_STALE_SECONDS + 5)
    upload = new_upload(
        user, write_orders(tmp_path / "a.csv", 10), status=Upload.Status.CANCELLING, heartbeat_at=stale, attempts=1
    )
    result = runner.run_upload(upload_id=upload.pk, task_id="t")
    upload.refresh_from_db()
    assert upload.status == Upload.Status.CANCELLED
    assert upload.error_message == result["error"] == "Cancelled; no lines were written."
    assert not PurchaseOrderLine.objects.exists()


def test_cancelled_after_an_earlier_attempt_created_rows_says_they_are_removed(user, tmp_path):
    stale = timezone.now() - timedelta(seconds=settings.INGEST_STALE_SECONDS + 5)
    upload = new_upload(
        user,
        write_orders(tmp_path / "a.csv", 10),
        status=Upload.Status.CANCELLING,
        heartbeat_at=stale,
        attempts=1,
        created_suppliers=2,
    )
    runner.run_upload(upload_id=upload.pk, task_id="t")
    upload.refresh_from_db()
    # Counted, but none of them is in the database as this upload's: none is left.
    assert (upload.status, upload.created_suppliers) == (Upload.Status.CANCELLED, 0)
    assert upload.error_message == (
        "Cancelled; no lines were written. The suppliers, materials and purchase orders it created were removed."
    )


def test_cancelled_midway_through_the_service_counts_what_it_created(user, tmp_path):
    upload = new_upload(user, write_orders(tmp_path / "big.csv", 60_000, suppliers=300))
    canceller = when_loading(upload, lambda current: services.cancel_upload(upload=current, by=user))
    result = runner.run_upload(upload_id=upload.pk, task_id="t")
    canceller.join(timeout=10)
    upload.refresh_from_db()
    assert upload.status == Upload.Status.CANCELLED, upload.error_message
    assert (
        upload.error_message
        == result["error"]
        == ("Cancelled; no lines were written. The suppliers, materials and purchase orders it created were removed.")
    )
    assert 1000 <= upload.processed_rows < 60_000
    assert (upload.created_lines, upload.updated_lines) == (0, 0)
    assert not PurchaseOrderLine.objects.exists()
    # No partial data: the suppliers, materials and purchase orders it created went with it.
    assert (Supplier.objects.count(), Material.objects.count(), PurchaseOrder.objects.count()) == (0, 0, 0)
    assert (upload.created_suppliers, upload.created_materials, upload.created_purchase_orders) == (0, 0, 0)


def test_failed_by_bad_input(user, tmp_path):
    path = tmp_path / "header-only.csv"
    path.write_text("Vendor,SKU,PO,Qty,Price\n", encoding="utf-8")
    upload = new_upload(user, path)
    result = runner.run_upload(upload_id=upload.pk, task_id="t")
    upload.refresh_from_db()
    assert upload.status == Upload.Status.FAILED
    assert upload.error_message == result["error"] == "The file has a header row but no data rows."


def test_failed_at_the_soft_time_limit(user, tmp_path):
    # Celery's pool tells a task its time is up with SIGUSR1 and this very handler.
    previous = signal.signal(signal.SIGUSR1, soft_timeout_sighandler)
    try:
        upload = new_upload(user, write_orders(tmp_path / "big.csv", 60_000))
        timer = when_loading(upload, lambda _: os.kill(os.getpid(), signal.SIGUSR1))
        result = runner.run_upload(upload_id=upload.pk, task_id="t")
        timer.join(timeout=10)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    upload.refresh_from_db()
    assert upload.status == Upload.Status.FAILED
    assert (
        upload.error_message
        == result["error"]
        == (f"The load took longer than the limit of {settings.CELERY_TASK_SOFT_TIME_LIMIT} s; nothing was written.")
    )
    assert (upload.created_lines, upload.heartbeat_at) == (0, None)
    assert not PurchaseOrderLine.objects.exists()


@pytest.fixture
def suppliers_refused():
    """A database that refuses new suppliers, as a trigger raising an error makes it."""
    message = "suppliers are read-only today"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_suppliers() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_suppliers BEFORE INSERT ON ingestion_supplier "
                "FOR EACH ROW EXECUTE FUNCTION refuse_suppliers()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse_suppliers BEFORE INSERT ON ingestion_supplier "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
    yield message
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER refuse_suppliers" + (" ON ingestion_supplier" if connection.vendor == "postgresql" else "")
        )
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION refuse_suppliers()")


def test_failed_in_the_database(user, tmp_path, suppliers_refused, caplog):
    upload = new_upload(user, write_orders(tmp_path / "a.csv", 100))
    result = runner.run_upload(upload_id=upload.pk, task_id="t")
    upload.refresh_from_db()
    assert upload.status == Upload.Status.FAILED
    assert upload.error_message == result["error"]
    # The user reads a bounded sentence with the upload id; the database's text is in the log.
    assert upload.error_message == (
        f"The database refused the load; nothing was written. The details are in the server log under upload {upload.pk}."
    )
    assert suppliers_refused in caplog.text and f"Upload {upload.pk}:" in caplog.text
    assert (upload.created_suppliers, upload.created_lines) == (0, 0)
    assert not Supplier.objects.exists()


@pytest.fixture
def database_away():
    """A database that answers a new supplier with an error of the kind a connection lost
    for a moment gives (PostgreSQL: admin_shutdown, SQLite: an OperationalError), which the
    task retries; `restore()` brings it back."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION away() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'terminating connection' USING ERRCODE = 'admin_shutdown'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER away BEFORE INSERT ON ingestion_supplier FOR EACH ROW EXECUTE FUNCTION away()"
            )
        else:
            # The trigger's body names a function that does not exist: every insert fails to
            # prepare with an OperationalError.
            cursor.execute("CREATE TRIGGER away BEFORE INSERT ON ingestion_supplier BEGIN SELECT gone_away(); END")

    def restore() -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("DROP TRIGGER IF EXISTS away ON ingestion_supplier")
                cursor.execute("DROP FUNCTION IF EXISTS away()")
            else:
                cursor.execute("DROP TRIGGER IF EXISTS away")

    try:
        yield restore
    finally:
        restore()


def test_a_transient_database_error_gives_up_the_lease_for_the_tasks_retry(user, tmp_path, database_away):
    upload = new_upload(user, write_orders(tmp_path / "a.csv", 100))
    with pytest.raises(runner.TRANSIENT_ERRORS):
        runner.run_upload(upload_id=upload.pk, task_id="first")
    upload.refresh_from_db()
    # Not an ending: still processing, but with no lease, so the retry need not wait for it.
    assert (upload.status, upload.heartbeat_at, upload.attempts) == (Upload.Status.PROCESSING, None, 1)
    assert upload.error_message == ""
    database_away()  # the database is back; Celery runs the task again
    result = runner.run_upload(upload_id=upload.pk, task_id="retry")
    upload.refresh_from_db()
    assert (upload.status, upload.attempts, upload.task_id) == (Upload.Status.COMPLETED, 2, "retry")
    assert (result["created_suppliers"], result["created_prices"]) == (20, 100)
