"""The /analytics/ pages, their JSON and their CSV: thin views over `selectors`. Every view
needs a signed-in user. Filters come from the URL (LineFilter), so a view is a link."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ingestion.services import now_seq

from . import selectors
from .exports import csv_response
from .filters import LineFilter

SPEND_CSV_HEADER = ["key", "label", "spend", "lines"]


def _page(request) -> int:
    try:
        return max(1, int(request.GET.get("page") or 1))
    except ValueError:
        return 1


def _by(request) -> str:
    by = request.GET.get("by") or "supplier"
    if by not in selectors.SPEND_GROUPS:
        raise Http404("by must be supplier, category or month.")
    return by


def _material(material_id: int):
    material = selectors.material_or_none(material_id=material_id)
    if material is None:
        raise Http404("No such material.")
    return material


def _spend_rows(data: dict) -> list[list]:
    rows = [[r["key"], r["label"], r["spend"], r["lines"]] for r in data["rows"]]
    if data["other"]["lines"]:
        rows.append(["", "Other", data["other"]["spend"], data["other"]["lines"]])
    rows.append(["", f"Total ({data['currency']})", data["total"], data["lines"]])
    return rows


# --- pages ----------------------------------------------------------------------------------


@login_required
@require_GET
@selectors.reads_summaries
def overview(request):
    line_filter = LineFilter.from_query(request.GET)
    spend = {by: selectors.spend(line_filter=line_filter, by=by) for by in selectors.SPEND_GROUPS}
    return render(
        request,
        "analytics/overview.html",
        {
            "filter": line_filter,
            "since": now_seq(),
            "spend": spend,
            "currency": spend["supplier"]["currency"],
            "currencies": selectors.currencies(line_filter=line_filter),
            "counts": selectors.overview_counts(line_filter=line_filter),
            "uploads": selectors.latest_uploads(user=request.user),
            "charts": {by: _spend_chart(spend[by], by) for by in selectors.SPEND_GROUPS},
            "freshness": selectors.freshness(),
        },
    )


def _spend_chart(data: dict, by: str) -> dict:
    items = [{"name": r["label"], "value": r["spend"]} for r in data["rows"]]
    if by != "month" and data["other"]["lines"]:
        items.append({"name": "Other", "value": data["other"]["spend"]})
    kind = {"supplier": "bar", "category": "treemap", "month": "line"}[by]
    return {"kind": kind, "currency": data["currency"], "items": items}


@login_required
@require_GET
@selectors.reads_summaries
def material(request, material_id: int):
    material = _material(material_id)
    line_filter = LineFilter.from_query(request.GET)
    prices = selectors.material_prices(material=material, line_filter=line_filter)
    comparison = selectors.supplier_comparison(material=material, line_filter=line_filter)
    return render(
        request,
        "analytics/material.html",
        {
            "material": material,
            "filter": line_filter,
            "since": now_seq(),
            "prices": prices,
            "comparison": comparison,
            "prices_chart": {"kind": "prices", "currencies": prices["currencies"]},
            "comparison_chart": {
                "kind": "box",
                "currency": comparison["currency"],
                "suppliers": comparison["suppliers"],
            },
            "changes": selectors.material_changes(material=material),
            "freshness": selectors.freshness(),
        },
    )


@login_required
@require_GET
@selectors.reads_summaries
def outliers(request):
    line_filter = LineFilter.from_query(request.GET)
    page = _page(request)
    found = selectors.outliers(line_filter=line_filter, page=page)
    pages = max(1, -(-found.total // selectors.OUTLIERS_PER_PAGE))
    return render(
        request,
        "analytics/outliers.html",
        {
            "filter": line_filter,
            "outliers": found,
            "page": page,
            "pages": pages,
            "since": now_seq(),
            "freshness": selectors.freshness(),
        },
    )


@login_required
@require_GET
@selectors.reads_summaries
def variance(request):
    line_filter = LineFilter.from_query(request.GET)
    page = _page(request)
    data = selectors.variance(line_filter=line_filter, page=page)
    pages = max(1, -(-data["total"] // selectors.OUTLIERS_PER_PAGE))
    return render(
        request,
        "analytics/variance.html",
        {
            "filter": line_filter,
            "data": data,
            "page": page,
            "pages": pages,
            "since": now_seq(),
            "freshness": selectors.freshness(),
        },
    )


# --- JSON -----------------------------------------------------------------------------------


@login_required
@require_GET
@selectors.reads_summaries
def spend_json(request):
    return JsonResponse(selectors.spend(line_filter=LineFilter.from_query(request.GET), by=_by(request)))


@login_required
@require_GET
@selectors.reads_summaries
def prices_json(request, material_id: int):
    material = _material(material_id)
    return JsonResponse(selectors.material_prices(material=material, line_filter=LineFilter.from_query(request.GET)))


@login_required
@require_GET
@selectors.reads_summaries
def suppliers_json(request, material_id: int):
    material = _material(material_id)
    return JsonResponse(
        selectors.supplier_comparison(material=material, line_filter=LineFilter.from_query(request.GET))
    )


@login_required
@require_GET
@selectors.reads_summaries
def outliers_json(request):
    found = selectors.outliers(line_filter=LineFilter.from_query(request.GET), page=_page(request))
    return JsonResponse({"total": found.total, "page": _page(request), "results": found.results})


@login_required
@require_GET
@selectors.reads_summaries
def variance_json(request):
    return JsonResponse(selectors.variance(line_filter=LineFilter.from_query(request.GET), page=_page(request)))


# --- CSV ------------------------------------------------------------------------------------


@login_required
@require_GET
@selectors.reads_summaries
def spend_csv(request):
    by = _by(request)
    data = selectors.spend(line_filter=LineFilter.from_query(request.GET), by=by)
    return csv_response(filename=f"spend-by-{by}-{data['currency']}", header=SPEND_CSV_HEADER, rows=_spend_rows(data))


@login_required
@require_GET
@selectors.reads_summaries
def prices_csv(request, material_id: int):
    material = _material(material_id)
    data = selectors.material_prices(material=material, line_filter=LineFilter.from_query(request.GET))
    header = ["currency", "unit", "lines", "min", "median", "max", "average", "last", "last date", "last supplier"]
    rows = []
    for g in data["currencies"]:
        last = g["last"] or {}
        rows.append(
            [
                g["currency"],
                g["unit"],
                g["lines"],
                g["min"],
                g["median"],
                g["max"],
                g["average"],
                last.get("price"),
                last.get("date"),
                last.get("supplier"),
            ]
        )
    return csv_response(filename=f"material-{material.pk}-prices", header=header, rows=rows)


COMPARISON_FIELDS = [
    "supplier",
    "lines",
    "min",
    "q1",
    "median",
    "q3",
    "max",
    "average",
    "last",
    "last_date",
    "volume",
    "spend",
]


@login_required
@require_GET
@selectors.reads_summaries
def suppliers_csv(request, material_id: int):
    material = _material(material_id)
    data = selectors.supplier_comparison(material=material, line_filter=LineFilter.from_query(request.GET))
    rows = [[s[f] for f in COMPARISON_FIELDS] + [data["currency"]] for s in data["suppliers"]]
    return csv_response(
        filename=f"material-{material.pk}-suppliers", header=[*COMPARISON_FIELDS, "currency"], rows=rows
    )


OUTLIER_FIELDS = [
    "order_date",
    "po_number",
    "line_number",
    "supplier",
    "material",
    "unit",
    "quantity",
    "unit_price",
    "currency",
    "median",
    "z_score",
]


@login_required
@require_GET
@selectors.reads_summaries
def outliers_csv(request):
    line_filter = LineFilter.from_query(request.GET)
    first = selectors.outliers(line_filter=line_filter, page=1, per_page=1)
    found = selectors.outliers(line_filter=line_filter, page=1, per_page=max(1, first.total))
    return csv_response(
        filename="outliers", header=OUTLIER_FIELDS, rows=([r[f] for f in OUTLIER_FIELDS] for r in found.results)
    )


VARIANCE_FIELDS = [
    "supplier",
    "material",
    "unit",
    "currency",
    "quantity",
    "previous_average",
    "average",
    "spend",
    "variance",
    "variance_percent",
]


@login_required
@require_GET
@selectors.reads_summaries
def variance_csv(request):
    line_filter = LineFilter.from_query(request.GET)
    data = selectors.variance(line_filter=line_filter, page=1, per_page=10**9)
    return csv_response(
        filename="price-variance",
        header=VARIANCE_FIELDS,
        rows=([r[f] for f in VARIANCE_FIELDS] for r in data["results"]),
    )
