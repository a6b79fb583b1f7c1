"""Celery tasks: a few lines around the runner."""

from celery import shared_task

from .runner import TRANSIENT_ERRORS, UploadBusy, run_upload


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5)
def process_upload(self, upload_id: str) -> dict:
    try:
        return run_upload(upload_id=upload_id, task_id=self.request.id)
    except UploadBusy as busy:  # a redelivery while the first run's lease is live
        raise self.retry(countdown=busy.retry_in, max_retries=1000) from busy
    except TRANSIENT_ERRORS as exc:  # database or Redis gone for a moment: never bad input
        raise self.retry(exc=exc, countdown=min(60, 2 ** (self.request.retries + 1))) from exc
