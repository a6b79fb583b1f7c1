"""Validating one batch of rows, a column at a time (no Python loop per row).

A required value that is missing or unreadable rejects its row with an error that names
the row, the file's column, the value and the reason; the rest of the batch goes on. An
optional value that is unreadable is stored empty and reported as a warning."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import parsing

LINE_COLUMNS = [
    "supplier_key",
    "supplier_code",
    "supplier_name",
    "material_key",
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
    "source_row",
]
MAX_CODE = 100
# The lines table's own limits (max_digits - decimal_places whole digits): a value beyond
# them is that row's error, never a database error that fails the whole file.
QUANTITY_LIMIT = 1e16  # numeric(20, 4)
UNIT_PRICE_LIMIT = 1e14  # numeric(20, 6)
TOTAL_PRICE_LIMIT = 1e18  # numeric(22, 4)
SMALLEST_QUANTITY = 0.00005  # below this a quantity rounds to zero at 4 places
TEXT_LIMITS = {"supplier_name": 300, "material_description": 500, "category": 200, "unit_of_measure": 50}

ERROR = "error"
WARNING = "warning"
ISSUE_COLUMNS = ["row", "column", "value", "message", "severity"]
_NO_ISSUES = pd.DataFrame(columns=ISSUE_COLUMNS)


def no_issues() -> pd.DataFrame:
    """An empty frame of row issues, one for all: the checks that find none return it every
    batch (building one costs milliseconds), and their callers only read or concatenate it."""
    return _NO_ISSUES


@dataclass
class ValidatedBatch:
    lines: pd.DataFrame  # LINE_COLUMNS, one row per accepted input row
    issues: pd.DataFrame  # row, column, value, message, severity
    po_numbers: pd.Series  # every non-blank row's PO number, rejected rows too ('' if none)
    rejected: int
    warnings: int
    blank: int


def _key(codes: pd.Series, by_name) -> pd.Series:
    """A row's identity: its code, else what `by_name(rows)` builds for the rows without one
    (computed for those rows only: most exports have codes)."""
    missing = codes == ""
    if not missing.any():
        return codes
    return codes.where(~missing, by_name(missing))


class _Issues:
    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []
        self.rejected = pd.Series(dtype=bool)

    def add(self, mask: pd.Series, *, column: str, values: pd.Series, message: str, severity: str) -> None:
        if not mask.any():
            return
        hit = mask[mask].index
        self.parts.append(
            pd.DataFrame(
                {
                    "row": hit.astype("int64"),
                    "column": column,
                    "value": values.loc[hit].astype(str).str.slice(0, 200).to_numpy(),
                    "message": message,
                    "severity": severity,
                }
            )
        )
        if severity == ERROR:
            self.rejected = self.rejected.reindex(mask.index, fill_value=False) | mask

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=["row", "column", "value", "message", "severity"])
        return pd.concat(self.parts, ignore_index=True).sort_values("row", kind="stable")


def validate_batch(
    raw: pd.DataFrame,
    *,
    columns: dict[str, str],
    day_first: bool,
    default_currency: str,
    decimal_comma: bool = False,
) -> ValidatedBatch:
    """`raw` has the file's headers as columns and spreadsheet row numbers as its index;
    `columns` maps canonical field -> file header. With `decimal_comma`, amounts are written
    '1.234,56' (the dots group thousands, the comma marks the decimals)."""
    headers = list(dict.fromkeys(columns.values()))
    mapped = raw[headers].fillna("")
    if decimal_comma:
        numeric = {columns[f] for f in ("quantity", "unit_price", "total_price") if f in columns}
        mapped = mapped.assign(
            **{h: mapped[h].str.replace(".", "", regex=False).str.replace(",", ".", regex=False) for h in numeric}
        )
    # A row with nothing in any mapped column is padding (Excel exports end in blank rows).
    # Column by column, stopping once every row has shown a value: usually after the first.
    blank = np.ones(len(mapped), dtype=bool)
    for name in headers:
        blank &= (mapped[name].str.strip() == "").to_numpy()
        if not blank.any():
            break
    frame = mapped[~blank] if blank.any() else mapped
    index = frame.index
    issues = _Issues()
    issues.rejected = pd.Series(False, index=index)
    empty = pd.Series("", index=index, dtype=object)
    as_text: dict[str, pd.Series] = {}

    def raw_of(field: str) -> pd.Series:
        header = columns.get(field)
        if not header:
            return empty
        if header not in as_text:
            as_text[header] = frame[header].astype(str)
        return as_text[header]

    def text(field: str) -> pd.Series:
        return parsing.clean_text(raw_of(field)) if field in columns else empty

    def header(*fields: str) -> str:
        return " / ".join(columns[f] for f in fields if f in columns)

    out: dict[str, pd.Series] = {}  # one DataFrame at the end: a column insert each is slow

    # Supplier: by code, else by name.
    out["supplier_code"] = text("supplier_code")
    out["supplier_name"] = text("supplier_name").str.slice(0, TEXT_LIMITS["supplier_name"])
    no_supplier = (out["supplier_code"] == "") & (out["supplier_name"] == "")
    issues.add(
        no_supplier,
        column=header("supplier_code", "supplier_name"),
        values=empty,
        message="Supplier is missing (no supplier code or name).",
        severity=ERROR,
    )
    long_code = out["supplier_code"].str.len() > MAX_CODE
    issues.add(
        long_code,
        column=header("supplier_code"),
        values=raw_of("supplier_code"),
        message=f"Supplier code is longer than {MAX_CODE} characters.",
        severity=ERROR,
    )
    out["supplier_key"] = _key(
        out["supplier_code"], lambda rows: "~" + parsing.normalize_key(out["supplier_name"][rows])
    )

    # Material: by code, else by description and unit.
    out["material_code"] = text("material_code")
    out["material_description"] = text("material_description").str.slice(0, TEXT_LIMITS["material_description"])
    out["category"] = text("category").str.slice(0, TEXT_LIMITS["category"])
    out["unit_of_measure"] = text("unit_of_measure").str.slice(0, TEXT_LIMITS["unit_of_measure"])
    no_material = (out["material_code"] == "") & (out["material_description"] == "")
    issues.add(
        no_material,
        column=header("material_code", "material_description"),
        values=empty,
        message="Material is missing (no material code or description).",
        severity=ERROR,
    )
    long_material = out["material_code"].str.len() > MAX_CODE
    issues.add(
        long_material,
        column=header("material_code"),
        values=raw_of("material_code"),
        message=f"Material code is longer than {MAX_CODE} characters.",
        severity=ERROR,
    )
    out["material_key"] = _key(
        out["material_code"],
        lambda rows: (
            "~"
            + parsing.normalize_key(out["material_description"][rows])
            + "|"
            + parsing.normalize_key(out["unit_of_measure"][rows])
        ),
    )

    # Purchase order.
    out["po_number"] = text("po_number")
    issues.add(
        out["po_number"] == "",
        column=header("po_number"),
        values=empty,
        message="PO number is missing.",
        severity=ERROR,
    )
    issues.add(
        out["po_number"].str.len() > MAX_CODE,
        column=header("po_number"),
        values=raw_of("po_number"),
        message=f"PO number is longer than {MAX_CODE} characters.",
        severity=ERROR,
    )

    if "line_number" in columns:
        line, bad_line = parsing.parse_int(raw_of("line_number"))
        missing_line = line.isna() & ~bad_line
        issues.add(
            bad_line | (line.fillna("1").astype("int64") < 1),
            column=header("line_number"),
            values=raw_of("line_number"),
            message="Line number is not a whole number above zero.",
            severity=ERROR,
        )
        issues.add(
            missing_line, column=header("line_number"), values=empty, message="Line number is missing.", severity=ERROR
        )
        out["line_number"] = pd.to_numeric(line, errors="coerce")
    else:
        out["line_number"] = np.nan  # numbered by order of appearance, in the pipeline

    # Quantity: required, above zero.
    quantity, bad_quantity = parsing.parse_decimal(raw_of("quantity"))
    quantity_value = parsing.to_float(quantity)
    issues.add(
        quantity.isna() & ~bad_quantity,
        column=header("quantity"),
        values=empty,
        message="Quantity is missing.",
        severity=ERROR,
    )
    issues.add(
        bad_quantity,
        column=header("quantity"),
        values=raw_of("quantity"),
        message="Quantity is not a number.",
        severity=ERROR,
    )
    not_positive = pd.Series(quantity_value <= 0, index=index) & quantity.notna()
    issues.add(
        not_positive,
        column=header("quantity"),
        values=raw_of("quantity"),
        message="Quantity must be above zero.",
        severity=ERROR,
    )
    rounds_to_zero = pd.Series((quantity_value > 0) & (quantity_value < SMALLEST_QUANTITY), index=index)
    issues.add(
        rounds_to_zero,
        column=header("quantity"),
        values=raw_of("quantity"),
        message="Quantity rounds to zero (4 decimal places are kept).",
        severity=ERROR,
    )
    not_positive = not_positive | rounds_to_zero
    too_big = pd.Series(np.abs(quantity_value) >= QUANTITY_LIMIT, index=index)
    issues.add(
        too_big, column=header("quantity"), values=raw_of("quantity"), message="Quantity is too large.", severity=ERROR
    )
    out["quantity"] = quantity

    # Prices: a unit price, or a total to derive it from.
    unit_price, bad_unit = parsing.parse_decimal(raw_of("unit_price"))
    total_price, bad_total = parsing.parse_decimal(raw_of("total_price"))
    if "unit_price" in columns:
        issues.add(
            bad_unit,
            column=header("unit_price"),
            values=raw_of("unit_price"),
            message="Unit price is not a number.",
            severity=ERROR,
        )
    has_unit = unit_price.notna()
    if "total_price" in columns:
        # A bad total is fatal only when it is the sole source of the price.
        issues.add(
            bad_total & ~has_unit & ~bad_unit,
            column=header("total_price"),
            values=raw_of("total_price"),
            message="Total price is not a number, and there is no unit price.",
            severity=ERROR,
        )
        issues.add(
            bad_total & has_unit,
            column=header("total_price"),
            values=raw_of("total_price"),
            message="Total price is not a number; stored empty.",
            severity=WARNING,
        )
    no_price = ~has_unit & total_price.isna() & ~bad_unit & ~bad_total
    issues.add(
        no_price,
        column=header("unit_price", "total_price"),
        values=empty,
        message="Unit price is missing (and there is no total price to derive it from).",
        severity=ERROR,
    )
    unit_value = parsing.to_float(unit_price)
    total_value = parsing.to_float(total_price)
    issues.add(
        pd.Series(np.abs(unit_value) >= UNIT_PRICE_LIMIT, index=index),
        column=header("unit_price"),
        values=raw_of("unit_price"),
        message="Unit price is too large.",
        severity=ERROR,
    )
    huge_total = pd.Series(np.abs(total_value) >= TOTAL_PRICE_LIMIT, index=index)
    issues.add(
        huge_total,
        column=header("total_price"),
        values=raw_of("total_price"),
        message="Total price is too large.",
        severity=ERROR,
    )
    derive = ~has_unit & total_price.notna() & quantity.notna() & ~not_positive & ~too_big & ~huge_total
    if derive.any():
        unit_price = unit_price.astype(object)
        derived = parsing.divide(total_price[derive], quantity[derive])
        unit_price.loc[derive] = derived
        too_big_derived = derived.isna() | pd.Series(
            np.abs(parsing.to_float(derived)) >= UNIT_PRICE_LIMIT, index=derived.index
        )
        issues.add(
            too_big_derived.reindex(index, fill_value=False),
            column=header("total_price"),
            values=raw_of("total_price"),
            message="The unit price this total gives (total / quantity) is too large.",
            severity=ERROR,
        )
    # A total that disagrees with quantity x unit price beyond the rounding of the unit price.
    both = has_unit & total_price.notna()
    if both.any():
        places = parsing.decimal_places(unit_price.where(has_unit)).to_numpy()
        tolerance = np.abs(quantity_value) * 0.5 * np.power(10.0, -places.astype(float)) + 0.005 + 1e-9
        mismatch = (
            pd.Series(np.abs(quantity_value * unit_value - total_value) > tolerance, index=index)
            & both
            & quantity.notna()
            & ~not_positive
        )
        issues.add(
            mismatch,
            column=header("total_price"),
            values=raw_of("total_price"),
            message="Total price differs from quantity x unit price.",
            severity=WARNING,
        )
    out["unit_price"] = unit_price
    out["total_price"] = total_price

    # Optional values: unreadable means stored empty, with a warning.
    order_date, bad_date = parsing.parse_date(raw_of("order_date"), day_first=day_first)
    issues.add(
        bad_date,
        column=header("order_date"),
        values=raw_of("order_date"),
        message="Date not recognised; stored empty.",
        severity=WARNING,
    )
    out["order_date"] = order_date
    currency, bad_currency = parsing.parse_currency(raw_of("currency"), default=default_currency)
    issues.add(
        bad_currency,
        column=header("currency"),
        values=raw_of("currency"),
        message=f"Not an ISO 4217 currency code; {default_currency} used.",
        severity=WARNING,
    )
    out["currency"] = currency
    out["source_row"] = index.to_numpy()

    found = issues.frame()
    rejected = issues.rejected.reindex(index, fill_value=False)
    lines = pd.DataFrame({name: out[name] for name in LINE_COLUMNS}, index=index)
    accepted = lines[~rejected] if rejected.any() else lines
    return ValidatedBatch(
        lines=accepted,
        issues=found,
        po_numbers=out["po_number"],
        rejected=int(rejected.sum()),
        warnings=int((found["severity"] == WARNING).sum()),
        blank=int(blank.sum()),
    )
