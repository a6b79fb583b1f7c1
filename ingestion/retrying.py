"""How long a run that hit a transient error (the database or Redis unreachable, a
connection killed) is retried: by elapsed time, not by a count, so a long outage ends in a
clear failure and short ones never add up. A lease wait (another run holds the upload) is
not an outage and never counts."""

from __future__ import annotations

import logging
import time

from django.conf import settings

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 60.0


def outage_started(*, since: float | None, run_seconds: float) -> float:
    """When the current outage began: a run that worked for a while between two failures
    means the services were back, and a new outage starts now."""
    if since is None or run_seconds > settings.INGEST_STALE_SECONDS:
        return time.time()
    return since


def retry_delay(*, upload_id, since: float, error: BaseException) -> float | None:
    """Seconds until the next try (backoff doubling up to a minute), or None once the outage
    has lasted INGEST_RETRY_FOR_SECONDS: the upload is then failed with a message."""
    elapsed = time.time() - since
    if elapsed < settings.INGEST_RETRY_FOR_SECONDS:
        return min(MAX_RETRY_DELAY, max(2.0, elapsed))
    log.error("Upload %s: giving up after %.0f s of %s", upload_id, elapsed, type(error).__name__, exc_info=error)
    give_up(upload_id=upload_id, seconds=elapsed)
    return None


def give_up(*, upload_id, seconds: float) -> None:
    from .models import Upload
    from .runner import _finish

    upload = Upload.objects.filter(pk=upload_id, status__in=Upload.ACTIVE_STATUSES).first()
    if upload is None:
        return
    if upload.status == Upload.Status.CANCELLING:
        _finish(upload, status=Upload.Status.CANCELLED)
        return
    minutes = max(1, round(seconds / 60))
    _finish(
        upload,
        status=Upload.Status.FAILED,
        error=(
            f"The database or Redis kept failing for {minutes} minute{'s' if minutes != 1 else ''}, so the load "
            "was stopped and none of its lines were written. Retry it once they are back."
        ),
    )
