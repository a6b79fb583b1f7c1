"""Housekeeping: the stored files and row issues of uploads finished more than
INGEST_KEEP_FILES_DAYS ago are deleted (a periodic task runs this hourly). The purchase
orders and lines they loaded stay, and so does each upload's summary (name, counts, status)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import RowIssue, Upload

log = logging.getLogger(__name__)


def expired_uploads(*, days: int | None = None):
    """Finished uploads older than the retention period (by when they finished)."""
    days = settings.INGEST_KEEP_FILES_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    return Upload.objects.filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff),
        status__in=Upload.FINISHED_STATUSES,
    ).exclude(status=Upload.Status.AWAITING_REVIEW)  # its Load reads the file again


def delete_expired_files(*, days: int | None = None) -> dict[str, int]:
    uploads = expired_uploads(days=days)
    issues, _ = RowIssue.objects.filter(upload__in=uploads).delete()
    files = 0
    for upload in uploads.exclude(file="").only("pk", "file").iterator():
        name = upload.file.name
        try:
            upload.file.storage.delete(name)
        except OSError:
            log.warning("Could not delete the stored file %s of upload %s", name, upload.pk, exc_info=True)
            continue
        Upload.objects.filter(pk=upload.pk).update(file="")
        files += 1
    if files or issues:
        log.info("Housekeeping: deleted %s stored files and %s row issues", files, issues)
    return {"files": files, "row_issues": issues}
