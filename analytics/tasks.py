"""Celery tasks of the analytics: a few lines around a service call."""

from celery import shared_task

from . import summaries
from .live import announce_refreshed


@shared_task(ignore_result=True, acks_late=True)
def refresh_summaries(upload_id: str | None = None) -> dict:
    """Bring the summaries up to date with what an upload changed, then tell the open
    analytics pages (after the refresh, so their reload reads the new figures)."""
    try:
        result = summaries.refresh(upload_id=upload_id, queued=True)
    except Exception:
        summaries.give_up()  # the pages read the lines until the next whole rebuild
        raise
    announce_refreshed()
    return result
