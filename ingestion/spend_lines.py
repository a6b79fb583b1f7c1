"""Which lines are spend lines: those last written by an upload that gave a value for every
row (`Upload.constants`: a payments file's quantity 1, one PO number), so that a buyer can
tell money paid from a priced PO line on every page and in every export.

A line's kind follows the upload that last wrote it. The line writers leave the flag to
its database default; after a load the lines it wrote take its kind, and after a revert
the lines it gave back take the kind of the upload whose values they got again."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from .models import PurchaseOrderLine, Upload


def is_spend_upload(upload: Upload) -> bool:
    return bool(upload.constants)


def mark_written(*, upload: Upload) -> int:
    """After a load: the lines `upload` wrote take its kind. Returns the lines changed.

    On PostgreSQL, lines another load holds right now (it is overwriting them) are skipped,
    never waited for: that load marks them itself when it ends."""
    spend = is_spend_upload(upload)
    if connection.vendor != "postgresql":
        return PurchaseOrderLine.objects.filter(upload_id=upload.pk, spend=not spend).update(spend=spend)
    table = connection.ops.quote_name(PurchaseOrderLine._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET spend = %s WHERE id IN (SELECT id FROM {table} "
            "WHERE upload_id = %s AND spend = %s FOR UPDATE SKIP LOCKED)",
            [spend, str(upload.pk), not spend],
        )
        return cursor.rowcount


def mark_lines(*, line_ids: QuerySet) -> None:
    """Lines whose writer changed (a revert): each takes the kind of the upload that now
    last wrote it. A line whose upload is gone keeps its kind."""
    spend_uploads = Upload.objects.exclude(constants={}).values("pk")
    lines = PurchaseOrderLine.objects.filter(id__in=line_ids)
    lines.filter(spend=False, upload_id__in=spend_uploads).update(spend=True)
    lines.filter(spend=True, upload_id__isnull=False).exclude(upload_id__in=spend_uploads).update(spend=False)
