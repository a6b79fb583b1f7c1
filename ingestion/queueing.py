"""Sending an upload's task to the broker: which queue it goes to, and what happens when the
broker cannot be reached. A send that fails leaves the upload queued with a note for the
user; the sweeper sends it again once the broker answers."""

from __future__ import annotations

import logging

import kombu.exceptions
from django.conf import settings

from .models import Upload

log = logging.getLogger(__name__)

BROKER_DOWN_NOTE = (
    "Queued, but the task queue cannot be reached right now; this file will start by itself once it is back."
)
# What publishing raises when the broker is down or refuses (kombu wraps socket and Redis errors).
BROKER_ERRORS: tuple[type[BaseException], ...] = (kombu.exceptions.OperationalError, OSError)


def queue_for(upload: Upload) -> str:
    """Large files have a queue of their own, so a small file never waits behind them."""
    if upload.size >= settings.INGEST_LARGE_FILE_BYTES:
        return settings.INGEST_LARGE_QUEUE
    return settings.INGEST_QUEUE


def send_upload(*, upload: Upload) -> bool:
    """Queue the upload's task. True if the broker took it; False (logged, and a note on the
    upload) if the broker is down: the upload then stays queued for the sweeper."""
    from .tasks import process_upload

    try:
        # Flower and the worker's log show argsrepr: the file's name beside the bare id.
        argsrepr = f"({upload.original_name[:80]!r}, {str(upload.pk)!r})"
        result = process_upload.apply_async(args=(str(upload.pk),), queue=queue_for(upload), argsrepr=argsrepr)
    except BROKER_ERRORS:
        log.warning("The broker is unreachable; upload %s stays queued for the sweeper", upload.pk, exc_info=True)
        Upload.objects.filter(pk=upload.pk, status=Upload.Status.QUEUED).update(
            task_id="", error_message=BROKER_DOWN_NOTE
        )
        upload.task_id, upload.error_message = "", BROKER_DOWN_NOTE
        return False
    # A run that already claimed the upload recorded the task id itself.
    Upload.objects.filter(pk=upload.pk, status=Upload.Status.QUEUED).update(task_id=result.id, error_message="")
    upload.task_id = result.id
    if upload.status == Upload.Status.QUEUED:
        upload.error_message = ""
    return True


def waiting_messages(queue: str) -> int | None:
    """How many messages wait in a broker queue (not those a worker holds), or None if the
    broker cannot tell. Works on Redis and RabbitMQ alike: a passive declare."""
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            try:
                return channel.queue_declare(queue=queue, passive=True).message_count
            except kombu.exceptions.ChannelError:
                return 0  # no such queue (Redis drops an empty list): nothing waits
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - a channel the error closed already
                    pass
    except BROKER_ERRORS:
        return None
