"""Browse pages: suppliers, materials, purchase orders and lines, each a list with search
and filters and a page of its own; lines export as CSV or .xlsx. Thin views over
`catalog`; every signed-in user sees the loaded data, and only their own uploads."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from ingestion.models import Material, PurchaseOrder, Supplier

from . import catalog, selectors
from .exports import csv_response, xlsx_response
from .filters import LineFilter

PER_PAGE = 25
LINES_PER_PAGE = 50


def _page(request, items, per_page: int = PER_PAGE):
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def _lines_context(request, line_filter: LineFilter) -> dict:
    page = _page(request, catalog.lines(line_filter=line_filter), LINES_PER_PAGE)
    return {"lines": page, "line_rows": catalog.line_rows(page.object_list), "filter": line_filter}


@login_required
@require_GET
@selectors.reads_summaries
def supplier_list(request):
    q = (request.GET.get("q") or "").strip()[:100]
    return render(request, "analytics/browse/suppliers.html", {"page": _page(request, catalog.suppliers(q=q)), "q": q})


@login_required
@require_GET
def supplier_detail(request, supplier_id: int):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    line_filter = LineFilter.from_query(request.GET).with_(supplier=supplier.pk)
    context = _lines_context(request, line_filter)
    context.update(
        supplier=supplier,
        spend=catalog.spend_by_currency(line_filter=line_filter),
        purchase_orders=catalog.purchase_orders(supplier=supplier.pk)[:20],
        uploads=catalog.uploads_touching(user=request.user, line_filter=LineFilter(supplier=supplier.pk))[:20],
    )
    scores = catalog.quality_over_time(user=request.user, line_filter=LineFilter(supplier=supplier.pk))
    context.update(
        scores=scores,
        scores_chart={
            "kind": "line",
            "currency": "Score",
            "items": [{"name": s["finished"].strftime("%Y-%m-%d %H:%M"), "value": str(s["score"])} for s in scores],
        },
    )
    return render(request, "analytics/browse/supplier.html", context)


@login_required
@require_GET
def material_list(request):
    q = (request.GET.get("q") or "").strip()[:100]
    category = (request.GET.get("category") or "").strip()[:200]
    return render(
        request,
        "analytics/browse/materials.html",
        {
            "page": _page(request, catalog.materials(q=q, category=category)),
            "q": q,
            "category": category,
            "categories": catalog.categories(),
        },
    )


@login_required
@require_GET
def material_detail(request, material_id: int):
    material = get_object_or_404(Material, pk=material_id)
    line_filter = LineFilter.from_query(request.GET).with_(material=material.pk)
    context = _lines_context(request, line_filter)
    context.update(
        material=material,
        prices=selectors.material_prices(material=material, line_filter=LineFilter()),
        uploads=catalog.uploads_touching(user=request.user, line_filter=LineFilter(material=material.pk))[:20],
    )
    return render(request, "analytics/browse/material.html", context)


@login_required
@require_GET
def purchase_order_list(request):
    line_filter = LineFilter.from_query(request.GET)
    q = line_filter.q
    orders = catalog.purchase_orders(q=q, supplier=line_filter.supplier, line_filter=line_filter)
    return render(
        request,
        "analytics/browse/purchase_orders.html",
        {"page": _page(request, orders), "filter": line_filter, "q": q},
    )


@login_required
@require_GET
def purchase_order_detail(request, purchase_order_id: int):
    order = get_object_or_404(PurchaseOrder.objects.select_related("supplier"), pk=purchase_order_id)
    line_filter = LineFilter(purchase_order=order.pk)
    context = _lines_context(request, line_filter)
    context.update(
        order=order,
        spend=catalog.spend_by_currency(line_filter=line_filter),
        uploads=catalog.uploads_touching(user=request.user, line_filter=line_filter)[:20],
    )
    return render(request, "analytics/browse/purchase_order.html", context)


@login_required
@require_GET
def line_list(request):
    line_filter = LineFilter.from_query(request.GET)
    context = _lines_context(request, line_filter)
    context.update(currencies=selectors.currencies(line_filter=line_filter), categories=catalog.categories())
    return render(request, "analytics/browse/lines.html", context)


@login_required
@require_GET
def line_export_csv(request):
    line_filter = LineFilter.from_query(request.GET)
    return csv_response(
        filename="lines", header=catalog.EXPORT_HEADER, rows=catalog.export_rows(line_filter=line_filter)
    )


@login_required
@require_GET
def line_export_xlsx(request):
    line_filter = LineFilter.from_query(request.GET)
    return xlsx_response(
        filename="lines", header=catalog.EXPORT_HEADER, rows=catalog.export_rows(line_filter=line_filter)
    )
