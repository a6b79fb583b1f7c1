"""An upload's quality score, finished once its lines are committed: the receiver of
`ingestion.signals.lines_changed` (kind "loaded") adds the one rule that needs the lines of
every upload, price outliers, and stores the score (UploadQuality) before the upload's
row says completed, so its final card carries it.

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

from django.db import connection, transaction
from django.db.models import F

from ingestion import quality
from ingestion.models import PurchaseOrderLine, RowIssue, Upload

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
    """lines_changed's receiver: the score of a load whose lines were just committed."""
    if kind != "loaded" or quality is None:
        return
    store_score(upload=upload, counter=quality)


def store_score(*, upload: Upload, counter: quality.QualityCounter) -> UploadQuality:
    """Close the counter, add the price outliers (as warnings on the upload, counted on
    `upload.warning_count` in memory and on its row) and store the score."""
    started = time.perf_counter()
    counts = counter.close()
    with transaction.atomic():
        outliers = upload_outliers(upload_id=upload.pk) if upload.imported_rows else []
        counts["price_outliers"] = [upload.imported_rows, len(outliers)]
        if outliers:
            _store_warnings(upload, outliers)
            Upload.objects.filter(pk=upload.pk).update(warning_count=F("warning_count") + len(outliers))
            upload.warning_count += len(outliers)
        result = quality.report(counts)
        seconds = counter.seconds + time.perf_counter() - started
        stored, _ = UploadQuality.objects.update_or_create(
            upload_id=upload.pk,
            defaults={
                "score": result["score"],
                "grade": result["grade"] or "",
                "dimensions": result["dimensions"],
                "rules": result["rules"],
                "seconds": seconds,
            },
        )
    return stored


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
    lines = PurchaseOrderLine.objects.order_by()
    touched = lines.filter(upload_id=upload_id).values("material_id")
    groups: dict[tuple, list[tuple]] = {}
    fields = ("material_id", "currency", "unit_price", "upload_id", "purchase_order__po_number", "line_number")
    for material_id, currency, unit_price, upload, po_number, line_number in (
        lines.filter(material_id__in=touched).values_list(*fields).iterator(chunk_size=5000)
    ):
        groups.setdefault((material_id, currency), []).append((float(unit_price), upload, po_number, line_number))
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
