"""The canonical fields of a purchase-order line, and how file headers map onto them."""

from __future__ import annotations

import re
from collections.abc import Sequence

CANONICAL_FIELDS = (
    "supplier_code",
    "supplier_name",
    "material_code",
    "material_description",
    "category",
    "unit_of_measure",
    "po_number",
    "line_number",
    "order_date",
    "quantity",
    "unit_price",
    "total_price",
    "currency",
)

# Alternatives: each inner tuple needs one of its fields present.
REQUIRED_GROUPS = (
    ("supplier_code", "supplier_name"),
    ("material_code", "material_description"),
    ("po_number",),
    ("quantity",),
    ("unit_price", "total_price"),
)

# Keys are normalized headers (see `normalize_header`).
SYNONYMS: dict[str, str] = {}
_SYNONYM_LISTS = {
    "supplier_code": [
        "supplier code",
        "supplier id",
        "supplier no",
        "supplier number",
        "vendor code",
        "vendor id",
        "vendor no",
        "vendor number",
        "vendor #",
        "supplier #",
    ],
    "supplier_name": [
        "supplier",
        "supplier name",
        "vendor",
        "vendor name",
        "seller",
        "seller name",
        "manufacturer",
        "payee",
    ],
    "material_code": [
        "material",
        "material code",
        "material number",
        "material no",
        "material id",
        "item",
        "item code",
        "item number",
        "item no",
        "item id",
        "sku",
        "part",
        "part number",
        "part no",
        "part #",
        "product code",
        "product id",
        "article number",
    ],
    "material_description": [
        "material description",
        "item description",
        "description",
        "item name",
        "product",
        "product name",
        "product description",
        "part description",
        "short text",
    ],
    "category": [
        "category",
        "material group",
        "product group",
        "commodity",
        "commodity code",
        "item category",
        "spend category",
        "unspsc",
    ],
    "unit_of_measure": ["uom", "unit of measure", "unit", "units", "order unit", "base unit"],
    "po_number": [
        "po",
        "po number",
        "po no",
        "po #",
        "po id",
        "purchase order",
        "purchase order number",
        "purchase order no",
        "purchase order id",
        "po / so #",
        "po/so #",
        "order number",
        "order no",
    ],
    "line_number": [
        "line",
        "line number",
        "line no",
        "line #",
        "po line",
        "po line number",
        "item line",
        "line item",
        "line item number",
    ],
    "order_date": [
        "po date",
        "order date",
        "purchase date",
        "purchase order date",
        "document date",
        "creation date",
        "created date",
        "date ordered",
    ],
    "quantity": [
        "qty",
        "quantity",
        "line item quantity",
        "order quantity",
        "ordered quantity",
        "qty ordered",
        "po quantity",
    ],
    "unit_price": [
        "price",
        "unit price",
        "unit cost",
        "pack price",
        "net price",
        "price per unit",
        "cost per unit",
        "unit price usd",
    ],
    "total_price": [
        "line item value",
        "total price",
        "extended price",
        "total",
        "line total",
        "total cost",
        "amount",
        "line amount",
        "net value",
        "extended cost",
        "total amount",
    ],
    "currency": ["currency", "curr", "currency code", "ccy", "crcy"],
}


def normalize_header(header: object) -> str:
    """Lower-case, punctuation and runs of space folded: 'PO / SO #' -> 'po / so #' keeps
    '#' and '/' (they carry meaning in headers), everything else becomes single spaces."""
    text = str(header or "").replace("\ufeff", "").strip().lower()
    text = re.sub(r"[^a-z0-9#/]+", " ", text)
    text = re.sub(r"\s*/\s*", " / ", text)
    return re.sub(r"\s+", " ", text).strip()


def _compact(header: str) -> str:
    return re.sub(r"[^a-z0-9#]", "", header)


for _field, _names in _SYNONYM_LISTS.items():
    SYNONYMS[_compact(_field.replace("_", " "))] = _field
    for _name in _names:
        SYNONYMS[_compact(normalize_header(_name))] = _field


class MappingError(ValueError):
    """The columns of a file cannot give the required fields."""


def validate_explicit_mapping(mapping: object) -> dict[str, str]:
    """Check a user-given {file header: canonical field, or '' to ignore it} mapping; raise
    ValueError if bad."""
    if mapping in (None, "", {}):
        return {}
    if not isinstance(mapping, dict):
        raise ValueError('The column mapping must be a JSON object like {"Vendor": "supplier_name"}.')
    clean: dict[str, str] = {}
    for header, field in mapping.items():
        if not isinstance(header, str) or not isinstance(field, str):
            raise ValueError("Every key and value of the column mapping must be text.")
        if field == "":  # the column is ignored
            clean[header] = field
            continue
        if field not in CANONICAL_FIELDS:
            raise ValueError(
                f"Unknown field {field!r} for column {header!r}; known fields: {', '.join(CANONICAL_FIELDS)}."
            )
        clean[header] = field
    return clean


def resolve_columns(headers: list[str], explicit: dict[str, str] | None = None) -> dict[str, str]:
    """Map canonical field -> file header. An explicit mapping wins over guesses; a field is
    taken by the first header that names it. Raise MappingError naming what is missing."""
    explicit = explicit or {}
    by_normal = {normalize_header(h): h for h in headers}
    resolved: dict[str, str] = {}
    for wanted_header, field in explicit.items():
        if not field:
            continue
        actual = wanted_header if wanted_header in headers else by_normal.get(normalize_header(wanted_header))
        if actual is None:
            raise MappingError(
                f"The mapping names column {wanted_header!r}, which is not in the file. "
                f"Columns found: {', '.join(repr(str(h)) for h in headers)}."
            )
        resolved[field] = actual
    taken = set(resolved.values())
    for header in headers:
        if header in taken:
            continue
        synonym = SYNONYMS.get(_compact(normalize_header(header)))
        if synonym and synonym not in resolved:
            resolved[synonym] = header
            taken.add(header)
    missing = [group for group in REQUIRED_GROUPS if not any(f in resolved for f in group)]
    if missing:
        names = "; ".join(" or ".join(group) for group in missing)
        found = ", ".join(repr(str(h)) for h in headers) or "none"
        raise MappingError(f"Required columns are missing: {names}. Columns found: {found}.")
    return resolved


def looks_like_header(cells: Sequence[object]) -> bool:
    """True when at least three cells name canonical fields: used to find the header row."""
    hits = {SYNONYMS.get(_compact(normalize_header(c))) for c in cells if c not in (None, "")}
    hits.discard(None)
    return len(hits) >= 3
