"""What the analytics do when the lines change (ingestion.signals.lines_changed): count a
refresh as pending and queue it once the sender's transaction commits. Nothing slow runs
here: the sender is the load's own task."""

from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import receiver

from ingestion.signals import lines_changed

from . import summaries

log = logging.getLogger(__name__)


@receiver(lines_changed, dispatch_uid="analytics.refresh_summaries")
def queue_refresh(sender, *, upload, kind: str = "", **kwargs) -> None:
    if not summaries.available():
        return
    summaries.mark_pending()
    upload_id = str(upload.pk)

    def enqueue() -> None:
        from .tasks import refresh_summaries

        try:
            refresh_summaries.delay(upload_id)
        except Exception:  # noqa: BLE001 - a broker blip must not fail the load; the pages fall back
            log.warning("Could not queue the analytics refresh for upload %s (%s)", upload_id, kind, exc_info=True)
            summaries.give_up()

    transaction.on_commit(enqueue)
