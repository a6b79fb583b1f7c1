"""The analytics' Celery tasks: thin, the work is in the modules they name."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from . import scoring


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, max_retries=8)
def check_upload_prices(upload_id: str) -> dict:
    """The price-outlier rule of a completed upload's quality score (scoring.check_prices);
    retried when the database is busy or away (a lock it would wait for, a restart)."""
    stored = scoring.check_prices(upload_id=upload_id)
    return {"upload_id": upload_id, "score": float(stored.score) if stored and stored.score is not None else None}
