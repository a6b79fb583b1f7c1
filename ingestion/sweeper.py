"""The sweeper: heals what no task will. Celery beat runs it every INGEST_SWEEP_SECONDS.

- An upload whose run is gone (its lease is stale: the worker was killed, its machine
  vanished, or a retry never came back) goes back to the queue and is sent again. With Redis
  as the broker a dead worker's task would otherwise come back only after the visibility
  timeout (hours); the lease makes a second run safe and loading is idempotent.
- A cancelling upload whose run is gone ends cancelled (only a run could otherwise end it),
  and the suppliers, materials and purchase orders its runs created that nothing else uses
  go with it (as when a run ends it, or when its runs keep dying: see runner._claim).
- A queued upload whose task never reached the broker (the broker was down), or was lost with
  it (a Redis restarted without persistence), is sent again once it has waited
  INGEST_REQUEUE_AFTER_SECONDS and its queue holds nothing: a task still waiting keeps it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from . import dimensions
from .models import Upload
from .queueing import queue_for, waiting_messages
from .retrying import MAX_RETRY_DELAY
from .services import enqueue_upload, now_seq, publish_state

log = logging.getLogger(__name__)

RUN_GONE_NOTE = "Cancelled; its worker had stopped, and no lines were written."


def run_is_gone() -> Q:
    """Running uploads whose run no longer lives: a lease older than INGEST_STALE_SECONDS, or
    a lease released for a retry (at most MAX_RETRY_DELAY away) that has not come back."""
    stale = timezone.now() - timedelta(seconds=settings.INGEST_STALE_SECONDS)
    released_before = now_seq() - int((settings.INGEST_STALE_SECONDS + MAX_RETRY_DELAY) * 1_000_000)
    return Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, seq__lt=released_before)


def end_cancel_without_run(*, upload_id) -> bool:
    """End a cancelling (or processing) upload whose run is gone as cancelled, now. False if
    a live run holds it (that run ends it). What its runs created that nothing uses goes in the
    same transaction: whoever sees it cancelled sees them gone."""
    with transaction.atomic():
        ended = _end_cancelled(upload_id)
        if ended:
            upload = Upload.objects.get(pk=upload_id)
            dimensions.release_after_end(upload)  # no partial data: what its dead run created goes too
    if ended:
        publish_state(upload, final=True)
    return bool(ended)


def _end_cancelled(upload_id) -> int:
    return Upload.objects.filter(
        run_is_gone(), pk=upload_id, status__in=[Upload.Status.PROCESSING, Upload.Status.CANCELLING]
    ).update(
        status=Upload.Status.CANCELLED,
        finished_at=timezone.now(),
        seq=now_seq(),
        heartbeat_at=None,
        created_lines=0,
        updated_lines=0,
        error_message=RUN_GONE_NOTE,
    )


def requeue_without_run(*, upload_id) -> bool:
    """Put a processing upload whose run is gone back in the queue and send its task. A run
    that died holding its lease counts as a crash (see runner._claim); one whose retry was
    lost does not."""
    upload = Upload.objects.filter(run_is_gone(), pk=upload_id, status=Upload.Status.PROCESSING).first()
    if upload is None:
        return False
    crashed = upload.heartbeat_at is not None
    if not Upload.objects.filter(
        pk=upload_id, status=Upload.Status.PROCESSING, heartbeat_at=upload.heartbeat_at
    ).update(
        status=Upload.Status.QUEUED,
        heartbeat_at=None,
        task_id="",
        seq=now_seq(),
        crashed_runs=F("crashed_runs") + int(crashed),
    ):
        return False  # a run took it meanwhile
    upload.refresh_from_db()
    log.warning("Upload %s lost its worker (%s runs died); queued again", upload_id, upload.crashed_runs)
    publish_state(upload)
    enqueue_upload(upload=upload)
    return True


def sweep() -> dict[str, int]:
    counts = {"cancelled": 0, "requeued": 0, "sent": 0}
    gone = Upload.objects.filter(run_is_gone())
    for upload_id in gone.filter(status=Upload.Status.CANCELLING).values_list("pk", flat=True):
        counts["cancelled"] += end_cancel_without_run(upload_id=upload_id)
    for upload_id in gone.filter(status=Upload.Status.PROCESSING).values_list("pk", flat=True):
        counts["requeued"] += requeue_without_run(upload_id=upload_id)

    waited = now_seq() - int(settings.INGEST_REQUEUE_AFTER_SECONDS * 1_000_000)
    depths: dict[str, int | None] = {}
    for upload in Upload.objects.filter(status=Upload.Status.QUEUED, seq__lt=waited).order_by("seq"):
        if upload.task_id:
            queue = queue_for(upload)
            if queue not in depths:
                depths[queue] = waiting_messages(queue)
            if depths[queue] != 0:  # its task may still wait there (or the broker cannot tell)
                continue
        upload.seq = now_seq()
        Upload.objects.filter(pk=upload.pk, status=Upload.Status.QUEUED).update(seq=upload.seq)
        if not enqueue_upload(upload=upload):
            break  # the broker is down: the next sweep tries again
        counts["sent"] += 1
        publish_state(upload)
    if any(counts.values()):
        log.info("Sweep: %s", counts)
    return counts
