"""Suggestions from headers and values (no services)."""

from __future__ import annotations

import pandas as pd

from ingestion.suggestions import CERTAIN, LIKELY, suggest


def frame(rows: list[list[str]], headers: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=headers, dtype=object)


HEADERS = ["Vendor", "Item Description", "PO Number", "Qty", "Unit Price", "Pack Price", "Line Item Value"]
ROWS = [
    ["A", "pens", "PO-1", "2", "0.50", "5.00", "10.00"],
    ["B", "ink", "PO-2", "3", "1.25", "12.50", "37.50"],
    ["C", "paper", "PO-3", "10", "0.10", "1.00", "10.00"],
    ["D", "clips", "PO-4", "4", "0.20", "2.00", "8.00"],
    ["E", "tape", "PO-5", "1", "0.33", "3.30", "3.40"],
]


def test_of_two_unit_price_columns_the_one_matching_the_total_wins_with_its_reason():
    plan = suggest(HEADERS, frame(ROWS, HEADERS))
    assert plan.ready
    assert plan.field_to_header["unit_price"] == "Pack Price"
    assert plan.suggestions["Pack Price"].confidence == CERTAIN
    assert plan.suggestions["Pack Price"].reason == "matches Line Item Value on 80% of the sample rows"
    assert plan.unused["Unit Price"] == (
        "a second candidate for the unit price (matches Line Item Value on 0% of the sample rows)"
    )


def test_without_the_total_two_price_columns_are_ambiguous():
    headers = [h for h in HEADERS if h != "Line Item Value"]
    rows = [row[:-1] for row in ROWS]
    plan = suggest(headers, frame(rows, headers))
    assert not plan.ready
    assert plan.ambiguous == {"unit_price": ["Unit Price", "Pack Price"]}
    assert plan.missing == []
    assert plan.message() == "2 columns could be the unit price ('Unit Price', 'Pack Price'). Choose the columns below."


def test_a_payments_file_names_what_it_lacks_in_a_buyers_words():
    headers = ["Supplier", "Description", "Amount", "Date of Payment"]
    plan = suggest(headers, frame([["A", "x", "10", "01/04/2015"]] * 3, headers))
    assert plan.missing == ["po_number", "quantity"]
    assert (
        plan.message() == "The file has no PO number column; the file has no quantity column. Choose the columns below."
    )
    assert plan.unused == {"Date of Payment": "not a known field"}


def test_constants_stand_for_missing_columns():
    headers = ["Supplier", "Description", "Amount"]
    plan = suggest(
        headers,
        frame([["A", "x", "10"]] * 3, headers),
        explicit={"Amount": "total_price"},
        constants={"quantity": "1", "po_number": "PAY"},
    )
    assert plan.ready
    assert plan.field_to_header == {
        "total_price": "Amount",
        "supplier_name": "Supplier",
        "material_description": "Description",
    }


def test_values_suggest_dates_currencies_and_a_price_by_its_total():
    headers = ["Seller", "Thing", "Ref", "Qty", "Each", "Sum", "When", "Money"]
    rows = [
        ["A", "pen", "R1", "2", "1.50", "3.00", "2024-01-31", "EUR"],
        ["B", "ink", "R2", "4", "2.00", "8.00", "2024-02-01", "USD"],
        ["C", "pad", "R3", "5", "0.40", "2.00", "2024-02-03", "EUR"],
    ]
    plan = suggest(headers, frame(rows, headers))
    assert plan.suggestions["When"].field == "order_date"
    assert plan.suggestions["When"].reason == "its values are ISO dates (2024-01-31)"
    assert plan.suggestions["Money"].field == "currency"
    assert plan.suggestions["Money"].confidence == LIKELY
    assert plan.suggestions["Each"].field == "unit_price"
    assert plan.suggestions["Each"].reason == "times the quantity it matches Sum on 100% of the sample rows"
    assert plan.suggestions["Sum"].field == "total_price"
    # Likely is not certain: the file asks (no PO number, no price chosen by name).
    assert not plan.ready
    assert plan.missing == ["material_code or material_description", "po_number", "unit_price or total_price"]


def test_an_explicit_mapping_naming_a_column_this_file_lacks_asks_instead_of_failing():
    plan = suggest(["Vendor", "Qty"], frame([["A", "1"]], ["Vendor", "Qty"]), explicit={"Supplier X": "supplier_name"})
    assert plan.problems == ["the mapping names column 'Supplier X' (for the supplier name), which is not in this file"]
    assert not plan.ready


def test_ignored_columns_are_said_to_be_ignored():
    headers = ["Vendor", "Item", "PO", "Qty", "Price", "Notes"]
    plan = suggest(
        headers, frame([["A", "B", "C", "1", "2", "n"]], headers), explicit={"Notes": "", "Vendor": "supplier_name"}
    )
    assert plan.ready
    assert plan.unused == {"Notes": "ignored by choice"}
