"""Services: every write to uploads goes through here, whether it comes from a view, the
websocket consumer, a management command or the Celery task."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from .columns import validate_explicit_mapping
from .models import RowIssue, StagedLine, Upload

log = logging.getLogger(__name__)

ALLOWED_EXTENSIONS = (".csv", ".txt", ".tsv", ".xlsx", ".xls", ".ods")


class UploadRejected(ValueError):
    """A file refused before it is queued; the message says why, for the user."""


def now_seq() -> int:
    """Microseconds since the epoch: orders the states of one upload across processes."""
    return time.time_ns() // 1000


# --- cancel flag ------------------------------------------------------------------------

_redis_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    return _redis_client


def _cancel_key(upload_id) -> str:
    return f"intake:cancel:{upload_id}"


def _set_cancel_flag(upload_id) -> None:
    try:
        _redis().set(_cancel_key(upload_id), "1", ex=86400)
    except redis.RedisError:
        log.warning("Redis unreachable; upload %s will see its cancel through the database", upload_id)


# --- creating, cancelling, retrying -------------------------------------------------------


def validate_upload_file(*, name: str, size: int) -> None:
    ext = Path(name).suffix.lower()
    if ext not in ALLOWED_EXTENSIONS:
        raise UploadRejected(
            f"{name}: {ext or 'no extension'} files are not supported; upload .csv, .xlsx, .xls or .ods."
        )
    if size == 0:
        raise UploadRejected(f"{name}: the file is empty.")
    if size > settings.UPLOAD_MAX_BYTES:
        raise UploadRejected(
            f"{name}: the file is {size / 1_048_576:.1f} MB; the limit is {settings.UPLOAD_MAX_BYTES / 1_048_576:.0f} MB."
        )


def create_upload(
    *,
    owner,
    file,
    name: str | None = None,
    mapping: dict | None = None,
    day_first: bool | None = None,
    strict: bool = False,
    enqueue: bool = True,
) -> Upload:
    """Store a file and queue it. `file` is a Django UploadedFile or any binary file object.
    Raises UploadRejected with a user-facing reason for a file that cannot be taken."""
    name = os.path.basename(name or getattr(file, "name", "") or "upload.csv")
    size = getattr(file, "size", None)
    if size is None:
        file.seek(0, os.SEEK_END)
        size = file.tell()
        file.seek(0)
    validate_upload_file(name=name, size=size)
    try:
        clean_mapping = validate_explicit_mapping(mapping)
    except ValueError as exc:
        raise UploadRejected(str(exc)) from exc

    digest = hashlib.sha256()
    chunks = file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(1 << 20), b"")
    for chunk in chunks:
        digest.update(chunk)
    file.seek(0)

    upload = Upload(
        owner=owner,
        original_name=name,
        size=size,
        sha256=digest.hexdigest(),
        column_mapping=clean_mapping,
        day_first=settings.INGEST_DAY_FIRST if day_first is None else day_first,
        strict=strict,
        seq=now_seq(),
    )
    upload.file.save(name, file if isinstance(file, File) else File(file, name=name), save=False)
    upload.save()
    _publish(upload)
    if enqueue:
        transaction.on_commit(lambda: enqueue_upload(upload=upload))
    return upload


def create_upload_from_path(*, owner, path: str | Path, **options) -> Upload:
    path = Path(path)
    with path.open("rb") as handle:
        return create_upload(owner=owner, file=File(handle, name=path.name), name=path.name, **options)


def enqueue_upload(*, upload: Upload) -> None:
    from .tasks import process_upload

    result = process_upload.delay(str(upload.pk))
    Upload.objects.filter(pk=upload.pk).update(task_id=result.id)
    upload.task_id = result.id


def cancel_upload(*, upload: Upload, by) -> Upload:
    """Stop an upload. A queued one is revoked and ends now; a running one is flagged and the
    task ends it as cancelled within half a second, keeping none of its line writes. The
    task is never terminated: its process may already be running another task."""
    if upload.owner_id != getattr(by, "pk", None):
        raise PermissionDenied("Not your upload.")
    now = timezone.now()
    if Upload.objects.filter(pk=upload.pk, status=Upload.Status.QUEUED).update(
        status=Upload.Status.CANCELLED, finished_at=now, seq=now_seq(), error_message="Cancelled before it started."
    ):
        if upload.task_id:
            from config.celery import app

            app.control.revoke(upload.task_id)
    elif Upload.objects.filter(pk=upload.pk, status=Upload.Status.PROCESSING).update(
        status=Upload.Status.CANCELLING, seq=now_seq()
    ):
        _set_cancel_flag(upload.pk)
    upload.refresh_from_db()
    _publish(upload)
    return upload


def retry_upload(*, upload: Upload, by) -> Upload:
    """Queue a failed or cancelled upload again, from a clean slate, with the same options."""
    if upload.owner_id != getattr(by, "pk", None):
        raise PermissionDenied("Not your upload.")
    if upload.status not in (Upload.Status.FAILED, Upload.Status.CANCELLED):
        raise UploadRejected(f"Only a failed or cancelled upload can be retried; this one is {upload.status}.")
    _clear_cancel_flag(upload.pk)
    RowIssue.objects.filter(upload=upload).delete()
    fields = _reset_fields()
    fields.update(status=Upload.Status.QUEUED, seq=now_seq(), heartbeat_at=None, started_at=None, finished_at=None)
    Upload.objects.filter(pk=upload.pk).update(**fields)
    upload.refresh_from_db()
    _publish(upload)
    enqueue_upload(upload=upload)
    return upload


def _clear_cancel_flag(upload_id) -> None:
    try:
        _redis().delete(_cancel_key(upload_id))
    except redis.RedisError:
        pass


def _reset_fields() -> dict:
    return dict(
        total_rows=None,
        processed_rows=0,
        imported_rows=0,
        rejected_rows=0,
        warning_count=0,
        created_suppliers=0,
        created_materials=0,
        created_purchase_orders=0,
        created_lines=0,
        updated_lines=0,
        error_message="",
        resolved_mapping={},
    )


def _publish(upload: Upload, *, final: bool = False) -> None:
    """Tell every open page. Publishing is best effort: the Upload row is the truth, and a
    page rebuilds from it whenever its socket reconnects."""
    try:
        from realtime.publish import publish_upload

        publish_upload(upload, final=final)
    except Exception:  # noqa: BLE001 - a lost event must never fail a load
        log.warning("Could not publish the state of upload %s", upload.pk, exc_info=True)


# --- processing (the Celery task's body) ----------------------------------------------------


class UploadBusy(Exception):
    """Another live worker holds this upload; try again once its lease may have expired."""

    def __init__(self, retry_in: float):
        super().__init__(f"upload is being processed elsewhere; retry in {retry_in:.0f}s")
        self.retry_in = retry_in


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
            # A statement may be running for a while (a big merge chunk): stop it now.
            self.interrupt()

    def run(self) -> None:
        last_heartbeat = last_db_check = 0.0
        try:
            while not self.stopping.wait(0.1):
                now = time.monotonic()
                try:
                    if _redis().exists(_cancel_key(self.upload_id)):
                        self._cancel()
                except redis.RedisError:
                    pass
                try:
                    if now - last_db_check >= 1.0:
                        last_db_check = now
                        if Upload.objects.filter(pk=self.upload_id, status=Upload.Status.CANCELLING).exists():
                            self._cancel()
                    if now - last_heartbeat >= settings.INGEST_HEARTBEAT_SECONDS:
                        last_heartbeat = now
                        Upload.objects.filter(pk=self.upload_id).update(heartbeat_at=timezone.now())
                except Exception:  # noqa: BLE001 - a busy SQLite or a blip must not kill the watch
                    log.debug("supervisor check failed", exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def should_stop(self) -> bool:
        return self.cancelled.is_set()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


def _claim(*, upload_id, task_id: str) -> Upload | None:
    """Take the upload for this run, or return None if it is already finished. A queued
    upload, or a running one whose heartbeat is stale (its worker died), can be taken."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.INGEST_STALE_SECONDS)
    upload = Upload.objects.filter(pk=upload_id).first()
    if upload is None or upload.is_finished:
        return None
    running = Q(status__in=[Upload.Status.PROCESSING, Upload.Status.CANCELLING])
    claimable = Q(status=Upload.Status.QUEUED) | (running & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)))
    fields = _reset_fields()
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
    if not Upload.objects.filter(claimable, pk=upload_id).update(**fields):
        upload.refresh_from_db()
        if upload.is_finished:
            return None
        age = (now - upload.heartbeat_at).total_seconds() if upload.heartbeat_at else 0
        raise UploadBusy(retry_in=max(1.0, settings.INGEST_STALE_SECONDS - age + 1))
    # A fresh start: whatever an earlier, dead run staged or reported is discarded.
    StagedLine.objects.filter(upload_id=upload_id).delete()
    RowIssue.objects.filter(upload_id=upload_id).delete()
    upload.refresh_from_db()
    return upload


def task_result(upload: Upload) -> dict:
    """What the task returns: the seed plan's keys, so Flower and the result backend show them."""
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
    "resolved_mapping",
)


def process_upload(*, upload_id, task_id: str = "") -> dict:
    """Run the pipeline for one upload and record how it ended. Safe to call twice for the
    same upload (a redelivered task): a finished upload is returned as it is, a running one
    raises UploadBusy, and a run taken over from a dead worker starts from a clean slate."""
    from .outcomes import Cancelled, PipelineError
    from .pipeline import run_pipeline

    upload = _claim(upload_id=upload_id, task_id=task_id)
    if upload is None:
        existing = Upload.objects.filter(pk=upload_id).first()
        return task_result(existing) if existing else {"upload_id": str(upload_id), "status": "missing"}
    if upload.status == Upload.Status.CANCELLING:  # cancelled while its worker was dying
        return _finish(upload, status=Upload.Status.CANCELLED)
    _publish(upload)

    supervisor = _Supervisor(upload.pk, interrupt=_statement_interrupter(upload.pk))
    supervisor.start()

    def on_progress(current: Upload, description: str) -> None:
        current.seq = now_seq()
        if supervisor.should_stop():
            current.status = Upload.Status.CANCELLING
        # The page first, then the row: both carry the same seq, so a page that rebuilds
        # from the row in between never goes back, and the fragment does not wait on a
        # database busy with the load (measured: 13–23 ms at p95, of a 50 ms budget).
        _publish(current)
        if not connection.in_atomic_block:  # inside the merge, the row is written at the end
            Upload.objects.filter(pk=current.pk).update(
                seq=current.seq, heartbeat_at=timezone.now(), **{f: getattr(current, f) for f in _COUNTERS}
            )

    status, error = Upload.Status.COMPLETED, ""
    try:
        run_pipeline(upload=upload, on_progress=on_progress, should_stop=supervisor.should_stop)
    except Cancelled:
        status = Upload.Status.CANCELLED
    except PipelineError as exc:
        status, error = Upload.Status.FAILED, str(exc)
    except SoftTimeLimitExceeded:
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
            log.exception("Upload %s failed in the database", upload.pk)
            status, error = Upload.Status.FAILED, f"Database error while loading: {sys.exc_info()[1]}"
    except TRANSIENT_ERRORS:
        supervisor.stop()
        _release(upload)
        raise
    except Exception as exc:
        log.exception("Upload %s failed unexpectedly", upload.pk)
        status, error = Upload.Status.FAILED, f"Internal error while loading: {type(exc).__name__}: {exc}"
    finally:
        supervisor.stop()
    return _finish(upload, status=status, error=error)


def _statement_interrupter(upload_id) -> Callable[[], None]:
    """A function another thread may call to stop the statements this thread is running,
    on its own connection and on the upload's line writer's."""
    from .loading import interrupt_line_writes

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
    try:
        Upload.objects.filter(pk=upload.pk).update(heartbeat_at=None, seq=now_seq())
    except Exception:  # noqa: BLE001 - the lease then expires by itself
        log.warning("Could not release upload %s", upload.pk, exc_info=True)


def _finish(upload: Upload, *, status: str, error: str = "") -> dict:
    upload.status = status
    upload.finished_at = timezone.now()
    upload.seq = now_seq()
    upload.heartbeat_at = None
    if status == Upload.Status.CANCELLED:
        upload.created_lines = upload.updated_lines = 0
        upload.error_message = error or (
            "Cancelled; no lines were written."
            + (
                " The suppliers, materials and purchase orders it created are kept."
                if upload.created_suppliers or upload.created_materials or upload.created_purchase_orders
                else ""
            )
        )
    elif status == Upload.Status.FAILED:
        upload.created_lines = upload.updated_lines = 0
        upload.error_message = error
    fields = {f: getattr(upload, f) for f in _COUNTERS}
    Upload.objects.filter(pk=upload.pk).update(
        status=status,
        finished_at=upload.finished_at,
        seq=upload.seq,
        heartbeat_at=None,
        error_message=upload.error_message,
        **fields,
    )
    _clear_cancel_flag(upload.pk)
    _publish(upload, final=True)
    return task_result(upload)


def _transient_errors() -> tuple[type[BaseException], ...]:
    from django.db import InterfaceError, OperationalError

    return (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)


TRANSIENT_ERRORS = _transient_errors()
