"""Price analytics: every read the /analytics/ pages and their JSON make. Aggregation
happens in the database (sums, counts and, on PostgreSQL, percentiles and the outlier
statistics); only aggregates and one page of lines ever leave it. Amounts are never
converted between currencies: every figure is per currency (and a material has one unit of
measure, part of its identity)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Abs, TruncMonth

from ingestion.models import LineVersion, Material, PurchaseOrderLine, Supplier, Upload

from .filters import LineFilter
from .models import (
    CategoryMonth,
    LineOutlier,
    MaterialMonth,
    MaterialTotal,
    SpendMonth,
    SummaryState,
    SupplierMonth,
    VarianceGroup,
)
from .stats import as_decimal, group_percentiles, interpolate, on_postgresql
from .summaries import variance_amount

CENT = Decimal("0.01")
TOP = 10
SPEND = ExpressionWrapper(F("quantity") * F("unit_price"), output_field=DecimalField(max_digits=40, decimal_places=10))
OUTLIER_Z = Decimal("3.5")
OUTLIER_MIN_PRICES = 5
OUTLIERS_PER_PAGE = 50
SPEND_GROUPS = ("supplier", "category", "month")


def money(value: Decimal | float | None) -> str:
    return str(Decimal(str(value or 0)).quantize(CENT))


def price(value: Decimal | float | None) -> str | None:
    number = as_decimal(value)
    return None if number is None else str(number)


def all_lines() -> QuerySet[PurchaseOrderLine]:
    return PurchaseOrderLine.objects.order_by()


def filtered_lines(*, line_filter: LineFilter) -> QuerySet[PurchaseOrderLine]:
    return line_filter.apply(all_lines())


# --- summaries (analytics.summaries keeps them equal to the lines) ---------------------------


_STATE: ContextVar[dict | None] = ContextVar("analytics_summary_state", default=None)


def _summary_state() -> dict:
    """SummaryState's row (read once per request inside `one_state_per_request`)."""
    held = _STATE.get()
    if held is not None:
        return held
    if not on_postgresql():
        return {}
    row = (
        SummaryState.objects.filter(pk=1)
        .values("built_at", "pending", "variance_to", "variance_count", "variance_totals")
        .first()
    )
    return dict(row) if row else {}


@contextmanager
def one_state_per_request():
    """Read the summaries' state once for all the queries of one page (a view wraps itself
    in it): the page is then read from one side, summaries or lines, and pays one lookup."""
    token = _STATE.set(_summary_state())
    try:
        yield
    finally:
        _STATE.reset(token)


def reads_summaries(view):
    """A view decorator: the view's queries share one read of the summaries' state."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        with one_state_per_request():
            return view(*args, **kwargs)

    return wrapped


def freshness() -> str:
    """ "ready": the summaries may be read; "updating": a refresh is queued, the pages read
    the lines meanwhile (and say so); "lines": no summaries (SQLite, or never built)."""
    state = _summary_state()
    if not state or state["built_at"] is None:
        return "lines"
    return "updating" if state["pending"] > 0 else "ready"


def _unfiltered(line_filter: LineFilter) -> bool:
    return line_filter == LineFilter()


def _month_aligned(line_filter: LineFilter) -> bool:
    starts = line_filter.date_from is None or line_filter.date_from.day == 1
    ends = line_filter.date_to is None or (line_filter.date_to + timedelta(days=1)).day == 1
    return starts and ends


def _by_month_summary(line_filter: LineFilter) -> bool:
    """Whether SpendMonth answers this filter exactly: every filter it has a column for, and
    a period of whole months (a search or one material or purchase order reads the lines)."""
    return (
        not line_filter.material
        and not line_filter.purchase_order
        and not line_filter.q
        and _month_aligned(line_filter)
        and freshness() == "ready"
    )


def _spend_months(line_filter: LineFilter, *, by: str = "") -> QuerySet:
    """The smallest spend summary with a column for each filter and for `by`: per category
    (no supplier asked), per supplier (no category asked), else per both (indexed by each)."""
    model: type[SpendMonth] | type[SupplierMonth] | type[CategoryMonth]
    if not line_filter.supplier and by != "supplier":
        model = CategoryMonth
    elif not line_filter.category and by not in ("category", "last_day"):
        model = SupplierMonth
    else:
        model = SpendMonth
    return model.objects.order_by().filter(**_summary_filters(line_filter))


def _summary_filters(line_filter: LineFilter) -> dict[str, Any]:
    """The filter as conditions on a summary's columns (a period as whole months)."""
    found: dict[str, Any] = {}
    if line_filter.supplier:
        found["supplier_id"] = line_filter.supplier
    if line_filter.category:
        found["category"] = line_filter.category
    if line_filter.date_from:
        found["month__gte"] = line_filter.date_from
    if line_filter.date_to:
        found["month__lte"] = line_filter.date_to.replace(day=1)
    if line_filter.currency:
        found["currency"] = line_filter.currency
    return found


def _material_months(line_filter: LineFilter) -> QuerySet:
    """Materials bought: per month when a period is asked, else their totals."""
    model: type[MaterialMonth] | type[MaterialTotal]
    model = MaterialMonth if line_filter.date_from or line_filter.date_to else MaterialTotal
    return model.objects.order_by().filter(**_summary_filters(line_filter.with_(supplier=None)))


def currencies(*, line_filter: LineFilter) -> list[str]:
    """The currencies of the filtered lines, most lines first."""
    if _by_month_summary(line_filter):
        summed = (
            _spend_months(line_filter.with_(currency=""))
            .values("currency")
            .annotate(n=Sum("lines"))
            .order_by("-n", "currency")
        )
        return [row["currency"] for row in summed]
    rows = (
        filtered_lines(line_filter=line_filter.with_(currency=""))
        .values("currency")
        .annotate(n=Count("id"))
        .order_by("-n", "currency")
    )
    return [row["currency"] for row in rows]


def chosen_currency(*, line_filter: LineFilter) -> str:
    """The currency asked for, else the one most of the filtered lines are in."""
    if line_filter.currency:
        return line_filter.currency
    found = currencies(line_filter=line_filter)
    return found[0] if found else settings.INGEST_DEFAULT_CURRENCY


# --- spend ----------------------------------------------------------------------------------


def spend(*, line_filter: LineFilter, by: str, top: int = TOP) -> dict:
    """Spend (quantity x unit price) of the filtered lines in one currency, grouped by
    supplier or category (the `top` largest, the rest as "other") or by month (every month
    in order; lines without an order date are the "other")."""
    if by not in SPEND_GROUPS:
        raise ValueError(f"by must be one of {', '.join(SPEND_GROUPS)}")
    currency = chosen_currency(line_filter=line_filter)
    if _by_month_summary(line_filter):
        rows = _spend_from_summary(line_filter=line_filter.with_(currency=currency), by=by, top=top)
        total = _spend_months(line_filter.with_(currency=currency)).aggregate(spend=Sum("spend"), lines=Sum("lines"))
        total["lines"] = total["lines"] or 0
    else:
        rows, total = _spend_from_lines(line_filter=line_filter.with_(currency=currency), by=by, top=top)
    shown_spend = sum((Decimal(str(r["spend"] or 0)) for r in rows), Decimal(0))
    shown_lines = sum(r["lines"] for r in rows)
    total_spend = Decimal(str(total["spend"] or 0))
    return {
        "currency": currency,
        "from": line_filter.date_from.isoformat() if line_filter.date_from else None,
        "to": line_filter.date_to.isoformat() if line_filter.date_to else None,
        "total": money(total_spend),
        "lines": total["lines"],
        "rows": [dict(r, spend=money(r["spend"])) for r in rows],
        "other": {"spend": money(total_spend - shown_spend), "lines": total["lines"] - shown_lines},
    }


def _spend_from_summary(*, line_filter: LineFilter, by: str, top: int) -> list[dict[str, Any]]:
    months = _spend_months(line_filter, by=by)
    rows: list[dict[str, Any]] = []
    if by == "supplier":
        found = list(
            months.values("supplier_id")
            .annotate(spend=Sum("spend"), lines=Sum("lines"))
            .order_by("-spend", "supplier_id")[:top]
        )
        names = {
            s["id"]: s["name"] or s["code"]
            for s in Supplier.objects.filter(pk__in=[g["supplier_id"] for g in found]).values("id", "name", "code")
        }
        for g in found:
            rows.append(
                {
                    "key": str(g["supplier_id"]),
                    "label": names[g["supplier_id"]],
                    "spend": g["spend"],
                    "lines": g["lines"],
                }
            )
    elif by == "category":
        for c in (
            months.values("category")
            .annotate(spend=Sum("spend"), lines=Sum("lines"))
            .order_by("-spend", "category")[:top]
        ):
            category = c["category"]
            rows.append(
                {"key": category, "label": category or "(no category)", "spend": c["spend"], "lines": c["lines"]}
            )
    else:
        for m in (
            months.filter(month__isnull=False)
            .values("month")
            .annotate(spend=Sum("spend"), lines=Sum("lines"))
            .order_by("month")
        ):
            key = f"{m['month']:%Y-%m}"
            rows.append({"key": key, "label": key, "spend": m["spend"], "lines": m["lines"]})
    return rows


def _spend_from_lines(*, line_filter: LineFilter, by: str, top: int) -> tuple[list[dict[str, Any]], dict]:
    lines = filtered_lines(line_filter=line_filter)
    total = lines.aggregate(spend=Sum(SPEND), lines=Count("id"))
    rows: list[dict[str, Any]] = []
    if by == "supplier":
        by_supplier = (
            lines.values(
                "purchase_order__supplier_id", "purchase_order__supplier__name", "purchase_order__supplier__code"
            )
            .annotate(spend=Sum(SPEND), lines=Count("id"))
            .order_by("-spend", "purchase_order__supplier_id")[:top]
        )
        for g in by_supplier:
            label = g["purchase_order__supplier__name"] or g["purchase_order__supplier__code"]
            rows.append(
                {"key": str(g["purchase_order__supplier_id"]), "label": label, "spend": g["spend"], "lines": g["lines"]}
            )
    elif by == "category":
        by_category = (
            lines.values("material__category")
            .annotate(spend=Sum(SPEND), lines=Count("id"))
            .order_by("-spend", "material__category")[:top]
        )
        for c in by_category:
            category = c["material__category"]
            rows.append(
                {"key": category, "label": category or "(no category)", "spend": c["spend"], "lines": c["lines"]}
            )
    else:
        by_month = (
            lines.filter(purchase_order__order_date__isnull=False)
            .annotate(month=TruncMonth("purchase_order__order_date"))
            .values("month")
            .annotate(spend=Sum(SPEND), lines=Count("id"))
            .order_by("month")
        )
        for m in by_month:
            key = m["month"].strftime("%Y-%m")
            rows.append({"key": key, "label": key, "spend": m["spend"], "lines": m["lines"]})
    return rows, total


def overview_counts(*, line_filter: LineFilter) -> dict:
    if _by_month_summary(line_filter) and not line_filter.supplier:
        lines = _spend_months(line_filter).aggregate(n=Sum("lines"))["n"] or 0
        suppliers = _spend_months(line_filter, by="supplier").aggregate(n=Count("supplier_id", distinct=True))["n"]
        materials = _material_months(line_filter).aggregate(n=Count("material_id", distinct=True))["n"]
        return {"lines": lines, "suppliers": suppliers, "materials": materials}
    lines = filtered_lines(line_filter=line_filter)
    return lines.aggregate(
        lines=Count("id"),
        suppliers=Count("purchase_order__supplier_id", distinct=True),
        materials=Count("material_id", distinct=True),
    )


def latest_uploads(*, user, limit: int = 10) -> QuerySet[Upload]:
    """The user's own latest finished uploads (uploads are owner-only)."""
    return Upload.objects.filter(owner_id=user.pk, status=Upload.Status.COMPLETED).order_by("-finished_at")[:limit]


# --- one material ---------------------------------------------------------------------------


def material_or_none(*, material_id: int) -> Material | None:
    return Material.objects.filter(pk=material_id).first()


def _last_prices(lines: QuerySet[PurchaseOrderLine], *, group: list[str]) -> dict[tuple, dict]:
    """The latest line (by order date, then id) of each group: its price, date, supplier."""
    fields = [*group, "unit_price", "purchase_order__order_date", "purchase_order__supplier__name", "id"]
    found: Iterable[tuple]
    if on_postgresql():
        latest_first = lines.order_by(*group, F("purchase_order__order_date").desc(nulls_last=True), "-id")
        found = latest_first.distinct(*group).values_list(*fields)
    else:
        oldest_first = lines.order_by(F("purchase_order__order_date").asc(nulls_first=True), "id")
        found = oldest_first.values_list(*fields).iterator(chunk_size=5000)
    last: dict[tuple, dict] = {}
    for row in found:
        key = tuple(row[: len(group)])
        last[key] = {"price": price(row[len(group)]), "date": row[len(group) + 1], "supplier": row[len(group) + 2]}
    return last


def material_prices(*, material: Material, line_filter: LineFilter) -> dict:
    """Unit prices of one material over time, per currency: min, median, max and last, and
    one series per supplier (daily quantity-weighted points and a monthly quantity-weighted
    average). No currency conversion."""
    lines = filtered_lines(line_filter=line_filter.with_(material=material.pk))
    summary = (
        lines.values("currency")
        .annotate(
            count=Count("id"), low=Min("unit_price"), high=Max("unit_price"), qty=Sum("quantity"), spend=Sum(SPEND)
        )
        .order_by("-count", "currency")
    )
    medians = group_percentiles(lines, group=["currency"], field="unit_price", fractions=[0.5])
    last = _last_prices(lines, group=["currency"])
    dated = lines.filter(purchase_order__order_date__isnull=False)
    daily = (
        dated.values(
            "currency", "purchase_order__supplier_id", "purchase_order__supplier__name", "purchase_order__order_date"
        )
        .annotate(qty=Sum("quantity"), spend=Sum(SPEND))
        .order_by(
            "currency", "purchase_order__supplier__name", "purchase_order__supplier_id", "purchase_order__order_date"
        )
    )
    monthly = (
        dated.annotate(month=TruncMonth("purchase_order__order_date"))
        .values("currency", "purchase_order__supplier_id", "month")
        .annotate(qty=Sum("quantity"), spend=Sum(SPEND))
        .order_by("month")
    )
    series: dict[tuple, dict] = {}
    for day in daily:
        key = (day["currency"], day["purchase_order__supplier_id"])
        entry = series.setdefault(
            key,
            {"supplier_id": key[1], "supplier": day["purchase_order__supplier__name"], "points": [], "monthly": []},
        )
        when = day["purchase_order__order_date"]
        entry["points"].append([when.isoformat() if when else None, _wavg(day), str(day["qty"])])
    for month in monthly:
        key = (month["currency"], month["purchase_order__supplier_id"])
        if key in series:
            series[key]["monthly"].append([month["month"].strftime("%Y-%m"), _wavg(month)])
    groups = []
    for row in summary:
        currency = row["currency"]
        groups.append(
            {
                "currency": currency,
                "unit": material.unit_of_measure,
                "lines": row["count"],
                "min": price(row["low"]),
                "median": price(medians[(currency,)][0]),
                "max": price(row["high"]),
                "average": _wavg(row),
                "last": last.get((currency,)),
                "series": [s for (c, _), s in series.items() if c == currency],
            }
        )
    return {
        "material": _material_ref(material),
        "note": "Prices are shown in the currency of each line; no currency is converted.",
        "currencies": groups,
    }


MATERIAL_CHANGES = 50


def material_changes(*, material: Material, limit: int = MATERIAL_CHANGES) -> list[dict]:
    """The latest changes to the material's lines (their versions after the first: updates,
    reverts), newest first, at most `limit`: found through the material's lines (index on
    material) and their versions (index on line)."""
    versions = (
        LineVersion.objects.filter(line_id__in=all_lines().filter(material_id=material.pk).values("id"))
        .exclude(kind=LineVersion.Kind.CREATED)
        .select_related("upload")
        .order_by("-valid_from", "-id")[:limit]
    )
    found = list(versions)
    po_numbers: dict[int, str] = dict(
        all_lines().filter(pk__in=[v.line_id for v in found]).values_list("id", "purchase_order__po_number")
    )
    return [
        {
            "version": v,
            "line_id": v.line_id,
            "po_number": po_numbers.get(v.line_id),
            "line_number": v.line_number,
        }
        for v in found
    ]


def _wavg(row: Mapping[str, Any]) -> str | None:
    """The quantity-weighted average unit price of a group: spend / quantity."""
    qty = Decimal(str(row["qty"] or 0))
    if not qty:
        return None
    return price(Decimal(str(row["spend"])) / qty)


def _material_ref(material: Material) -> dict:
    return {
        "id": material.pk,
        "code": material.code,
        "description": material.description,
        "category": material.category,
        "unit": material.unit_of_measure,
    }


def supplier_comparison(*, material: Material, line_filter: LineFilter) -> dict:
    """For one material in one currency: the spread of each supplier's unit prices (five
    numbers for a box plot), their last price and volume, and the cheapest supplier (lowest
    quantity-weighted average) among those with at least ANALYTICS_MIN_VOLUME_SHARE of the
    material's quantity."""
    currency = chosen_currency(line_filter=line_filter.with_(material=material.pk))
    lines = filtered_lines(line_filter=line_filter.with_(material=material.pk, currency=currency))
    group = ["purchase_order__supplier_id"]
    totals = (
        lines.values("purchase_order__supplier_id", "purchase_order__supplier__name", "purchase_order__supplier__code")
        .annotate(
            count=Count("id"), low=Min("unit_price"), high=Max("unit_price"), qty=Sum("quantity"), spend=Sum(SPEND)
        )
        .order_by("purchase_order__supplier__name", "purchase_order__supplier_id")
    )
    quartiles = group_percentiles(lines, group=group, field="unit_price", fractions=[0.25, 0.5, 0.75])
    last = _last_prices(lines, group=group)
    volume = sum((Decimal(str(row["qty"] or 0)) for row in totals), Decimal(0))
    share = Decimal(str(settings.ANALYTICS_MIN_VOLUME_SHARE))
    suppliers = []
    for row in totals:
        key = (row["purchase_order__supplier_id"],)
        q1, median, q3 = quartiles[key]
        qty = Decimal(str(row["qty"] or 0))
        suppliers.append(
            {
                "supplier_id": key[0],
                "supplier": row["purchase_order__supplier__name"] or row["purchase_order__supplier__code"],
                "lines": row["count"],
                "min": price(row["low"]),
                "q1": price(q1),
                "median": price(median),
                "q3": price(q3),
                "max": price(row["high"]),
                "average": _wavg(row),
                "last": last[key]["price"],
                "last_date": last[key]["date"].isoformat() if last[key]["date"] else None,
                "volume": str(qty.normalize()) if qty else "0",
                "volume_share": float(qty / volume) if volume else 0.0,
                "spend": money(row["spend"]),
            }
        )
    eligible = [s for s in suppliers if volume and Decimal(str(s["volume_share"])) >= share and s["average"]]
    cheapest = min(eligible, key=lambda s: Decimal(s["average"]), default=None)
    return {
        "material": _material_ref(material),
        "currency": currency,
        "currencies": currencies(line_filter=line_filter.with_(material=material.pk)),
        "volume": str(volume.normalize()) if volume else "0",
        "min_volume_share": float(share),
        "cheapest": {
            "supplier_id": cheapest["supplier_id"],
            "supplier": cheapest["supplier"],
            "average": cheapest["average"],
        }
        if cheapest
        else None,
        "suppliers": suppliers,
    }


# --- outliers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutlierPage:
    total: int
    results: list[dict]


_OUTLIER_SQL = """
WITH base AS ({base}),
med AS (
    SELECT material_id, currency, percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price) AS median
    FROM base GROUP BY material_id, currency HAVING count(*) >= %s
),
mad AS (
    SELECT b.material_id, b.currency, m.median,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(b.unit_price - m.median)) AS mad
    FROM base b JOIN med m ON m.material_id = b.material_id AND m.currency = b.currency
    GROUP BY b.material_id, b.currency, m.median
)
SELECT b.id, d.median, d.mad, 0.6745 * (b.unit_price - d.median) / d.mad AS z
FROM base b JOIN mad d ON d.material_id = b.material_id AND d.currency = b.currency
WHERE d.mad > 0 AND abs(0.6745 * (b.unit_price - d.median) / d.mad) > %s
"""


def _outlier_scores(*, line_filter: LineFilter, upload_id=None) -> dict[int, tuple[float, float, float]]:
    """{line id: (median, MAD, modified z-score)} of every outlier. The statistics are
    taken over whole groups (material and currency: the filters that keep groups whole
    apply); the supplier, period and search filters only choose which outliers are listed.
    With `upload_id`, only the materials that upload's lines carry are scored. (An upload's
    own outliers, for its quality score: scoring.upload_outliers.)"""
    group_filter = LineFilter(
        material=line_filter.material, category=line_filter.category, currency=line_filter.currency
    )
    lines = filtered_lines(line_filter=group_filter)
    if upload_id is not None:
        lines = lines.filter(material_id__in=all_lines().filter(upload_id=upload_id).values("material_id"))
    base = lines.values_list("id", "material_id", "currency", "unit_price")
    if on_postgresql():
        base_sql, base_params = base.query.sql_with_params()
        sql = _OUTLIER_SQL.format(base=base_sql)
        with connection.cursor() as cursor:
            cursor.execute(sql, [*base_params, OUTLIER_MIN_PRICES, float(OUTLIER_Z)])
            return {row[0]: (float(row[1]), float(row[2]), float(row[3])) for row in cursor.fetchall()}
    groups: dict[tuple, list[tuple[int, float]]] = {}
    for line_id, material_id, currency, unit_price in base.iterator(chunk_size=5000):
        groups.setdefault((material_id, currency), []).append((line_id, float(unit_price)))
    found: dict[int, tuple[float, float, float]] = {}
    for members in groups.values():
        if len(members) < OUTLIER_MIN_PRICES:
            continue
        values = sorted(p for _, p in members)
        median = interpolate(values, 0.5)
        mad = interpolate(sorted(abs(p - median) for p in values), 0.5)
        if mad <= 0:
            continue
        for line_id, p in members:
            z = 0.6745 * (p - median) / mad
            if abs(z) > float(OUTLIER_Z):
                found[line_id] = (median, mad, z)
    return found


def outliers(*, line_filter: LineFilter, page: int = 1, per_page: int = OUTLIERS_PER_PAGE) -> OutlierPage:
    """Lines whose unit price is far from their material's usual price (modified z-score
    above 3.5 in their material and currency, when it has at least 5 prices and their
    spread is not zero), newest first, one page."""
    if freshness() == "ready" and not line_filter.q and not line_filter.purchase_order:
        return _outliers_from_summary(line_filter=line_filter, page=page, per_page=per_page)
    scores = _outlier_scores(line_filter=line_filter)
    listed = filtered_lines(line_filter=line_filter).filter(pk__in=list(scores)) if scores else all_lines().none()
    total = listed.count()
    page = max(1, page)
    rows = listed.order_by(F("purchase_order__order_date").desc(nulls_last=True), "-id").values(*LINE_FIELDS)[
        (page - 1) * per_page : page * per_page
    ]
    results = []
    for row in rows:
        median, mad, z = scores[row["id"]]
        results.append(dict(line_record(row), median=price(median), mad=price(mad), z_score=round(z, 2)))
    return OutlierPage(total=total, results=results)


def _outliers_from_summary(*, line_filter: LineFilter, page: int, per_page: int) -> OutlierPage:
    """The stored outliers (LineOutlier: every filter but the search is one of its columns),
    one page of them joined to their lines."""
    found = LineOutlier.objects.order_by()
    if line_filter.material:
        found = found.filter(material_id=line_filter.material)
    if line_filter.category:
        found = found.filter(category=line_filter.category)
    if line_filter.currency:
        found = found.filter(currency=line_filter.currency)
    if line_filter.supplier:
        found = found.filter(supplier_id=line_filter.supplier)
    if line_filter.date_from:
        found = found.filter(order_date__gte=line_filter.date_from)
    if line_filter.date_to:
        found = found.filter(order_date__lte=line_filter.date_to)
    total = found.count()
    page = max(1, page)
    chosen = list(
        found.order_by(F("order_date").desc(nulls_last=True), "-line_id").values_list(
            "line_id", "median", "mad", "z_score"
        )[(page - 1) * per_page : page * per_page]
    )
    rows = {row["id"]: row for row in all_lines().filter(pk__in=[c[0] for c in chosen]).values(*LINE_FIELDS)}
    results = [
        dict(line_record(rows[line_id]), median=price(median), mad=price(mad), z_score=round(z, 2))
        for line_id, median, mad, z in chosen
        if line_id in rows
    ]
    return OutlierPage(total=total, results=results)


# --- price variance -------------------------------------------------------------------------


def variance_period(*, line_filter: LineFilter) -> tuple[date, date, date, date] | None:
    """(from, to, previous from, previous to): the period asked for, else the 90 days that
    end at the latest order date; the previous period is as long and ends the day before."""
    date_to = line_filter.date_to
    if date_to is None:
        latest_of = line_filter.with_(date_from=None)
        if _unfiltered(latest_of) and freshness() == "ready" and _summary_state()["variance_to"]:
            date_to = _summary_state()["variance_to"]  # the latest order date of all lines
        elif _by_month_summary(latest_of):
            date_to = _spend_months(latest_of, by="last_day").aggregate(last=Max("last_day"))["last"]
        else:
            date_to = filtered_lines(line_filter=latest_of).aggregate(last=Max("purchase_order__order_date"))["last"]
        if date_to is None:
            return None
    date_from = line_filter.date_from or date_to - timedelta(days=89)
    if date_from > date_to:
        date_from, date_to = date_to, date_from
    length = (date_to - date_from).days + 1
    previous_to = date_from - timedelta(days=1)
    return date_from, date_to, previous_to - timedelta(days=length - 1), previous_to


def variance(*, line_filter: LineFilter, page: int = 1, per_page: int = OUTLIERS_PER_PAGE) -> dict:
    """For each supplier, material and currency bought in both periods: what this period's
    quantity cost against the previous period's quantity-weighted average price.
    variance = spend - quantity x previous average: positive means paid more than before."""
    period = variance_period(line_filter=line_filter)
    if period is None:
        return {"from": None, "to": None, "previous_from": None, "previous_to": None, "total": 0, "results": []}
    date_from, date_to, previous_from, previous_to = period
    page = max(1, page)
    head = {
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        "previous_from": previous_from.isoformat(),
        "previous_to": previous_to.isoformat(),
    }
    stored = _stored_variance_groups(line_filter=line_filter, date_to=date_to)
    if stored is not None:
        if _unfiltered(line_filter):  # summed when the groups were stored
            totals = {c: Decimal(v) for c, v in _summary_state()["variance_totals"].items()}
            count = _summary_state()["variance_count"]
        else:
            totals = {
                row["currency"]: row["amount"]
                for row in stored.values("currency").annotate(amount=Sum("variance")).order_by("currency")
            }
            count = stored.count()
        chosen = stored.order_by(Abs("variance").desc(), "supplier_id", "material_id", "currency")[
            (page - 1) * per_page : page * per_page
        ]
        return dict(
            head,
            variance_by_currency={c: money(v) for c, v in totals.items()},
            total=count,
            results=[_strip(_variance_row(g)) for g in _named_groups([dict(g) for g in chosen.values()])],
        )
    rows: list[dict[str, Any]] = []
    amounts: dict[str, Decimal] = {}
    for g in _variance_groups_from_lines(line_filter=line_filter, period=period):
        row = _variance_row(g)
        amounts[g["currency"]] = amounts.get(g["currency"], Decimal(0)) + row["_amount"]
        rows.append(row)
    rows.sort(key=lambda r: (-abs(r["_amount"]), r["supplier_id"], r["material_id"], r["currency"]))
    return dict(
        head,
        variance_by_currency={c: money(v) for c, v in sorted(amounts.items())},
        total=len(rows),
        results=[_strip(r) for r in rows[(page - 1) * per_page : page * per_page]],
    )


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "_amount"}


def _variance_row(g: Mapping[str, Any]) -> dict:
    qty, spent = Decimal(str(g["qty"])), Decimal(str(g["spend"]))
    prev_avg, amount = variance_amount(
        quantity=qty,
        spend=spent,
        previous_quantity=Decimal(str(g["prev_qty"])),
        previous_spend=Decimal(str(g["prev_spend"])),
    )
    avg = spent / qty
    percent = float(((avg / prev_avg) - 1) * 100) if prev_avg else None
    return {
        "supplier_id": g["purchase_order__supplier_id"],
        "supplier": g["purchase_order__supplier__name"],
        "material_id": g["material_id"],
        "material": g["material__code"] or g["material__description"],
        "unit": g["material__unit_of_measure"],
        "currency": g["currency"],
        "quantity": str(qty.normalize()),
        "average": price(avg),
        "previous_average": price(prev_avg),
        "spend": money(spent),
        "variance": money(amount),
        "variance_percent": round(percent, 2) if percent is not None else None,
        "_amount": amount,
    }


def _stored_variance_groups(*, line_filter: LineFilter, date_to: date) -> QuerySet[VarianceGroup] | None:
    """VarianceGroup, when the period is the default one it was built for (no period asked,
    the filter's latest order date is that of all lines) and the filter keeps its groups
    whole; else None (the lines are read)."""
    if (
        line_filter.date_from is not None
        or line_filter.date_to is not None
        or line_filter.q
        or line_filter.purchase_order
        or freshness() != "ready"
        or _summary_state()["variance_to"] != date_to
    ):
        return None
    found = VarianceGroup.objects.order_by()
    if line_filter.supplier:
        found = found.filter(supplier_id=line_filter.supplier)
    if line_filter.material:
        found = found.filter(material_id=line_filter.material)
    if line_filter.category:
        found = found.filter(category=line_filter.category)
    if line_filter.currency:
        found = found.filter(currency=line_filter.currency)
    return found


def _named_groups(groups: list[dict]) -> list[dict]:
    """Stored groups in the shape the lines' query gives (names beside ids)."""
    suppliers = {
        s["id"]: s["name"]
        for s in Supplier.objects.filter(pk__in={g["supplier_id"] for g in groups}).values("id", "name")
    }
    materials = {
        m["id"]: m
        for m in Material.objects.filter(pk__in={g["material_id"] for g in groups}).values(
            "id", "code", "description", "unit_of_measure"
        )
    }
    return [
        {
            "purchase_order__supplier_id": g["supplier_id"],
            "purchase_order__supplier__name": suppliers[g["supplier_id"]],
            "material_id": g["material_id"],
            "material__code": materials[g["material_id"]]["code"],
            "material__description": materials[g["material_id"]]["description"],
            "material__unit_of_measure": materials[g["material_id"]]["unit_of_measure"],
            "currency": g["currency"],
            "qty": g["quantity"],
            "spend": g["spend"],
            "prev_qty": g["previous_quantity"],
            "prev_spend": g["previous_spend"],
        }
        for g in groups
    ]


def _variance_groups_from_lines(*, line_filter: LineFilter, period: tuple[date, date, date, date]) -> Iterable[Mapping]:
    date_from, date_to, previous_from, previous_to = period
    lines = filtered_lines(line_filter=line_filter.with_(date_from=previous_from, date_to=date_to))
    current = Q(purchase_order__order_date__gte=date_from)
    before = Q(purchase_order__order_date__lte=previous_to)
    return (
        lines.values(
            "purchase_order__supplier_id",
            "purchase_order__supplier__name",
            "material_id",
            "material__code",
            "material__description",
            "material__unit_of_measure",
            "currency",
        )
        .annotate(
            qty=Sum("quantity", filter=current),
            spend=Sum(SPEND, filter=current),
            prev_qty=Sum("quantity", filter=before),
            prev_spend=Sum(SPEND, filter=before),
        )
        .filter(qty__gt=0, prev_qty__gt=0)
    )


# --- lines as rows --------------------------------------------------------------------------

LINE_FIELDS = (
    "id",
    "purchase_order_id",
    "purchase_order__po_number",
    "line_number",
    "purchase_order__order_date",
    "purchase_order__supplier_id",
    "purchase_order__supplier__code",
    "purchase_order__supplier__name",
    "material_id",
    "material__code",
    "material__description",
    "material__category",
    "material__unit_of_measure",
    "quantity",
    "unit_price",
    "total_price",
    "currency",
)


def line_record(row: dict) -> dict:
    return {
        "id": row["id"],
        "po_number": row["purchase_order__po_number"],
        "purchase_order_id": row["purchase_order_id"],
        "line_number": row["line_number"],
        "order_date": row["purchase_order__order_date"].isoformat() if row["purchase_order__order_date"] else None,
        "supplier_id": row["purchase_order__supplier_id"],
        "supplier": row["purchase_order__supplier__name"] or row["purchase_order__supplier__code"],
        "material_id": row["material_id"],
        "material": row["material__code"] or row["material__description"],
        "description": row["material__description"],
        "unit": row["material__unit_of_measure"],
        "quantity": str(row["quantity"]),
        "unit_price": price(row["unit_price"]),
        "currency": row["currency"],
    }
