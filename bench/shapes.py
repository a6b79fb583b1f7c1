"""The file shapes `make bench` loads: ERP-style purchase-order exports that differ in one
respect each, so a shape that loads slowly says what makes it slow.

The base shape, `erp`, is the export issue 7 measured: 12 columns, a line-number column,
supplier and material codes, one material per 20 rows, one purchase order per ~10 rows
(1 to 19 lines), and messy amounts and dates (a fifth of the prices and totals written
with thousands separators like `1,234.56`, a fifth of the dates as `9/11/2014`). Every
other shape changes one thing. Every row is valid and every total is exactly quantity x
unit price, so the expected counts are plain: no rejected rows, no warnings.

Generation is vectorized (numpy, then pandas' CSV writer) so a million rows take seconds;
the same (shape, rows, seed) always gives the same bytes. `Shape.roles` names each file
column's canonical field (None for the columns nothing maps), for the set-based
reference in bench/reference.py."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

ROWS_PER_SUPPLIER = 200
MAX_LINES_PER_PO = 19  # 1..19, ten on average
CHUNK_ROWS = 100_000

# (header, canonical field). The order is the file's.
BASE_COLUMNS = [
    ("Supplier Code", "supplier_code"),
    ("Supplier Name", "supplier_name"),
    ("Material Number", "material_code"),
    ("Item Description", "material_description"),
    ("UOM", "unit_of_measure"),
    ("PO Number", "po_number"),
    ("Line", "line_number"),
    ("PO Date", "order_date"),
    ("Qty", "quantity"),
    ("Unit Price", "unit_price"),
    ("Total Price", "total_price"),
    ("Currency", "currency"),
]
# A wide export's other columns: nothing maps them (checked by the bench at start).
EXTRA_HEADERS = [
    "Company Code",
    "Plant",
    "Storage Location",
    "Purchasing Group",
    "Purchasing Org",
    "Document Type",
    "Requisitioner",
    "Tracking Number",
    "Cost Center",
    "GL Account",
    "WBS Element",
    "Incoterms",
    "Payment Terms",
    "Delivery Status",
    "Invoice Status",
    "Goods Receipt",
    "Release Indicator",
    "Agreement",
    "Outline Agreement Item",
    "Contract Type",
    "Tax Code",
    "Country of Origin",
    "Vendor Material",
    "Batch",
    "Created By",
    "Changed On",
    "Deletion Flag",
    "Remarks",
]

_NOUNS = ("bolt", "glove", "cable", "pallet", "toner", "valve", "bearing", "helmet", "filter", "label roll")
_ADJECTIVES = ("Stainless", "Nitrile", "Galvanized", "Recycled", "Sterile", "LED", "Hex", "Insulated", "Cordless")
_COMPANIES = ("Acme", "Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Tyrell")
_UOMS = np.array(["EA", "EA", "EA", "BOX", "PK", "KG", "M", "L", "ROL", "SET"])
_CURRENCIES = np.array(["USD"] * 14 + ["EUR"] * 4 + ["GBP"] * 2)
_START = np.datetime64("2014-01-01")


@dataclass(frozen=True)
class Shape:
    name: str
    description: str
    line_numbers: bool = True
    codes: bool = True
    rows_per_material: int = 20
    messy: bool = True
    wide: bool = False
    excel: bool = False

    @property
    def columns(self) -> list[tuple[str, str | None]]:
        columns: list[tuple[str, str | None]] = [
            (h, f)
            for h, f in BASE_COLUMNS
            if (self.line_numbers or f != "line_number") and (self.codes or f not in ("supplier_code", "material_code"))
        ]
        if self.wide:
            # 40 columns: the mapped ones spread among the others, as exports do.
            extras: list[tuple[str, str | None]] = [(h, None) for h in EXTRA_HEADERS]
            mixed: list[tuple[str, str | None]] = []
            for i, column in enumerate(columns):
                mixed.extend(extras[i * 2 : i * 2 + 2] if i < 12 else [])
                mixed.append(column)
            mixed.extend(extras[len(columns) * 2 :])
            columns = mixed
        return columns

    @property
    def headers(self) -> list[str]:
        return [h for h, _ in self.columns]

    @property
    def roles(self) -> list[str | None]:
        return [f for _, f in self.columns]

    def file_name(self, rows: int, seed: int) -> str:
        return f"shape_{self.name}_{rows}_seed{seed}.{'xlsx' if self.excel else 'csv'}"


ERP = Shape("erp", "ERP export: 12 columns, line numbers, codes, 1 material per 20 rows, messy amounts and dates")
SHAPES = {
    s.name: s
    for s in (
        ERP,
        replace(ERP, name="no-line", description="erp without a line-number column", line_numbers=False),
        replace(ERP, name="names", description="erp with names only (no supplier or material codes)", codes=False),
        replace(ERP, name="few-materials", description="erp with 1 material per 200 rows", rows_per_material=200),
        replace(ERP, name="many-materials", description="erp with 1 material per 5 rows", rows_per_material=5),
        replace(ERP, name="clean", description="erp with clean amounts and ISO dates", messy=False),
        replace(ERP, name="wide", description="erp inside a 40-column export (12 mapped)", wide=True),
        replace(ERP, name="xlsx", description="erp as an .xlsx workbook (numbers and dates typed)", excel=True),
    )
}


@dataclass
class _Catalog:
    supplier_codes: np.ndarray
    supplier_names: np.ndarray
    material_codes: np.ndarray
    material_descriptions: np.ndarray
    material_uoms: np.ndarray
    material_cents: np.ndarray


def _catalog(rows: int, shape: Shape, seed: int) -> _Catalog:
    rng = np.random.default_rng([seed, 7])
    n_suppliers = max(1, rows // ROWS_PER_SUPPLIER)
    n_materials = max(1, rows // shape.rows_per_material)
    s = np.arange(n_suppliers)
    m = np.arange(n_materials)
    company = np.array(_COMPANIES)[rng.integers(0, len(_COMPANIES), n_suppliers)]
    adjective = np.array(_ADJECTIVES)[rng.integers(0, len(_ADJECTIVES), n_materials)]
    noun = np.array(_NOUNS)[rng.integers(0, len(_NOUNS), n_materials)]
    # Log-normal list prices around $90: most totals run into the thousands.
    cents = np.clip(np.round(np.exp(rng.normal(4.5, 1.5, n_materials)) * 100), 5, 500_000_000).astype(np.int64)
    return _Catalog(
        supplier_codes=np.char.add("V", (100000 + s).astype(str)),
        supplier_names=(pd.Series(company) + " Supply " + pd.Series(s).astype(str) + " Ltd").to_numpy(),
        material_codes=np.char.add("MAT-", np.char.zfill((m + 1).astype(str), 7)),
        material_descriptions=(
            pd.Series(adjective) + " " + pd.Series(noun) + ", type " + pd.Series(m).astype(str)
        ).to_numpy(),
        material_uoms=_UOMS[rng.integers(0, len(_UOMS), n_materials)],
        material_cents=cents,
    )


def _money(cents: np.ndarray) -> pd.Series:
    c = pd.Series(cents)
    return (c // 100).astype(str) + "." + (c % 100).astype(str).str.zfill(2)


def _grouped(cents: np.ndarray) -> pd.Series:
    c = pd.Series(cents)
    return (c // 100).map("{:,}".format) + "." + (c % 100).astype(str).str.zfill(2)


@dataclass
class Plan:
    """The whole file's structure (per PO and per row), small enough for 1M rows."""

    po_sizes: np.ndarray
    row_po: np.ndarray
    row_line: np.ndarray
    po_supplier: np.ndarray
    po_day: np.ndarray
    po_currency: np.ndarray
    row_material: np.ndarray
    row_qty: np.ndarray


def _plan(rows: int, shape: Shape, seed: int, cat: _Catalog) -> Plan:
    rng = np.random.default_rng([seed, 8])
    sizes = rng.integers(1, MAX_LINES_PER_PO + 1, rows // 5 + 10)
    ends = np.cumsum(sizes)
    n_pos = int(np.searchsorted(ends, rows) + 1)
    sizes = sizes[:n_pos].copy()
    sizes[-1] -= int(ends[n_pos - 1] - rows)
    row_po = np.repeat(np.arange(n_pos), sizes)
    starts = np.cumsum(sizes) - sizes
    row_line = np.arange(rows) - np.repeat(starts, sizes) + 1
    n_suppliers = len(cat.supplier_codes)
    n_materials = len(cat.material_codes)
    return Plan(
        po_sizes=sizes,
        row_po=row_po,
        row_line=row_line,
        po_supplier=rng.integers(0, n_suppliers, n_pos),
        po_day=(np.arange(n_pos) * (11 * 365) // max(1, n_pos) + rng.integers(0, 5, n_pos)),
        po_currency=rng.integers(0, len(_CURRENCIES), n_pos),
        row_material=rng.integers(0, n_materials, rows),
        row_qty=np.minimum(1 + np.floor(np.exp(rng.exponential(1.2, rows))).astype(np.int64), 5000),
    )


def _chunk(shape: Shape, cat: _Catalog, plan: Plan, start: int, stop: int, seed: int, *, typed: bool) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 9, start])
    n = stop - start
    po = plan.row_po[start:stop]
    supplier = plan.po_supplier[po]
    material = plan.row_material[start:stop]
    qty = plan.row_qty[start:stop]
    unit = np.maximum(1, np.round(cat.material_cents[material] * rng.normal(1.0, 0.03, n))).astype(np.int64)
    total = qty * unit
    days = _START + plan.po_day[po].astype("timedelta64[D]")
    values: dict[str, object] = {
        "supplier_code": cat.supplier_codes[supplier],
        "supplier_name": cat.supplier_names[supplier],
        "material_code": cat.material_codes[material],
        "material_description": cat.material_descriptions[material],
        "unit_of_measure": cat.material_uoms[material],
        "po_number": np.char.add("PO", (4500000000 + po).astype(str)),
        "currency": _CURRENCIES[plan.po_currency[po]],
    }
    if typed:  # an Excel workbook as an ERP writes it: numbers and dates typed
        values["line_number"] = plan.row_line[start:stop]
        values["order_date"] = pd.Series(days).dt.date
        values["quantity"] = qty
        values["unit_price"] = unit / 100
        values["total_price"] = total / 100
    else:
        values["line_number"] = plan.row_line[start:stop].astype(str)
        iso = pd.Series(days.astype(str))
        unit_text, total_text = _money(unit), _money(total)
        if shape.messy:
            grouped = rng.random(n) < 0.2
            unit_text = unit_text.where(~grouped, _grouped(unit))
            total_text = total_text.where(~grouped, _grouped(total))
            us = rng.random(n) < 0.2
            stamp = pd.Series(days)
            us_text = stamp.dt.month.astype(str) + "/" + stamp.dt.day.astype(str) + "/" + stamp.dt.year.astype(str)
            iso = iso.where(~us, us_text)
        values["order_date"] = iso.to_numpy()
        values["quantity"] = qty.astype(str)
        values["unit_price"] = unit_text.to_numpy()
        values["total_price"] = total_text.to_numpy()
    columns = {}
    for n_col, (header, field) in enumerate(shape.columns):
        if field is not None:
            columns[header] = values[field]
        else:
            columns[header] = _filler(rng, n_col, n)
    return pd.DataFrame(columns)


def _filler(rng, seed: int, n: int) -> np.ndarray:
    kind = seed % 4
    if kind == 0:
        return np.char.add("X", rng.integers(1000, 1100, n).astype(str))
    if kind == 1:
        return np.array(["", "A", "B", "Released", "Open"])[rng.integers(0, 5, n)]
    if kind == 2:
        return rng.integers(100000, 999999, n).astype(str)
    return np.array(["", "see contract", "urgent, per buyer", "net 30"])[rng.integers(0, 4, n)]


def expected_counts(rows: int, shape: Shape, seed: int) -> dict:
    cat = _catalog(rows, shape, seed)
    plan = _plan(rows, shape, seed, cat)
    return _counts(rows, plan)


def _counts(rows: int, plan: Plan) -> dict:
    return {
        "rows": rows,
        "valid_rows": rows,
        "invalid_rows": 0,
        "warnings": 0,
        "suppliers": int(len(np.unique(plan.po_supplier))),
        "materials": int(len(np.unique(plan.row_material))),
        "purchase_orders": int(len(plan.po_sizes)),
        "lines": rows,
    }


def write_shape(path: Path, *, shape: Shape, rows: int, seed: int, as_csv: bool = False) -> dict:
    """Write the file (or, `as_csv`, an .xlsx shape's rows as CSV, for the reference).
    Returns the counts the pipeline must report on an empty database."""
    cat = _catalog(rows, shape, seed)
    plan = _plan(rows, shape, seed, cat)
    tmp = path.with_name(path.name + ".part")
    excel = shape.excel and not as_csv
    try:
        if excel:
            from openpyxl import Workbook

            workbook = Workbook(write_only=True)
            sheet = workbook.create_sheet("PO Lines")
            sheet.append(shape.headers)
            for start in range(0, rows, CHUNK_ROWS):
                frame = _chunk(shape, cat, plan, start, min(rows, start + CHUNK_ROWS), seed, typed=True)
                for row in frame.itertuples(index=False, name=None):
                    sheet.append([v.item() if hasattr(v, "item") else v for v in row])
            workbook.save(tmp)
        else:
            typed = shape.excel  # the CSV twin of a workbook holds its values, written plainly
            with tmp.open("w", newline="", encoding="utf-8") as handle:
                for start in range(0, rows, CHUNK_ROWS):
                    frame = _chunk(shape, cat, plan, start, min(rows, start + CHUNK_ROWS), seed, typed=typed)
                    if typed:
                        frame = frame.astype(str)
                    frame.to_csv(handle, header=start == 0, index=False, lineterminator="\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return _counts(rows, plan)


def main() -> None:  # pragma: no cover - a developer's look at a shape
    import argparse

    parser = argparse.ArgumentParser(description="Write one bench file shape.")
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    started = dt.datetime.now()
    print(write_shape(Path(args.out), shape=SHAPES[args.shape], rows=args.rows, seed=args.seed))
    print(f"in {(dt.datetime.now() - started).total_seconds():.1f} s")


if __name__ == "__main__":
    main()
