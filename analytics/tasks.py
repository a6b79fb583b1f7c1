"""The analytics' Celery tasks: a few lines around the service each names."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from . import scoring, summaries
from .live import announce_refreshed


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=8)
def refresh_summaries(self, upload_id: str | None = None) -> dict:
    """Bring the summaries up to date with what an upload changed, then tell the open
    analytics pages (after the refresh, so their reload reads the new figures). A database
    that is busy (a lock it would wait for) or away is tried again before giving up."""
    try:
        # Never the one that waits for long: a lock held elsewhere (a table being emptied, a
        # load's rows) makes it fail fast and try again later.
        result = summaries.refresh(upload_id=upload_id, queued=True, lock_timeout_ms=500)
    except OperationalError as exc:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=exc, countdown=min(2**self.request.retries, 30)) from exc
        summaries.give_up()
        raise
    except Exception:
        summaries.give_up()  # the pages read the lines until the next whole rebuild
        raise
    announce_refreshed()
    return result


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, max_retries=8)
def check_upload_prices(upload_id: str) -> dict:
    """The price-outlier rule of a completed upload's quality score (scoring.check_prices);
    retried when the database is busy or away (a lock it would wait for, a restart)."""
    stored = scoring.check_prices(upload_id=upload_id)
    return {"upload_id": upload_id, "score": float(stored.score) if stored and stored.score is not None else None}


@shared_task(ignore_result=True)
def sweep_analytics() -> dict:
    """Beat: finish what a lost task or an absent broker left undone (price checks never
    run, summaries no refresh is coming for), so no page waits for ever."""
    requeued = scoring.requeue_price_checks(older_than_seconds=settings.ANALYTICS_STALE_SECONDS)
    rebuild = summaries.needs_rebuild(stale_after_seconds=settings.ANALYTICS_STALE_SECONDS)
    if rebuild:
        summaries.forget_pending()
        summaries.mark_pending()
        refresh_summaries.delay(None)
    return {"price_checks": requeued, "rebuild": rebuild}
