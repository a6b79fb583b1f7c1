import pandas as pd

from ingestion.validation import validate_batch

COLUMNS = {
    "supplier_code": "Supplier Code",
    "supplier_name": "Supplier",
    "material_code": "SKU",
    "material_description": "Description",
    "unit_of_measure": "UOM",
    "po_number": "PO",
    "order_date": "PO Date",
    "quantity": "Qty",
    "unit_price": "Price",
    "total_price": "Total",
    "currency": "Curr",
}
HEADERS = list(COLUMNS.values())


def make(rows, first_row=2):
    frame = pd.DataFrame(rows, columns=HEADERS, dtype=str)
    frame.index = range(first_row, first_row + len(frame))
    return validate_batch(frame, columns=COLUMNS, day_first=False, default_currency="USD")


GOOD = ["S1", "Acme", "M1", "Bolt", "EA", "PO-1", "2024-01-05", "10", "$1.50", "15.00", "usd"]


def row(**changes):
    values = dict(zip(HEADERS, GOOD))
    values.update(changes)
    return [values[h] for h in HEADERS]


def test_good_row_is_accepted_with_exact_values():
    result = make([GOOD])
    assert result.rejected == 0 and result.warnings == 0
    line = result.lines.iloc[0]
    assert (line["quantity"], line["unit_price"], line["total_price"]) == ("10", "1.50", "15.00")
    assert line["supplier_key"] == "S1" and line["currency"] == "USD" and line["order_date"] == "2024-01-05"
    assert line["source_row"] == 2


def test_missing_required_value_rejects_the_row_and_names_row_and_column():
    result = make([GOOD, row(PO=""), row(Qty="lots")], first_row=2)
    assert result.rejected == 2
    assert len(result.lines) == 1
    issues = result.issues.set_index("row")
    assert issues.loc[3, "column"] == "PO" and "PO number is missing" in issues.loc[3, "message"]
    assert issues.loc[4, "column"] == "Qty" and issues.loc[4, "value"] == "lots"


def test_quantity_must_be_above_zero():
    result = make([row(Qty="0"), row(Qty="-3")])
    assert result.rejected == 2
    assert set(result.issues["message"]) == {"Quantity must be above zero."}


def test_unparseable_optional_date_is_a_warning_and_the_row_loads():
    result = make([row(**{"PO Date": "N/A - From RDC"})])
    assert result.rejected == 0 and len(result.lines) == 1
    assert result.lines.iloc[0]["order_date"] is None
    assert result.issues.iloc[0]["severity"] == "warning"
    assert result.issues.iloc[0]["value"] == "N/A - From RDC"


def test_unit_price_is_derived_from_total():
    result = make([row(Price="", Total="10.00", Qty="3")])
    assert result.lines.iloc[0]["unit_price"] == "3.333333"


def test_total_disagreeing_beyond_rounding_is_a_warning():
    result = make([row(Qty="3", Price="3.33", Total="10.00"), row(Qty="3", Price="3.33", Total="12.00")])
    assert result.rejected == 0
    assert list(result.issues["row"]) == [3]
    assert result.issues.iloc[0]["severity"] == "warning"


def test_supplier_identity_by_code_else_normalized_name():
    result = make(
        [
            row(**{"Supplier Code": "", "Supplier": "  ACME   Ltd "}),
            row(**{"Supplier Code": "", "Supplier": "acme ltd"}),
        ]
    )
    assert result.lines["supplier_key"].nunique() == 1


def test_material_identity_by_description_and_unit_without_code():
    result = make(
        [
            row(SKU="", Description="Bolt M8", UOM="EA"),
            row(SKU="", Description="bolt  m8", UOM="ea"),
            row(SKU="", Description="Bolt M8", UOM="BOX"),
        ]
    )
    assert result.lines["material_key"].nunique() == 2


def test_blank_rows_are_skipped_silently():
    result = make([GOOD, [""] * len(HEADERS)])
    assert result.blank == 1 and result.rejected == 0 and len(result.lines) == 1


def test_unknown_currency_falls_back_with_a_warning():
    result = make([row(Curr="dollars")])
    assert result.lines.iloc[0]["currency"] == "USD"
    assert result.issues.iloc[0]["severity"] == "warning"


def test_parenthesised_negative_price_is_read():
    result = make([row(Total="(15.00)", Price="(1.50)")])
    assert result.lines.iloc[0]["total_price"] == "-15.00"


def test_values_beyond_the_columns_limits_reject_their_row_instead_of_failing_the_file():
    result = make(
        [
            GOOD,
            row(Price="500000000000000", Total=""),  # 5e14: more whole digits than the unit price column has
            row(Total="2000000000000000000"),  # 2e18
            row(Qty="0.00001"),  # rounds to zero at 4 places
            row(Price="", Total="90000000000000", Qty="0.5"),  # 9e13 / 0.5 = 1.8e14 as unit price
        ]
    )
    assert result.rejected == 4 and len(result.lines) == 1
    errors = result.issues[result.issues["severity"] == "error"]
    messages = dict(zip(errors["row"], errors["message"]))
    assert messages[3] == "Unit price is too large."
    assert messages[4] == "Total price is too large."
    assert messages[5].startswith("Quantity rounds to zero")
    assert messages[6].startswith("The unit price this total gives")
