"""Reads for the browse pages: suppliers, materials and purchase orders (lists with search
and filters, one page each) and lines. Counts are correlated subqueries, so a page of 25
suppliers costs 25 small index lookups (in the spend summary for a supplier's lines), never
a pass over every line."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from ingestion.models import Material, PurchaseOrder, PurchaseOrderLine, Supplier, Upload

from .filters import LineFilter
from .models import SupplierMonth
from .selectors import LINE_FIELDS, SPEND, freshness, line_record


def _count(queryset: QuerySet, outer: str) -> Coalesce:
    counted = queryset.filter(**{outer: OuterRef("pk")}).order_by().values(outer).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def suppliers(*, q: str = "") -> QuerySet[Supplier]:
    """Line counts from the spend summary when it is fresh (a supplier's lines are
    thousands of index lookups through its purchase orders), else from the lines."""
    found = Supplier.objects.all()
    if q:
        found = found.filter(Q(name__icontains=q) | Q(code__icontains=q))
    if freshness() == "ready":
        summed = (
            SupplierMonth.objects.filter(supplier_id=OuterRef("pk"))
            .order_by()
            .values("supplier_id")
            .annotate(n=Sum("lines"))
            .values("n")
        )
        line_count: Coalesce = Coalesce(Subquery(summed, output_field=IntegerField()), 0)
    else:
        line_count = _count(PurchaseOrderLine.objects.all(), "purchase_order__supplier")
    return found.annotate(po_count=_count(PurchaseOrder.objects.all(), "supplier"), line_count=line_count).order_by(
        "name", "code", "pk"
    )


def materials(*, q: str = "", category: str = "") -> QuerySet[Material]:
    found = Material.objects.all()
    if q:
        found = found.filter(Q(code__icontains=q) | Q(description__icontains=q))
    if category:
        found = found.filter(category=category)
    return found.annotate(line_count=_count(PurchaseOrderLine.objects.all(), "material")).order_by(
        "code", "description", "pk"
    )


def categories() -> list[str]:
    return list(
        Material.objects.exclude(category="").order_by("category").values_list("category", flat=True).distinct()
    )


def purchase_orders(
    *, q: str = "", supplier: int | None = None, line_filter: LineFilter | None = None
) -> QuerySet[PurchaseOrder]:
    found = PurchaseOrder.objects.select_related("supplier")
    if q:
        found = found.filter(po_number__icontains=q)
    if supplier:
        found = found.filter(supplier_id=supplier)
    if line_filter and line_filter.date_from:
        found = found.filter(order_date__gte=line_filter.date_from)
    if line_filter and line_filter.date_to:
        found = found.filter(order_date__lte=line_filter.date_to)
    if line_filter and line_filter.currency:
        found = found.filter(currency=line_filter.currency)
    return found.annotate(line_count=_count(PurchaseOrderLine.objects.all(), "purchase_order")).order_by(
        "-order_date", "po_number"
    )


def lines(*, line_filter: LineFilter) -> QuerySet[PurchaseOrderLine]:
    """The filtered lines, newest order first, as rows (dicts) for tables and exports."""
    return (
        line_filter.apply(PurchaseOrderLine.objects.all())
        .order_by("-purchase_order__order_date", "purchase_order__po_number", "line_number")
        .values(*LINE_FIELDS, "upload_id", "spend")
    )


def line_rows(rows) -> list[dict]:
    return [
        dict(line_record(row), total_price=row["total_price"], upload_id=row["upload_id"], spend=row["spend"])
        for row in rows
    ]


def spend_by_currency(*, line_filter: LineFilter) -> list[dict]:
    return [
        dict(row)
        for row in (
            line_filter.apply(PurchaseOrderLine.objects.order_by())
            .values("currency")
            .annotate(spend=Sum(SPEND), lines=Count("id"))
            .order_by("-lines", "currency")
        )
    ]


def uploads_touching(*, user, line_filter: LineFilter) -> QuerySet[Upload]:
    """The user's own uploads that last wrote any of the filtered lines (uploads are
    owner-only, so others' never show)."""
    upload_ids = line_filter.apply(PurchaseOrderLine.objects.order_by()).values("upload_id")
    return Upload.objects.filter(owner_id=user.pk, pk__in=upload_ids).order_by("-created_at")


def quality_over_time(*, user, line_filter: LineFilter) -> list[dict]:
    """The quality scores of the user's uploads that wrote any of the filtered lines, oldest
    first."""
    from .models import UploadQuality

    scored = (
        UploadQuality.objects.filter(
            upload__in=uploads_touching(user=user, line_filter=line_filter), score__isnull=False
        )
        .select_related("upload")
        .order_by("upload__finished_at")
    )
    return [
        {
            "upload": q.upload,
            "finished": q.upload.finished_at,
            "score": q.score,
            "grade": q.grade,
        }
        for q in scored
    ]


EXPORT_HEADER = [
    "PO number",
    "Line",
    "Order date",
    "Supplier code",
    "Supplier",
    "Material",
    "Description",
    "Category",
    "UOM",
    "Quantity",
    "Unit price",
    "Total price",
    "Currency",
    "Spend line",  # "yes": money paid from a payments file (quantity and PO number given for every row)
]


def export_rows(*, line_filter: LineFilter):
    """The filtered lines in the export's columns, read in chunks."""
    row: Any
    for row in lines(line_filter=line_filter).iterator(chunk_size=5000):
        yield [
            row["purchase_order__po_number"],
            row["line_number"],
            row["purchase_order__order_date"],
            row["purchase_order__supplier__code"],
            row["purchase_order__supplier__name"],
            row["material__code"],
            row["material__description"],
            row["material__category"],
            row["material__unit_of_measure"],
            row["quantity"],
            row["unit_price"],
            row["total_price"],
            row["currency"],
            "yes" if row["spend"] else "",
        ]
