"""Celery tasks: a few lines around a service call."""

import time

from celery import shared_task

from . import housekeeping, retrying, sweeper
from .runner import TRANSIENT_ERRORS, UploadBusy, run_upload


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def process_upload(self, upload_id: str, outage_since: float | None = None) -> dict | None:
    started = time.monotonic()
    try:
        return run_upload(upload_id=upload_id, task_id=self.request.id)
    except UploadBusy as busy:  # a redelivery while the first run's lease is live
        raise self.retry(args=(upload_id,), kwargs={"outage_since": outage_since}, countdown=busy.retry_in) from busy
    except TRANSIENT_ERRORS as exc:  # database or Redis gone for a while: never bad input
        since = retrying.outage_started(since=outage_since, run_seconds=time.monotonic() - started)
        delay = retrying.retry_delay(upload_id=upload_id, since=since, error=exc)
        if delay is None:
            return None
        raise self.retry(args=(upload_id,), kwargs={"outage_since": since}, countdown=delay) from exc


@shared_task(ignore_result=True)
def sweep_uploads() -> dict:
    return sweeper.sweep()


@shared_task
def delete_expired_files() -> dict:
    return housekeeping.delete_expired_files()
