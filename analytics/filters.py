"""The filters a buyer sets in the URL (supplier, material, category, period, currency, search),
parsed once so every page, table, chart and download of one view reads the same lines, and a
view can be shared as a link. Bad values are ignored, never an error page."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date
from urllib.parse import urlencode

from django.db.models import Q, QuerySet

from ingestion.models import PurchaseOrderLine


def _int(value: str | None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number > 0 else None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class LineFilter:
    supplier: int | None = None
    material: int | None = None
    category: str = ""
    date_from: date | None = None  # order date, inclusive
    date_to: date | None = None  # order date, inclusive
    currency: str = ""
    q: str = ""  # search: PO number, supplier, material
    purchase_order: int | None = None

    @classmethod
    def from_query(cls, query) -> LineFilter:
        currency = (query.get("currency") or "").strip().upper()
        return cls(
            supplier=_int(query.get("supplier")),
            material=_int(query.get("material")),
            category=(query.get("category") or "").strip()[:200],
            date_from=_date(query.get("from")),
            date_to=_date(query.get("to")),
            currency=currency if len(currency) == 3 and currency.isalpha() else "",
            q=(query.get("q") or "").strip()[:100],
            purchase_order=_int(query.get("purchase_order")),
        )

    def with_(self, **changes) -> LineFilter:
        return replace(self, **changes)

    def as_query(self) -> dict[str, str]:
        """The URL parameters that give this filter back (empty ones left out)."""
        names = {"date_from": "from", "date_to": "to"}
        out = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value not in (None, ""):
                out[names.get(field.name, field.name)] = value.isoformat() if isinstance(value, date) else str(value)
        return out

    @property
    def querystring(self) -> str:
        return urlencode(self.as_query())

    def apply(self, lines: QuerySet[PurchaseOrderLine]) -> QuerySet[PurchaseOrderLine]:
        if self.supplier:
            lines = lines.filter(purchase_order__supplier_id=self.supplier)
        if self.purchase_order:
            lines = lines.filter(purchase_order_id=self.purchase_order)
        if self.material:
            lines = lines.filter(material_id=self.material)
        if self.category:
            lines = lines.filter(material__category=self.category)
        if self.date_from:
            lines = lines.filter(purchase_order__order_date__gte=self.date_from)
        if self.date_to:
            lines = lines.filter(purchase_order__order_date__lte=self.date_to)
        if self.currency:
            lines = lines.filter(currency=self.currency)
        if self.q:
            lines = lines.filter(
                Q(purchase_order__po_number__icontains=self.q)
                | Q(purchase_order__supplier__name__icontains=self.q)
                | Q(purchase_order__supplier__code__icontains=self.q)
                | Q(material__code__icontains=self.q)
                | Q(material__description__icontains=self.q)
            )
        return lines
