"""An upload's quality score, once its lines are committed: the receiver of
`ingestion.signals.lines_changed` (kind "loaded") stores the score of what the load
counted before the upload's row says completed, so its final card carries it (with
"checking prices…"), and sends the one rule that needs the lines of every upload, price
outliers, to a task (`tasks.check_upload_prices`): over a million lines that statement
alone would cost more than a tenth of the load. The task finishes the score and pushes
the card again.

The outlier rule is the analytics' own (modified z-score above 3.5 within a material and
currency, when it has at least 5 prices and their spread is not zero), taken over every
line of the materials this upload's lines carry, in one set-based statement: one sort by
price per group for the median, one by distance from it for the MAD (of the groups with
enough prices only), window aggregates instead of joins back per group, and the groups
compared bytewise (COLLATE "C": equality is the same, sorting cheaper). The figures are percentile_cont's, bit for bit: the
same float8 interpolation, lo + 0.5 x (hi - lo). Each outlier becomes a warning on the
upload."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ingestion import quality
from ingestion.models import PurchaseOrderLine, RowIssue, Upload
from ingestion.services import publish_state

from .models import UploadQuality
from .selectors import OUTLIER_MIN_PRICES, OUTLIER_Z
from .stats import as_decimal, interpolate

log = logging.getLogger(__name__)

_UPLOAD_OUTLIERS_SQL = """
WITH ranked AS (
    SELECT l.id, l.material_id, l.currency COLLATE "C" AS currency, l.unit_price::float8 AS p,
           l.upload_id = %(upload)s AS mine,
           row_number() OVER (PARTITION BY l.material_id, l.currency COLLATE "C" ORDER BY l.unit_price::float8) AS rn,
           count(*) OVER (PARTITION BY l.material_id, l.currency COLLATE "C") AS n
    FROM ingestion_purchaseorderline l
    WHERE l.material_id IN (SELECT material_id FROM ingestion_purchaseorderline WHERE upload_id = %(upload)s)
),
centred AS (
    SELECT id, material_id, currency, p, mine,
           max(p) FILTER (WHERE rn = (n - 1) / 2 + 1) OVER g AS lo,
           max(p) FILTER (WHERE rn = n / 2 + 1) OVER g AS hi
    FROM ranked WHERE n >= %(min_prices)s
    WINDOW g AS (PARTITION BY material_id, currency)
),
spread AS (
    SELECT id, material_id, currency, p, mine, median, abs(p - median) AS dev,
           row_number() OVER (PARTITION BY material_id, currency ORDER BY abs(p - median)) AS rn,
           count(*) OVER (PARTITION BY material_id, currency) AS n
    FROM (SELECT *, lo + 0.5 * (hi - lo) AS median FROM centred) c
),
scored AS (
    SELECT id, p, mine, median,
           max(dev) FILTER (WHERE rn = (n - 1) / 2 + 1) OVER g AS lo,
           max(dev) FILTER (WHERE rn = n / 2 + 1) OVER g AS hi
    FROM spread WINDOW g AS (PARTITION BY material_id, currency)
)
SELECT po.po_number, l.line_number, l.unit_price, s.median, 0.6745 * (s.p - s.median) / s.mad AS z
FROM (SELECT *, lo + 0.5 * (hi - lo) AS mad FROM scored) s
JOIN ingestion_purchaseorderline l ON l.id = s.id
JOIN ingestion_purchaseorder po ON po.id = l.purchase_order_id
WHERE s.mine AND s.mad > 0 AND abs(0.6745 * (s.p - s.median) / s.mad) > %(z)s
ORDER BY po.po_number, l.line_number
"""


def score_loaded_upload(sender, *, upload: Upload, kind: str, quality: quality.QualityCounter | None = None, **kwargs):
    """lines_changed's receiver: the score of a load whose lines were just committed, and
    its price check sent to a task."""
    if kind != "loaded" or quality is None:
        return
    stored = store_score(upload=upload, counter=quality)
    if not stored.prices_checked:
        from .tasks import check_upload_prices

        check_upload_prices.delay(str(upload.pk))


def store_score(*, upload: Upload, counter: quality.QualityCounter) -> UploadQuality:
    """The score of what the load counted, stored at once (the final card shows it, with
    "checking prices…"): every rule but the price outliers, which `check_prices` adds."""
    started = time.perf_counter()  # storing waits on the database: its wall time is its cost
    counts = counter.close()
    result = quality.report(counts)
    stored, _ = UploadQuality.objects.update_or_create(
        upload_id=upload.pk,
        defaults={
            "score": result["score"],
            "grade": result["grade"] or "",
            "dimensions": result["dimensions"],
            "rules": result["rules"],
            "counts": counts,
            "prices_checked": not upload.imported_rows,
            "seconds": counter.seconds + time.perf_counter() - started,
            "price_check_seconds": 0,
        },
    )
    return stored


def check_prices(*, upload_id) -> UploadQuality | None:
    """The price-outlier rule of an upload's score, after its load: the outliers become
    warnings on the upload, the score is finished, and its card goes out again. Done once:
    an upload already checked (a redelivered task) is left as it is."""
    started = time.perf_counter()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Never the one that waits for long: a lock held elsewhere (an upload's row being
            # written, a table being emptied) makes this run fail fast and its task retry.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '500ms'")
        stored = UploadQuality.objects.select_for_update().filter(upload_id=upload_id).first()
        if stored is None or stored.prices_checked:
            return stored
        upload = Upload.objects.get(pk=upload_id)
        outliers = upload_outliers(upload_id=upload_id)
        counts = dict(stored.counts)
        counts["price_outliers"] = [upload.imported_rows, len(outliers)]
        if outliers:
            _store_warnings(upload, outliers)
            Upload.objects.filter(pk=upload_id).update(warning_count=F("warning_count") + len(outliers))
        result = quality.report(counts)
        stored.score = result["score"]
        stored.grade = result["grade"] or ""
        stored.dimensions = result["dimensions"]
        stored.rules = result["rules"]
        stored.counts = counts
        stored.prices_checked = True
        stored.price_check_seconds = time.perf_counter() - started
        stored.save()
    upload.refresh_from_db()
    publish_state(upload)
    return stored


def requeue_price_checks(*, older_than_seconds: float, limit: int = 100) -> list[str]:
    """Price checks that never ran (the broker was away when their load completed, or their
    task was lost) are queued again, so no card says "checking prices…" for ever. A check
    queued twice runs once: `check_prices` skips an upload already checked."""
    from .tasks import check_upload_prices

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    waiting = [
        str(pk)
        for pk in UploadQuality.objects.filter(prices_checked=False, upload__finished_at__lt=cutoff)
        .order_by("upload__finished_at")
        .values_list("upload_id", flat=True)[:limit]
    ]
    for upload_id in waiting:
        check_upload_prices.delay(upload_id)
    if waiting:
        log.warning("Queued %d price checks again that had not run: %s", len(waiting), ", ".join(waiting))
    return waiting


def upload_outliers(*, upload_id) -> list[dict]:
    """The outliers among the lines an upload wrote, by PO number and line: {po_number,
    line_number, unit_price, median, z_score}, prices as the analytics print them."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # The two sorts stay in memory (a million lines need some 100 MB for a moment),
            # and on one connection: parallel workers would each build the same hash first.
            cursor.execute("SET LOCAL work_mem = '128MB'; SET LOCAL max_parallel_workers_per_gather = 0")
            cursor.execute(
                _UPLOAD_OUTLIERS_SQL,
                {"upload": upload_id, "min_prices": OUTLIER_MIN_PRICES, "z": float(OUTLIER_Z)},
            )
            rows = cursor.fetchall()
    else:
        rows = _outliers_in_python(upload_id)
    return [
        {
            "po_number": po_number,
            "line_number": line_number,
            "unit_price": str(as_decimal(unit_price)),
            "median": str(as_decimal(median)),
            "z_score": round(z, 2),
        }
        for po_number, line_number, unit_price, median, z in rows
    ]


def _outliers_in_python(upload_id) -> list[tuple]:
    """The same rule without PostgreSQL (SQLite, a development checkout)."""
    upload_id = str(upload_id)  # the task passes a string; the lines hold UUIDs
    lines = PurchaseOrderLine.objects.order_by()
    touched = lines.filter(upload_id=upload_id).values("material_id")
    groups: dict[tuple, list[tuple]] = {}
    fields = ("material_id", "currency", "unit_price", "upload_id", "purchase_order__po_number", "line_number")
    for material_id, currency, unit_price, upload, po_number, line_number in (
        lines.filter(material_id__in=touched).values_list(*fields).iterator(chunk_size=5000)
    ):
        groups.setdefault((material_id, currency), []).append((float(unit_price), str(upload), po_number, line_number))
    found = []
    for members in groups.values():
        if len(members) < OUTLIER_MIN_PRICES or not any(m[1] == upload_id for m in members):
            continue
        values = sorted(m[0] for m in members)
        median = interpolate(values, 0.5)
        mad = interpolate(sorted(abs(p - median) for p in values), 0.5)
        if mad <= 0:
            continue
        for p, upload, po_number, line_number in members:
            z = 0.6745 * (p - median) / mad
            if upload == upload_id and abs(z) > float(OUTLIER_Z):
                found.append((po_number, line_number, p, median, z))
    return sorted(found, key=lambda row: (row[0], row[1]))


def _store_warnings(upload: Upload, outliers: list[dict]) -> None:
    """One warning per outlier, inserted in one statement."""
    header = upload.resolved_field_to_header.get("unit_price") or upload.resolved_field_to_header.get("total_price", "")
    values = [
        quality.outlier_value(
            unit_price=o["unit_price"],
            po_number=o["po_number"],
            line_number=o["line_number"],
            median=o["median"],
            z_score=o["z_score"],
        )
        for o in outliers
    ]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f'INSERT INTO {RowIssue._meta.db_table} (upload_id, row_number, "column", value, message, severity) '
                "SELECT %s, NULL, %s, v, %s, %s FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, i) ORDER BY i",
                [upload.pk, header[:255], quality.OUTLIER_MESSAGE, RowIssue.Severity.WARNING, values],
            )
        return
    RowIssue.objects.bulk_create(
        [
            RowIssue(
                upload=upload,
                row_number=None,
                column=header[:255],
                value=value,
                message=quality.OUTLIER_MESSAGE,
                severity=RowIssue.Severity.WARNING,
            )
            for value in values
        ],
        batch_size=2000,
    )
