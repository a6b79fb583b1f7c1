"""The runtime of one load: what the Celery task runs for an upload, from taking it to
recording how it ended.

The threads of one load, all in the worker's pool process:
- the task's thread runs `run_upload`: it claims the upload (a lease: `heartbeat_at`),
  runs the pipeline (which creates each batch's suppliers, materials and purchase orders
  itself, and counts them on the upload's row in the same transaction) and records the end;
- the supervisor (`_Supervisor`) polls the cancel flag every 0.1 s, the upload's status
  every second, and renews the lease every INGEST_HEARTBEAT_SECONDS, on its own database
  connection;
- the prefetch thread (`pipeline.prefetch`) reads and validates the next batch while this
  one is written;
- the line writer (`line_writers.TransactionLineWriter`, PostgreSQL only) upserts each batch's
  lines one batch behind, inside one transaction on its own connection, and commits it at
  the end;
- the publisher loop (`realtime.publish`, one per process) sends the upload's card to the
  owner's pages without ever blocking the load.

The cancel path: the socket's `{"action": "cancel"}` (or the Cancel view, or `ingest`'s
Ctrl-C) calls `services.cancel_upload`, which sets the upload CANCELLING and raises its
flag (`cancel_flags`). The supervisor sees the flag, marks the run cancelled (the
pipeline's `should_stop`) and interrupts the statements running on the task's connection
and the line writer's. The pipeline raises `Cancelled` at its next check (or its statement
fails with a DatabaseError), the line writer's transaction rolls back, and `_finish`
records CANCELLED, clears the flag and publishes the final card."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from . import dimensions
from .cancel_flags import cancel_flagged, clear_cancel_flag
from .messages import user_message
from .models import RowIssue, StagedLine, Upload
from .outcomes import Cancelled, NeedsMapping, NeedsReview, PipelineError
from .services import attempt_counters, now_seq, publish_state
from .signals import lines_changed

log = logging.getLogger(__name__)

# Database or Redis gone for a moment: the task retries these, never bad input.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
)

# What the pipeline counts in memory and the runtime writes to the row.
_COUNTERS = (
    "total_rows",
    "processed_rows",
    "imported_rows",
    "rejected_rows",
    "warning_count",
    "created_suppliers",
    "created_materials",
    "created_purchase_orders",
    "created_lines",
    "updated_lines",
    "unchanged_lines",
    "kept_lines",
    "review_summary",
    "resolved_field_to_header",
)


class UploadBusy(Exception):
    """Another live worker holds this upload; try again once its lease may have expired."""

    def __init__(self, retry_in: float):
        super().__init__(f"upload is being processed elsewhere; retry in {retry_in:.0f}s")
        self.retry_in = retry_in


def run_upload(*, upload_id, task_id: str = "") -> dict:
    """Run the pipeline for one upload and record how it ended. Safe to call twice for the
    same upload (a redelivered task): a finished upload is returned as it is, a running one
    raises UploadBusy, and a run taken over from a dead worker starts from a clean slate."""
    from .pipeline import run_pipeline

    upload = _claim(upload_id=upload_id, task_id=task_id)
    if upload is None:
        existing = Upload.objects.filter(pk=upload_id).first()
        return task_result(existing) if existing else {"upload_id": str(upload_id), "status": "missing"}
    if upload.status == Upload.Status.CANCELLING:  # cancelled while its worker was dying
        return _finish(upload, status=Upload.Status.CANCELLED)
    publish_state(upload)

    try:
        supervisor = _Supervisor(upload.pk, interrupt=_statement_interrupter(upload.pk))
    except TRANSIENT_ERRORS:
        _release(upload)
        raise
    supervisor.start()

    def on_progress(current: Upload, description: str) -> None:
        current.seq = now_seq()
        if supervisor.should_stop():
            current.status = Upload.Status.CANCELLING
        # The page first, then the row: both carry the same seq, so a page that rebuilds
        # from the row in between never goes back, and the fragment does not wait on a
        # database busy with the load (measured: 13–23 ms at p95, of a 50 ms budget).
        publish_state(current)
        if not connection.in_atomic_block:  # inside SQLite's final merge, the row is written at the end
            with _without_waiting_for_the_disk():
                Upload.objects.filter(pk=current.pk).update(
                    seq=current.seq, heartbeat_at=timezone.now(), **{f: getattr(current, f) for f in _COUNTERS}
                )

    status, error = Upload.Status.COMPLETED, ""
    counted = None
    try:
        counted = run_pipeline(upload=upload, on_progress=on_progress, should_stop=supervisor.should_stop)
    except Cancelled:
        status = Upload.Status.CANCELLED
    except NeedsReview:
        status = Upload.Status.AWAITING_REVIEW
    except NeedsMapping as exc:  # nothing written: the owner chooses the columns
        status, error = Upload.Status.NEEDS_MAPPING, str(exc)
    except PipelineError as exc:
        status, error = Upload.Status.FAILED, user_message(upload_id=upload.pk, text=str(exc))
    except SoftTimeLimitExceeded:
        # Celery raises it from a signal handler, wherever the load was: perhaps inside a
        # statement whose result is still on the wire. Drop that connection; _finish opens
        # a fresh one. (The line writer's own transaction has rolled back already.)
        connection.close()
        status, error = (
            Upload.Status.FAILED,
            f"The load took longer than the limit of {settings.CELERY_TASK_SOFT_TIME_LIMIT} s; nothing was written.",
        )
    except DatabaseError:
        if supervisor.should_stop():  # the statement was interrupted by the cancel
            status = Upload.Status.CANCELLED
        elif isinstance(sys.exc_info()[1], TRANSIENT_ERRORS):
            # Let the task retry: give up the lease so the retry can take the upload at once.
            supervisor.stop()
            _release(upload)
            raise
        else:
            text = "The database refused the load; nothing was written."
            status, error = Upload.Status.FAILED, user_message(upload_id=upload.pk, text=text, exc=sys.exc_info()[1])
    except TRANSIENT_ERRORS:
        supervisor.stop()
        _release(upload)
        raise
    except Exception as exc:  # noqa: BLE001 - logged by user_message with the upload id
        text = "An internal error stopped the load; nothing was written."
        status, error = Upload.Status.FAILED, user_message(upload_id=upload.pk, text=text, exc=exc)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise  # the worker is stopping: the lease and the redelivery take the upload over
    except BaseException as exc:  # noqa: BLE001 - a Rust reader's panic (pyo3) escapes `except Exception`
        text = f"The file could not be read: its reader crashed ({type(exc).__name__}). Nothing was written."
        status, error = Upload.Status.FAILED, user_message(upload_id=upload.pk, text=text, exc=exc)
    finally:
        supervisor.stop()
    if status == Upload.Status.COMPLETED:
        _announce_loaded(upload, counted)
    return _finish(upload, status=status, error=error)


def _announce_loaded(upload: Upload, counted) -> None:
    """The lines are committed: tell the apps that listen (`signals.lines_changed`, kind
    "loaded"), before the row says completed, so the final card already carries what they
    store at once (the quality score). A receiver that fails is logged and never fails a
    load whose lines are written."""
    for receiver, result in lines_changed.send_robust(sender=Upload, upload=upload, kind="loaded", quality=counted):
        if isinstance(result, BaseException):
            log.error(
                "Upload %s: %s failed on the loaded lines",
                upload.pk,
                getattr(receiver, "__qualname__", receiver),
                exc_info=(type(result), result, result.__traceback__),
            )


def task_result(upload: Upload) -> dict:
    """What the task returns, so Flower and the result backend show it (README, Monitoring)."""
    return {
        "upload_id": str(upload.pk),
        "status": str(upload.status),
        "processed": upload.processed_rows,
        "imported": upload.imported_rows,
        "rejected": upload.rejected_rows,
        "created_suppliers": upload.created_suppliers,
        "created_materials": upload.created_materials,
        "created_pos": upload.created_purchase_orders,
        "created_prices": upload.created_lines,
        "updated_prices": upload.updated_lines,
        "error": upload.error_message or None,
    }


class _Supervisor(threading.Thread):
    """Watches the cancel flag every 0.1 s and keeps the heartbeat fresh, on its own
    database connection, so the pipeline's `should_stop` costs nothing and a stale
    heartbeat reliably means a dead worker."""

    def __init__(self, upload_id, *, interrupt: Callable[[], None]) -> None:
        super().__init__(name=f"upload-supervisor-{upload_id}", daemon=True)
        self.upload_id = upload_id
        self.interrupt = interrupt
        self.cancelled = threading.Event()
        self.stopping = threading.Event()

    def _cancel(self) -> None:
        if not self.cancelled.is_set():
            self.cancelled.set()
            # A statement may be running for a while (a batch waiting on locked lines): stop it now.
            self.interrupt()

    def run(self) -> None:
        last_heartbeat = last_db_check = 0.0
        try:
            while not self.stopping.wait(0.1):
                now = time.monotonic()
                if cancel_flagged(upload_id=self.upload_id):
                    self._cancel()
                try:
                    if now - last_db_check >= 1.0:
                        last_db_check = now
                        if Upload.objects.filter(pk=self.upload_id, status=Upload.Status.CANCELLING).exists():
                            self._cancel()
                    if now - last_heartbeat >= settings.INGEST_HEARTBEAT_SECONDS:
                        last_heartbeat = now
                        with _without_waiting_for_the_disk():
                            Upload.objects.filter(pk=self.upload_id).update(heartbeat_at=timezone.now())
                except Exception:  # noqa: BLE001 - a busy SQLite or a blip must not kill the watch
                    log.debug("supervisor check failed", exc_info=True)
                    connection.close_if_unusable_or_obsolete()  # a killed session: reconnect next time
        finally:
            connection.close()  # this thread's own connection

    def should_stop(self) -> bool:
        return self.cancelled.is_set()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


@contextmanager
def _without_waiting_for_the_disk() -> Iterator[None]:
    """A transaction whose commit does not wait for its WAL to reach the disk (PostgreSQL).
    For progress and heartbeats: a crash may lose the latest, which the next replaces, and
    while the line writer fills the WAL an ordinary commit would wait for all of it to be
    flushed (measured: 18 ms per progress update of a 300k-row load, against 0.7 idle)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def _claim(*, upload_id, task_id: str) -> Upload | None:
    """Take the upload for this run, or return None if it is already finished. A queued
    upload, or a running one whose heartbeat is stale (its worker died), can be taken."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.INGEST_STALE_SECONDS)
    upload = Upload.objects.filter(pk=upload_id).first()
    if upload is None or upload.is_finished or upload.is_waiting:
        return None
    running = Q(status__in=[Upload.Status.PROCESSING, Upload.Status.CANCELLING])
    claimable = Q(status=Upload.Status.QUEUED) | (running & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)))
    fields = attempt_counters()
    fields.update(
        task_id=task_id or upload.task_id,
        heartbeat_at=now,
        started_at=now,
        finished_at=None,
        seq=now_seq(),
        attempts=F("attempts") + 1,
    )
    if upload.status == Upload.Status.QUEUED:
        fields["status"] = Upload.Status.PROCESSING
    # Taking over from a run that died holding the lease (not one that handed it back for a
    # retry): one more crash, counted once, since the lease must still be the one seen here.
    if (
        upload.is_active
        and upload.status != Upload.Status.QUEUED
        and upload.heartbeat_at
        and upload.heartbeat_at < stale
    ):
        claimable &= Q(heartbeat_at=upload.heartbeat_at)
        fields["crashed_runs"] = F("crashed_runs") + 1
        if upload.crashed_runs + 1 >= settings.INGEST_MAX_ATTEMPTS:
            _fail_after_crashes(upload, claimable=claimable, crashes=upload.crashed_runs + 1)
            return None
    elif upload.status == Upload.Status.QUEUED and upload.crashed_runs >= settings.INGEST_MAX_ATTEMPTS:
        _fail_after_crashes(upload, claimable=claimable, crashes=upload.crashed_runs)  # requeued by the sweeper
        return None
    if not Upload.objects.filter(claimable, pk=upload_id).update(**fields):
        upload.refresh_from_db()
        if upload.is_finished or upload.is_waiting:
            return None
        age = (now - upload.heartbeat_at).total_seconds() if upload.heartbeat_at else 0
        raise UploadBusy(retry_in=max(1.0, settings.INGEST_STALE_SECONDS - age + 1))
    try:
        # A fresh start: whatever an earlier, dead run staged or reported is discarded.
        StagedLine.objects.filter(upload_id=upload_id).delete()
        RowIssue.objects.filter(upload_id=upload_id).delete()
        upload.refresh_from_db()
    except TRANSIENT_ERRORS:
        _release(upload)  # the retry takes it at once, and this was no death
        raise
    return upload


def _fail_after_crashes(upload: Upload, *, claimable: Q, crashes: int) -> None:
    """Its runs keep dying with their worker (killed for memory, a crash in a reader): fail
    the upload rather than stop workers forever. A run that handed the upload back for a
    retry (a transient error) did not die and does not count."""
    message = (
        f"This file stopped the worker {crashes} times in a row (each run was killed while loading it, "
        "for example for using too much memory), so it was not tried again. Nothing was written; check the file "
        "(or split it) and retry."
    )
    with transaction.atomic():  # whoever sees it failed sees what its runs created gone
        if not Upload.objects.filter(claimable, pk=upload.pk).update(
            status=Upload.Status.FAILED,
            finished_at=timezone.now(),
            seq=now_seq(),
            heartbeat_at=None,
            crashed_runs=crashes,
            created_lines=0,
            updated_lines=0,
            error_message=message,
        ):
            return  # another delivery got there first; it decides
        upload.refresh_from_db()
        dimensions.release_after_end(upload)  # no partial data: what its dead runs created goes too
    log.error("Upload %s: %s", upload.pk, message)
    StagedLine.objects.filter(upload_id=upload.pk).delete()
    clear_cancel_flag(upload_id=upload.pk)
    publish_state(upload, final=True)


def _statement_interrupter(upload_id) -> Callable[[], None]:
    """A function another thread may call to stop the statements this thread is running,
    on its own connection and on the upload's line writer's."""
    from .line_writers import interrupt_line_writes

    connection.ensure_connection()
    raw = connection.connection
    vendor = connection.vendor

    def interrupt() -> None:
        interrupt_line_writes(upload_id)
        try:
            if vendor == "postgresql":
                raw.cancel_safe(timeout=2)
            elif vendor == "sqlite":
                raw.interrupt()
        except Exception:  # noqa: BLE001 - the checks between steps still stop the run
            log.debug("could not interrupt the running statement", exc_info=True)

    return interrupt


def _release(upload: Upload) -> None:
    """Give up the lease (before a retry of the task), so the retry need not wait for it to go stale."""
    try:
        # The error may have killed this very session: a new one, then.
        connection.close_if_unusable_or_obsolete()
        Upload.objects.filter(pk=upload.pk).update(heartbeat_at=None, seq=now_seq())
    except Exception:  # noqa: BLE001 - the lease then expires by itself
        log.warning("Could not release upload %s", upload.pk, exc_info=True)


def _finish(upload: Upload, *, status: str, error: str = "") -> dict:
    """Record the end of a run: the status, the message its owner reads, the final counts."""
    upload.status = status
    upload.finished_at = timezone.now()
    upload.seq = now_seq()
    upload.heartbeat_at = None
    created = bool(upload.created_suppliers or upload.created_materials or upload.created_purchase_orders)
    if status in (Upload.Status.CANCELLED, Upload.Status.FAILED):
        dimensions.release_after_end(upload)
    if status == Upload.Status.CANCELLED:
        upload.created_lines = upload.updated_lines = 0
        upload.error_message = error or (
            "Cancelled; no lines were written." + (dimensions.created_note(upload) if created else "")
        )
    elif status in (Upload.Status.FAILED, Upload.Status.NEEDS_MAPPING):
        upload.created_lines = upload.updated_lines = 0
        upload.error_message = error
    elif status == Upload.Status.AWAITING_REVIEW:
        upload.created_lines = upload.updated_lines = upload.unchanged_lines = upload.kept_lines = 0
        upload.error_message = ""
    if status != Upload.Status.AWAITING_REVIEW:
        upload.review_summary = {}
    fields = {f: getattr(upload, f) for f in _COUNTERS}
    Upload.objects.filter(pk=upload.pk).update(
        status=status,
        finished_at=upload.finished_at,
        seq=upload.seq,
        heartbeat_at=None,
        error_message=upload.error_message,
        **fields,
    )
    clear_cancel_flag(upload_id=upload.pk)
    publish_state(upload, final=True)
    return task_result(upload)
