"""Deterministic, realistic purchase-order lines for demos, tests and the benchmark.

`write_sample(path, rows=..., seed=..., messy=...)` streams a CSV or .xlsx file chunk by
chunk (a million rows never sit in memory) and returns a `SampleStats` that says exactly
what the pipeline should make of it: how many rows it must reject and why, how many
warnings it must report, and how many suppliers, materials, purchase orders and lines the
valid rows hold. The same (rows, seed, messy) always gives the same bytes.

Shape, like an ERP export: about one supplier per 200 rows, one material per 20 rows, ten
lines per purchase order; each supplier sells a few dozen neighbouring materials; prices
move a few percent around each material's list price; PO dates rise with the PO number.

`messy=True` adds what real exports carry: currency symbols and thousands separators
("$1,234.56", "USD 12.50", "1.234,50 EUR" is *not* used: it is ambiguous), parenthesised
negative totals, mixed date formats (ISO, 9/11/2014, 2-Jun-06, Excel serial numbers,
a midnight time), blank optional cells, stray spaces, and about 1% invalid rows (missing
PO number, quantity 0, quantity as text, unparseable unit price)."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

HEADER = [
    "Supplier Code",
    "Supplier Name",
    "Material Number",
    "Item Description",
    "Category",
    "UOM",
    "PO Number",
    "Line",
    "PO Date",
    "Qty",
    "Unit Price",
    "Total Price",
    "Currency",
]
LINES_PER_PO = 10
ROWS_PER_SUPPLIER = 200
ROWS_PER_MATERIAL = 20
CHUNK_ROWS = 50_000  # a multiple of LINES_PER_PO: a purchase order never spans chunks
INVALID_SHARE = 0.01

# Invalid-row kinds (messy only) and the rejection each must cause.
INVALID_KINDS = ("missing_po_number", "zero_quantity", "text_quantity", "bad_unit_price")
# Warning kinds (messy only, on valid rows only), one warning each.
WARNING_KINDS = ("negative_total", "bad_date")

_COMPANY_FIRST = (
    "Acme",
    "Northwind",
    "Contoso",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Pied Piper",
    "Massive Dynamic",
    "Aperture",
    "Black Mesa",
    "Blue Sun",
    "Monarch",
    "Ollivander",
    "Virtucon",
    "Zorg",
    "Nakatomi",
    "Sirius",
    "Duff",
)
_COMPANY_SECOND = (
    "Industrial Supply",
    "Components",
    "Office Products",
    "Laboratory Systems",
    "Logistics",
    "Fasteners",
    "Electrical",
    "Medical",
    "Packaging",
    "Chemicals",
    "Tools",
    "Safety",
    "Hydraulics",
    "IT Services",
    "Paper",
)
_COMPANY_SUFFIX = ("Ltd", "Inc.", "GmbH", "LLC", "S.A.", "Co.", "plc", "B.V.", "")
_ADJECTIVES = (
    "Stainless",
    "Heavy-duty",
    "Nitrile",
    "Galvanized",
    "Recycled",
    "Ergonomic",
    "Sterile",
    "LED",
    "Hex",
    "Insulated",
    "Disposable",
    "Cordless",
    "Reinforced",
    "Anti-static",
    "Food-grade",
)
_NOUNS = (
    "bolt",
    "glove",
    "cable",
    "pallet",
    "toner cartridge",
    "valve",
    "bearing",
    "safety helmet",
    "filter",
    "label roll",
    "copy paper",
    "syringe",
    "drill bit",
    "hose",
    "fuse",
    "pipette tip",
    "gasket",
    "battery",
)
_SPECS = (
    "M8x40",
    "size L",
    "3 m",
    "1200x800",
    "black",
    "1/2 in",
    "6205-2RS",
    "EN 397",
    "5 micron",
    "100x50 mm",
    "A4 80 g",
    "5 ml",
    "10 mm",
    "25 mm",
    "10 A",
    "200 ul",
    "DN50",
    "AA",
)
_CATEGORIES = (
    "MRO",
    "Office Supplies",
    "Lab Consumables",
    "IT Hardware",
    "Packaging",
    "Safety Equipment",
    "Electrical",
    "Medical Supplies",
    "Raw Materials",
    "Facilities",
)
_UOMS = ("EA", "EA", "EA", "BOX", "PK", "KG", "M", "L", "ROL", "SET")
_DECIMAL_UOMS = {"KG", "M", "L"}
_CURRENCIES = ("USD",) * 14 + ("EUR",) * 4 + ("GBP",) * 2
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
_START_DATE = dt.date(2014, 1, 1)
_DATE_SPAN_DAYS = 11 * 365
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_BAD_QUANTITY_TEXT = ("ten", "N/A", "TBD", "see note", "1O")
_BAD_PRICE_TEXT = ("TBD", "call for price", "n/a", "12..50", "#VALUE!", "--")
_BAD_DATE_TEXT = ("N/A - From RDC", "Date Not Captured", "pending", "31/31/2020")


@dataclass
class SampleStats:
    """What the pipeline must make of a generated file (with the default month-first dates)."""

    rows: int = 0
    invalid_rows: int = 0
    invalid_by_kind: dict[str, int] = field(default_factory=dict)
    warnings: int = 0
    warnings_by_kind: dict[str, int] = field(default_factory=dict)
    suppliers: int = 0  # distinct suppliers among valid rows
    materials: int = 0
    purchase_orders: int = 0
    lines: int = 0  # valid rows = lines created on an empty database

    @property
    def valid_rows(self) -> int:
        return self.rows - self.invalid_rows

    def as_dict(self) -> dict:
        return {**asdict(self), "valid_rows": self.valid_rows}


@dataclass
class _Catalog:
    supplier_codes: list[str]
    supplier_names: list[str]
    material_codes: list[str]
    material_descriptions: list[str]
    material_categories: list[str]
    material_uoms: list[str]
    material_prices: np.ndarray  # list price in cents


def _catalog(rows: int, seed: int) -> _Catalog:
    rng = np.random.default_rng([seed, 0])
    n_suppliers = max(1, round(rows / ROWS_PER_SUPPLIER))
    n_materials = max(1, round(rows / ROWS_PER_MATERIAL))
    first = rng.integers(0, len(_COMPANY_FIRST), n_suppliers)
    second = rng.integers(0, len(_COMPANY_SECOND), n_suppliers)
    suffix = rng.integers(0, len(_COMPANY_SUFFIX), n_suppliers)
    names = []
    for i in range(n_suppliers):
        # The supplier index keeps names unique however many suppliers there are.
        parts = [_COMPANY_FIRST[first[i]], _COMPANY_SECOND[second[i]]]
        if i >= len(_COMPANY_FIRST) * len(_COMPANY_SECOND):
            parts.append(str(i))
        if _COMPANY_SUFFIX[suffix[i]]:
            parts.append(_COMPANY_SUFFIX[suffix[i]])
        names.append(" ".join(parts))
    adjective = rng.integers(0, len(_ADJECTIVES), n_materials)
    noun = rng.integers(0, len(_NOUNS), n_materials)
    spec = rng.integers(0, len(_SPECS), n_materials)
    category = rng.integers(0, len(_CATEGORIES), n_materials)
    uom = rng.integers(0, len(_UOMS), n_materials)
    # Log-normal list prices: most cost a few dollars, a few cost thousands.
    prices = np.clip(np.round(np.exp(rng.normal(2.5, 1.4, n_materials)) * 100), 5, 5_000_000).astype(np.int64)
    return _Catalog(
        supplier_codes=[f"V{100000 + i}" for i in range(n_suppliers)],
        supplier_names=names,
        material_codes=[f"MAT-{i + 1:07d}" for i in range(n_materials)],
        material_descriptions=[
            f"{_ADJECTIVES[adjective[i]]} {_NOUNS[noun[i]]}, {_SPECS[spec[i]]}" for i in range(n_materials)
        ],
        material_categories=[_CATEGORIES[c] for c in category],
        material_uoms=[_UOMS[u] for u in uom],
        material_prices=prices,
    )


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _money_grouped(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


def _quantity(tenths: int) -> str:
    return str(tenths // 10) if tenths % 10 == 0 else f"{tenths // 10}.{tenths % 10}"


def _messy_money(cents: int, currency: str, style: int) -> str:
    """One of several ways an export writes an amount (all parse to the same value)."""
    if style == 0:
        return _money(cents)
    if style == 1:
        return f"{_SYMBOLS[currency]}{_money_grouped(cents)}"
    if style == 2:
        return f"{currency} {_money(cents)}"
    if style == 3:
        return f" {_money_grouped(cents)} "
    return f"{_money(cents)} {currency}"


def _messy_date(day: dt.date, style: int) -> str:
    if style == 0:
        return day.isoformat()
    if style == 1:
        return f"{day.month}/{day.day}/{day.year}"  # month first: the default reading
    if style == 2:
        return f"{day.day}-{day:%b}-{day:%y}"  # 2-Jun-06
    if style == 3:
        return str((day - _EXCEL_EPOCH).days)  # an Excel serial number that lost its format
    return f"{day.isoformat()} 00:00:00"


def iter_chunks(
    *, rows: int, seed: int = 0, messy: bool = False, stats: SampleStats | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[list[str]]]:
    """Yield the data rows (lists of cell strings, HEADER order) in chunks. If `stats` is
    given it is filled in as the chunks go by (complete once the iterator is exhausted)."""
    if rows < 0:
        raise ValueError("rows must be zero or more")
    chunk_rows = max(LINES_PER_PO, chunk_rows - chunk_rows % LINES_PER_PO)
    stats = stats if stats is not None else SampleStats()
    stats.rows = rows
    cat = _catalog(rows, seed)
    n_suppliers = len(cat.supplier_codes)
    n_materials = len(cat.material_codes)
    n_pos = -(-rows // LINES_PER_PO) if rows else 0
    invalid: Counter[str] = Counter()
    warned: Counter[str] = Counter()
    seen_suppliers: set[int] = set()
    seen_materials: set[int] = set()
    seen_pos: set[int] = set()
    valid_lines = 0

    for start in range(0, rows, chunk_rows):
        stop = min(rows, start + chunk_rows)
        n = stop - start
        rng = np.random.default_rng([seed, 1, start // chunk_rows])
        row_ids = np.arange(start, stop)
        po = row_ids // LINES_PER_PO
        first_po, last_po = int(po[0]), int(po[-1])
        po_count = last_po - first_po + 1
        po_supplier = rng.integers(0, n_suppliers, po_count)
        # Dates rise with the PO number, with a few days of jitter.
        po_day = (
            np.arange(first_po, last_po + 1) * _DATE_SPAN_DAYS // max(1, n_pos) + rng.integers(0, 5, po_count)
        ).clip(0, _DATE_SPAN_DAYS)
        po_currency = rng.integers(0, len(_CURRENCIES), po_count)
        supplier = po_supplier[po - first_po]
        # Each supplier sells a window of about 40 neighbouring materials.
        material = (supplier * (ROWS_PER_SUPPLIER // ROWS_PER_MATERIAL) + rng.integers(0, 40, n)) % n_materials
        drift = rng.normal(1.0, 0.03, n)
        unit_cents = np.maximum(1, np.round(cat.material_prices[material] * drift)).astype(np.int64)
        qty_whole = np.minimum(1 + np.floor(np.exp(rng.exponential(1.6, n))).astype(np.int64), 5000)
        half = rng.random(n) < 0.3
        if messy:
            roll = rng.random(n)
            invalid_kind = rng.integers(0, len(INVALID_KINDS), n)
            styles = rng.integers(0, 5, (n, 4))  # unit price, total, date, text spacing
            blanks = rng.random((n, 5))
            warn_roll = rng.random(n)
            bad_text = rng.integers(0, 1000, n)

        chunk: list[list[str]] = []
        for k in range(n):
            r = start + k
            p = int(po[k])
            s = int(supplier[k])
            m = int(material[k])
            uom = cat.material_uoms[m]
            tenths = int(qty_whole[k]) * 10 + (5 if half[k] and uom in _DECIMAL_UOMS else 0)
            unit = int(unit_cents[k])
            total = (tenths * unit + 5) // 10  # half up, exact in integers
            currency = _CURRENCIES[po_currency[p - first_po]]
            day = _START_DATE + dt.timedelta(days=int(po_day[p - first_po]))
            po_number = f"PO{4500000000 + p}"
            line = str(r % LINES_PER_PO + 1)
            if not messy:
                chunk.append(
                    [
                        cat.supplier_codes[s],
                        cat.supplier_names[s],
                        cat.material_codes[m],
                        cat.material_descriptions[m],
                        cat.material_categories[m],
                        uom,
                        po_number,
                        line,
                        day.isoformat(),
                        _quantity(tenths),
                        _money(unit),
                        _money(total),
                        currency,
                    ]
                )
                seen_suppliers.add(s)
                seen_materials.add(m)
                seen_pos.add(p)
                valid_lines += 1
                continue

            style = styles[k]
            blank = blanks[k]
            supplier_name = cat.supplier_names[s]
            description = cat.material_descriptions[m]
            if style[3] == 1:
                supplier_name = f"  {supplier_name} "
            elif style[3] == 2:
                description = f"{description}  "
            qty_text = _quantity(tenths)
            unit_text = _messy_money(unit, currency, int(style[0]))
            total_text = _messy_money(total, currency, int(style[1]))
            date_text = _messy_date(day, int(style[2]))
            # Blank optional cells (codes stay: they are the identities).
            category = "" if blank[0] < 0.05 else cat.material_categories[m]
            uom_text = "" if blank[1] < 0.03 else uom
            if blank[2] < 0.04:
                date_text = ""
            if blank[3] < 0.03:
                total_text = ""
            currency_text = "" if currency == "USD" and blank[4] < 0.3 else currency
            if blank[4] > 0.98:
                supplier_name = ""  # the code is still there

            if roll[k] < INVALID_SHARE:
                kind = INVALID_KINDS[invalid_kind[k]]
                invalid[kind] += 1
                if kind == "missing_po_number":
                    po_number = ""
                elif kind == "zero_quantity":
                    qty_text = "0"
                elif kind == "text_quantity":
                    qty_text = _BAD_QUANTITY_TEXT[bad_text[k] % len(_BAD_QUANTITY_TEXT)]
                else:
                    unit_text = _BAD_PRICE_TEXT[bad_text[k] % len(_BAD_PRICE_TEXT)]
                # Keep the row's only fault the injected one: no warnings on rejected rows.
                if date_text and int(style[2]) != 0:
                    date_text = day.isoformat()
            else:
                if warn_roll[k] < 0.004 and total_text:
                    total_text = f"({_money_grouped(total)})"
                    warned["negative_total"] += 1
                elif warn_roll[k] > 0.996:
                    date_text = _BAD_DATE_TEXT[bad_text[k] % len(_BAD_DATE_TEXT)]
                    warned["bad_date"] += 1
                seen_suppliers.add(s)
                seen_materials.add(m)
                seen_pos.add(p)
                valid_lines += 1
            chunk.append(
                [
                    cat.supplier_codes[s] + (" " if style[3] == 3 else ""),
                    supplier_name,
                    cat.material_codes[m],
                    description,
                    category,
                    uom_text,
                    po_number,
                    line,
                    date_text,
                    qty_text,
                    unit_text,
                    total_text,
                    currency_text,
                ]
            )
        yield chunk

    stats.invalid_by_kind = {kind: invalid[kind] for kind in INVALID_KINDS if invalid[kind]}
    stats.invalid_rows = sum(invalid.values())
    stats.warnings_by_kind = {kind: warned[kind] for kind in WARNING_KINDS if warned[kind]}
    stats.warnings = sum(warned.values())
    stats.suppliers = len(seen_suppliers)
    stats.materials = len(seen_materials)
    stats.purchase_orders = len(seen_pos)
    stats.lines = valid_lines


def write_sample(path: str | Path, *, rows: int, seed: int = 0, messy: bool = False) -> SampleStats:
    """Write `rows` data rows plus a header to `path` (.csv, or .xlsx in openpyxl's
    write-only mode), streaming chunk by chunk. Returns what the file holds."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".csv", ".xlsx"):
        raise ValueError(f"{path.name}: make a .csv or an .xlsx file")
    stats = SampleStats()
    chunks = iter_chunks(rows=rows, seed=seed, messy=messy, stats=stats)
    tmp = path.with_name(path.name + ".part")
    try:
        if ext == ".csv":
            with tmp.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\r\n" if messy else "\n")
                writer.writerow(HEADER)
                for chunk in chunks:
                    writer.writerows(chunk)
        else:
            _write_xlsx(tmp, chunks, messy=messy)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return stats


def _write_xlsx(path: Path, chunks: Iterator[list[list[str]]], *, messy: bool) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("PO Lines")
    sheet.append(HEADER)
    line_at, date_at, qty_at = HEADER.index("Line"), HEADER.index("PO Date"), HEADER.index("Qty")
    unit_at, total_at = HEADER.index("Unit Price"), HEADER.index("Total Price")
    for chunk in chunks:
        for text_row in chunk:
            row: list = list(text_row)
            if not messy:
                # A tidy workbook stores numbers and dates as Excel does, not as text.
                row[line_at] = int(row[line_at])
                row[date_at] = dt.date.fromisoformat(row[date_at])
                row[qty_at] = float(row[qty_at]) if "." in row[qty_at] else int(row[qty_at])
                row[unit_at] = float(row[unit_at])
                row[total_at] = float(row[total_at])
            sheet.append(row)
    workbook.save(path)
