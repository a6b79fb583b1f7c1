"""Undo of an upload: every line it changed gets back the values it replaced, every line it
created goes, in ONE transaction, set-based, and recorded as versions like any change; the
purchase-order dates and currencies it changed get their old values back, and the
suppliers, materials and purchase orders it created go unless something else uses them.
`lines_changed` ("reverted") is sent once that transaction commits.

What a line had before the upload is the version just before the upload's first version of
that line (versions of one line are numbered in the order they were written: a load waits
for the lines another holds). The lines it created that nothing changed since have no
version (`line_history`): the revert records theirs first. A line a later upload changed
since is not the upload's to take back (unless that later upload was reverted itself):
then nothing is reverted, and the caller lists those lines and uploads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from . import dimensions, line_history, po_changes, spend_lines
from .line_history import VERSION_COLUMNS
from .models import LineVersion, PurchaseOrderLine, Upload
from .signals import lines_changed

WRITTEN = "('created', 'updated')"


@dataclass
class Blocker:
    line_id: int
    po_number: str
    line_number: int
    upload_id: str
    file: str


class RevertBlocked(Exception):
    """Later uploads changed lines this one wrote; nothing was reverted."""

    def __init__(self, blockers: list[Blocker], total: int):
        super().__init__(f"{total} lines this upload wrote were changed since by later uploads; nothing was reverted.")
        self.blockers = blockers
        self.total = total


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _param(upload: Upload):
    return upload.pk.hex if connection.vendor == "sqlite" else str(upload.pk)


def revert_lines(*, upload: Upload, user_id) -> tuple[int, int]:
    """Revert the lines `upload` wrote. Returns (restored, removed). Raises RevertBlocked."""
    versions = _table(LineVersion)
    lines = _table(PurchaseOrderLine)
    uploads = _table(Upload)
    u = _param(upload)
    now = timezone.now()
    # Each line the upload wrote: its first and last version of this upload.
    mine = (
        f"(SELECT line_id, MIN(id) AS first_id, MAX(id) AS last_id FROM {versions} "
        f"WHERE upload_id = %s AND kind IN {WRITTEN} GROUP BY line_id) t"
    )
    # The state each replaced: the version just before its first (none for a created line).
    before = (
        f"(SELECT t.line_id, pv.material_id, pv.quantity, pv.unit_price, pv.total_price, pv.currency, "
        f"pv.upload_id, pv.purchase_order_id, pv.line_number, pv.order_date FROM {mine} JOIN {versions} pv "
        f"ON pv.id = (SELECT MAX(x.id) FROM {versions} x WHERE x.line_id = t.line_id AND x.id < t.first_id)) b"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT id FROM {lines} WHERE upload_id = %s OR id IN (SELECT line_id FROM {versions} "
                "WHERE upload_id = %s) ORDER BY id FOR UPDATE",
                [u, u],
            )
        # The lines it created that nothing changed since have no version yet: record them.
        line_history.record_implicit(cursor, lines_where="l.upload_id = %s", params=[u])
        # A later upload's change blocks, unless that upload was reverted itself.
        cursor.execute(
            f"SELECT t.line_id, later.upload_id FROM {mine} JOIN {versions} later ON later.line_id = t.line_id "
            f"AND later.id > t.last_id AND later.kind IN {WRITTEN} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {uploads} r WHERE r.id = later.upload_id AND r.reverted_at IS NOT NULL) "
            "ORDER BY t.line_id, later.id",
            [u],
        )
        later = cursor.fetchall()
        if later:
            raise RevertBlocked(_blockers(later[:200]), total=len({line for line, _ in later}))
        cursor.execute(
            f"UPDATE {versions} SET valid_to = %s WHERE valid_to IS NULL AND line_id IN "
            f"(SELECT line_id FROM {versions} WHERE upload_id = %s AND kind IN {WRITTEN})",
            [now, u],
        )
        columns = ", ".join(VERSION_COLUMNS)
        # Changed lines: their replaced values again, as a new version, then in the lines.
        cursor.execute(
            f"INSERT INTO {versions} ({columns}) SELECT b.line_id, b.purchase_order_id, b.line_number, b.material_id, "
            f"b.quantity, b.unit_price, b.total_price, b.currency, b.order_date, 'reverted', %s, NULL, %s, %s FROM {before}",
            [now, u, user_id, u],
        )
        restored = cursor.rowcount
        cursor.execute(
            f"UPDATE {lines} SET material_id = b.material_id, quantity = b.quantity, unit_price = b.unit_price, "
            f"total_price = b.total_price, currency = b.currency, upload_id = b.upload_id, updated_at = %s "
            f"FROM {before} WHERE {lines}.id = b.line_id",
            [now, u],
        )
        spend_lines.mark_lines(line_ids=LineVersion.objects.filter(upload_id=upload.pk).values("line_id"))
        # Created lines: recorded as removed, then gone.
        created = (
            f"SELECT line_id FROM {versions} WHERE upload_id = %s AND kind = 'created' AND line_id NOT IN "
            f"(SELECT line_id FROM {versions} WHERE upload_id = %s AND kind = 'reverted')"
        )
        cursor.execute(
            f"INSERT INTO {versions} ({columns}) SELECT l.id, l.purchase_order_id, l.line_number, l.material_id, "
            f"l.quantity, l.unit_price, l.total_price, l.currency, NULL, 'removed', %s, %s, %s, %s "
            f"FROM {lines} l WHERE l.id IN ({created})",
            [now, now, u, user_id, u, u],
        )
        cursor.execute(f"DELETE FROM {lines} WHERE id IN ({created})", [u, u])
        removed = cursor.rowcount
        po_changes.revert(cursor, upload=u, user_id=user_id, now=now)
        Upload.objects.filter(pk=upload.pk).update(reverted_at=now)
        # Suppliers, materials and POs it created stay if anything else uses them.
        dimensions.release_created(upload)
        transaction.on_commit(lambda: lines_changed.send(sender=Upload, upload=upload, kind="reverted"))
    upload.reverted_at = now
    return restored, removed


def _blockers(rows: list[tuple]) -> list[Blocker]:
    found = []
    rows = [(line, uuid.UUID(str(upload)) if upload else None) for line, upload in rows]  # SQLite: hex
    line_ids = {line for line, _ in rows}
    known = {
        line.pk: line for line in PurchaseOrderLine.objects.filter(pk__in=line_ids).select_related("purchase_order")
    }
    uploads = Upload.objects.in_bulk({upload for _, upload in rows if upload})
    for line_id, upload_id in rows:
        line = known.get(line_id)
        other = uploads.get(upload_id)
        found.append(
            Blocker(
                line_id=line_id,
                po_number=line.purchase_order.po_number if line else "",
                line_number=line.line_number if line else 0,
                upload_id=str(upload_id),
                file=other.original_name if other else "",
            )
        )
    return found
