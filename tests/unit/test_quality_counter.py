"""The quality counter in this process, batch by batch: what it counts must be what the rules
say, counted here again the plain way (Python sets and dicts over the same rows), however
the rows fall into batches; and ingestion never imports analytics (the score's last rule
and its storage are analytics', reached through ingestion.signals)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingestion.quality import QualityCounter

ROOT = Path(__file__).resolve().parent.parent.parent
COLUMNS = {
    "supplier_code": "Supplier",
    "supplier_name": "Supplier Name",
    "material_code": "Material",
    "material_description": "Description",
    "unit_of_measure": "UOM",
    "category": "Category",
    "po_number": "PO",
    "line_number": "Line",
    "order_date": "Date",
    "quantity": "Qty",
    "unit_price": "Unit Price",
    "total_price": "Total",
    "currency": "Currency",
}


def rows(n: int, seed: int) -> pd.DataFrame:
    """Validated-looking lines with ids, and the defects the cross-batch rules look for."""
    rng = np.random.default_rng(seed)
    po = rng.integers(1, n // 4 + 2, n)
    index = pd.RangeIndex(2, n + 2)
    frame = pd.DataFrame(
        {
            "purchase_order_id": po,
            "po_number": [f"PO-{p}" for p in po],
            "line_number": rng.integers(1, 6, n),  # repeats: PO lines twice, within and across batches
            "supplier_id": np.where(rng.random(n) < 0.05, po + 1, po),  # some POs with a second supplier
            "currency": rng.choice(["USD", "USD", "USD", "EUR"], n),
            "material_id": rng.integers(1, n // 3 + 2, n),
            "material_code": rng.choice(["M", "M", ""], n),
            "unit_of_measure": rng.choice(["EA", "EA", "EA", "BOX"], n),
            "supplier_name": rng.choice(["Acme", ""], n),
            "material_description": rng.choice(["Bolt", "Nut", ""], n),
            "category": rng.choice(["Parts", ""], n),
        },
        index=index,
    )
    # As validation leaves them (object columns): 'YYYY-MM-DD' or None; an amount or None.
    dates = ["2024-03-01", None, "2099-01-01", "1990-05-05", "2000-01-01"]
    frame["order_date"] = pd.Series([dates[i] for i in rng.integers(0, 5, n)], index=index, dtype=object)
    frame["total_price"] = pd.Series([None if i else 1.0 for i in rng.integers(0, 2, n)], index=index, dtype=object)
    return frame


def raw_of(lines: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(lines)
    return pd.DataFrame(
        {
            "Currency": rng.choice(["USD", " ", None, "EUR"], n),
            "Unit Price": rng.choice(["1.00", "", "  2 "], n),
            "Date": lines["order_date"].fillna("??").to_numpy(),
        },
        index=lines.index,
    )


def plain_counts(lines: pd.DataFrame, raw: pd.DataFrame) -> dict[str, list[int]]:
    """The rules counted row by row, as their definitions read."""
    n = len(lines)
    counts = {}
    for name in ("unit_of_measure", "category", "supplier_name", "material_description"):
        counts[name] = [n, sum(1 for v in lines[name] if v == "")]
    counts["order_date"] = [n, sum(1 for v in lines["order_date"] if v is None)]
    counts["currency"] = [n, sum(1 for v in raw["Currency"] if not (isinstance(v, str) and v.strip()))]
    given = [isinstance(v, str) and v.strip() != "" for v in raw["Unit Price"]]
    counts["total_mismatch"] = [sum(g and t == t and t is not None for g, t in zip(given, lines["total_price"])), 0]
    dated = [d for d in lines["order_date"] if d is not None]
    counts["order_date_range"] = [len(dated), sum(1 for d in dated if d > "2090-01-01" or d < "2000-01-01")]

    def one_per_key(keys, values) -> list[int]:
        seen: dict = {}
        for k, v in zip(keys, values):
            seen.setdefault(k, set()).add(v)
        return [len(seen), sum(1 for v in seen.values() if len(v) > 1)]

    counts["po_suppliers"] = one_per_key(lines["purchase_order_id"], lines["supplier_id"])
    counts["po_currencies"] = one_per_key(lines["purchase_order_id"], lines["currency"])
    coded = lines[lines["material_code"] != ""]
    counts["material_units"] = one_per_key(coded["material_id"], coded["unit_of_measure"])
    keys = list(zip(lines["purchase_order_id"], lines["line_number"]))
    counts["duplicate_lines"] = [n, n - len(set(keys))]
    return counts


@pytest.mark.parametrize("batch_rows", [7, 500, 5000])
def test_counts_are_the_rules_counted_row_by_row_however_the_batches_fall(batch_rows):
    lines = rows(3000, seed=batch_rows)
    raw = raw_of(lines, seed=1)
    counter = QualityCounter(columns=COLUMNS)
    for start in range(0, len(lines), batch_rows):
        part = lines.iloc[start : start + batch_rows]
        counter.add_batch(raw=raw.loc[part.index], lines=part, issues=_no_issues(), rejected=0)
        counter.add_keys(part)
    counts = counter.close()
    expected = plain_counts(lines, raw)
    assert {k: counts[k] for k in expected} == expected
    assert counts["rejected"] == [3000, 0]
    assert counter.seconds > 0


def test_ids_too_large_to_pack_are_counted_the_same(settings):
    lines = rows(800, seed=3)
    big = lines.assign(
        purchase_order_id=lines["purchase_order_id"] + (1 << 40),
        supplier_id=lines["supplier_id"] + (1 << 30),
        material_id=lines["material_id"] + (1 << 45),
    )
    counter = QualityCounter(columns=COLUMNS)
    for part in (big.iloc[:300], big.iloc[300:]):
        counter.add_keys(part)
    counts = counter.close()
    expected = plain_counts(lines, raw_of(lines, seed=1))
    for key in ("po_suppliers", "po_currencies", "material_units", "duplicate_lines"):
        assert counts[key] == expected[key], key


def test_dates_out_of_range_are_warnings_on_their_rows_with_the_files_value(settings):
    settings.QUALITY_MIN_YEAR = 2000
    lines = rows(50, seed=4)
    raw = raw_of(lines, seed=4)
    rejected_rows = lines.index[::5]  # rows the validation rejected: in raw, not in lines
    accepted = lines.drop(rejected_rows)
    counter = QualityCounter(columns=COLUMNS)
    found = counter.add_batch(raw=raw, lines=accepted, issues=_no_issues(), rejected=len(rejected_rows))
    future = [r for r, d in accepted["order_date"].items() if d is not None and d > "2090-01-01"]
    old = [r for r, d in accepted["order_date"].items() if d is not None and d < "2000-01-01"]
    assert sorted(found[found["message"] == "Order date is in the future."]["row"]) == future
    assert sorted(found[found["message"] == "Order date is before 2000."]["row"]) == old
    assert set(found["value"]) <= {"2099-01-01", "1990-05-05"} and set(found["column"]) == {"Date"}
    assert counter.counts["rejected"] == [50, len(rejected_rows)]
    currency = [v for r, v in raw["Currency"].items() if r in accepted.index]
    assert counter.counts["currency"] == [
        len(accepted),
        sum(1 for v in currency if not (isinstance(v, str) and v.strip())),
    ]


def test_a_field_the_file_lacks_is_missing_on_every_line():
    lines = rows(30, seed=6)
    counter = QualityCounter(columns={k: v for k, v in COLUMNS.items() if k != "category"})
    counter.add_batch(raw=raw_of(lines, seed=6), lines=lines, issues=_no_issues(), rejected=0)
    assert counter.counts["category"] == [30, 30]


def test_a_constant_for_every_row_counts_as_given():
    lines = rows(40, seed=5)
    raw = raw_of(lines, seed=5).drop(columns=["Currency"])
    counter = QualityCounter(columns=COLUMNS | {"currency": "(every row) currency"})
    counter.add_batch(raw=raw, lines=lines, issues=_no_issues(), rejected=0)
    assert counter.counts["currency"] == [40, 0]


def test_ingestion_imports_nothing_from_analytics():
    """analytics depends on ingestion, never the other way."""
    offenders = []
    for path in sorted((ROOT / "ingestion").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] == "analytics"
            ]
    assert offenders == []


def _no_issues() -> pd.DataFrame:
    return pd.DataFrame(columns=["row", "column", "value", "message", "severity"])
