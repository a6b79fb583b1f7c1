import pytest

from ingestion.columns import MappingError, resolve_columns, validate_explicit_mapping

SCMS_HEADERS = [
    "id",
    "project code",
    "pq #",
    "po / so #",
    "asn/dn #",
    "country",
    "managed by",
    "fulfill via",
    "vendor inco term",
    "shipment mode",
    "pq first sent to client date",
    "po sent to vendor date",
    "scheduled delivery date",
    "delivered to client date",
    "delivery recorded date",
    "product group",
    "sub classification",
    "vendor",
    "item description",
    "molecule/test type",
    "brand",
    "dosage",
    "dosage form",
    "unit of measure (per pack)",
    "line item quantity",
    "line item value",
    "pack price",
    "unit price",
    "manufacturing site",
    "first line designation",
    "weight (kilograms)",
    "freight cost (usd)",
    "line item insurance (usd)",
]


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Vendor", "supplier_name"),
        ("Vendor Name", "supplier_name"),
        ("SUPPLIER", "supplier_name"),
        ("Supplier ID", "supplier_code"),
        ("Item", "material_code"),
        ("SKU", "material_code"),
        ("Part Number", "material_code"),
        ("Material_Number", "material_code"),
        ("Item Description", "material_description"),
        ("PO", "po_number"),
        ("PO Number", "po_number"),
        ("po / so #", "po_number"),
        ("Purchase Order Number", "po_number"),
        ("Qty", "quantity"),
        ("Line Item Quantity", "quantity"),
        ("Unit Cost", "unit_price"),
        ("Pack Price", "unit_price"),
        ("Extended Price", "total_price"),
        ("Line Item Value", "total_price"),
        ("PO Date", "order_date"),
        ("Purchase Date", "order_date"),
        ("Curr", "currency"),
        ("UOM", "unit_of_measure"),
    ],
)
def test_synonyms(header, field):
    others = {
        "supplier_name": "Vendor",
        "material_code": "SKU",
        "po_number": "PO",
        "quantity": "Qty",
        "unit_price": "Price",
    }
    headers = [header] + [h for f, h in others.items() if f != field and h.lower() != header.lower()]
    assert resolve_columns(headers)[field] == header


def test_header_matching_ignores_case_spacing_and_punctuation():
    resolved = resolve_columns(["  VENDOR  NAME ", "part-number", "P.O. Number", "QTY.", "unit_price"])
    assert resolved["supplier_name"] == "  VENDOR  NAME "
    assert resolved["material_code"] == "part-number"
    assert resolved["quantity"] == "QTY."
    assert resolved["unit_price"] == "unit_price"


def test_explicit_mapping_wins_over_guesses():
    resolved = resolve_columns(
        SCMS_HEADERS,
        {
            "vendor": "supplier_name",
            "item description": "material_description",
            "po / so #": "po_number",
            "line item quantity": "quantity",
            "unit price": "unit_price",
        },
    )
    assert resolved["unit_price"] == "unit price"


def test_missing_required_fields_are_named_with_headers_found():
    with pytest.raises(MappingError) as error:
        resolve_columns(["Supplier", "Amount", "Date of Payment"])
    message = str(error.value)
    assert "material_code or material_description" in message
    assert "po_number" in message and "quantity" in message
    assert "'Date of Payment'" in message


def test_total_price_can_stand_in_for_unit_price():
    resolved = resolve_columns(["Vendor", "SKU", "PO", "Qty", "Total Price"])
    assert "unit_price" not in resolved and resolved["total_price"] == "Total Price"


def test_mapping_to_a_missing_column_is_explained():
    with pytest.raises(MappingError, match="not in the file"):
        resolve_columns(["Vendor", "SKU", "PO", "Qty", "Price"], {"Nope": "quantity"})


@pytest.mark.parametrize("bad", [[1, 2], {"a": "not_a_field"}, {"a": 3}])
def test_validate_explicit_mapping_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        validate_explicit_mapping(bad)
