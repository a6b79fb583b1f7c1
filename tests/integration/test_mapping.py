"""The mapping step through a real Celery worker: suggestions from the data, the stop in
needs_mapping, the choice posted over HTTP, and profiles for the next files."""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest

from ingestion import services
from ingestion.models import MappingProfile, PurchaseOrder, PurchaseOrderLine, Supplier, Upload
from tests.helpers import real_file, wait_for_upload

pytestmark = pytest.mark.usefixtures("live_worker")

SCMS = "Supply_Chain_Shipment_Pricing_Data.csv"
UNKNOWN = ["Lieferant", "Artikel", "Bestellung", "Menge", "Preis", "Bemerkung"]
ROWS = [
    ["Acme", "Bolt M6", "B-1", "10", "0.25", "rush"],
    ["Acme", "Nut M6", "B-1", "20", "0.10", ""],
    ["Beta GmbH", "Washer", "B-2", "5", "0.05", "x"],
]
CHOICE = {
    "Lieferant": "supplier_name",
    "Artikel": "material_description",
    "Bestellung": "po_number",
    "Menge": "quantity",
    "Preis": "unit_price",
    "Bemerkung": "",
}


def write(path, headers, rows, encoding="utf-8"):
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


def test_the_scms_file_resolves_its_price_by_the_total_and_loads_without_asking(user):
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=real_file(SCMS)))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert upload.imported_rows == 10324
    assert upload.mapping_plan["chosen"]["unit_price"] == "pack price"
    reason = upload.mapping_plan["suggestions"]["pack price"]
    assert reason["confidence"] == "certain"
    assert reason["reason"].startswith("matches line item value on ") and reason["reason"].endswith(
        "% of the sample rows"
    )
    assert upload.mapping_plan["unused"]["unit price"].startswith("a second candidate for the unit price")
    assert "order date" in upload.mapping_plan["unused"]["po sent to vendor date"]
    assert Supplier.objects.count() == 73
    assert PurchaseOrder.objects.count() == 6233
    with real_file(SCMS).open(newline="", encoding="utf-8") as handle:
        pack = {(row["po / so #"], Decimal(row["pack price"])) for row in csv.DictReader(handle)}
    loaded = set(PurchaseOrderLine.objects.values_list("purchase_order__po_number", "unit_price"))
    assert {(po, price.normalize()) for po, price in loaded} == {(po, price.normalize()) for po, price in pack}
    assert PurchaseOrderLine.objects.count() == 10324


def test_the_scms_file_without_its_total_asks_which_price(user, tmp_path):
    with real_file(SCMS).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        headers = [h for h in reader.fieldnames if h != "line item value"]
        rows = [[row[h] for h in headers] for _, row in zip(range(300), reader)]
    path = write(tmp_path / "scms-no-total.csv", headers, rows)
    upload = wait_for_upload(
        services.create_upload_from_path(owner=user, path=path), statuses=[Upload.Status.NEEDS_MAPPING]
    )
    assert upload.mapping_plan["ambiguous"] == {"unit_price": ["pack price", "unit price"]}
    assert "2 columns could be the unit price ('pack price', 'unit price')" in upload.error_message
    assert PurchaseOrderLine.objects.count() == 0


def test_unknown_headers_stop_then_the_posted_mapping_loads_and_its_profile_serves_the_next_files(
    user, client, other_user, tmp_path
):
    first = write(tmp_path / "bestellungen.csv", UNKNOWN, ROWS)
    upload = wait_for_upload(
        services.create_upload_from_path(owner=user, path=first), statuses=[Upload.Status.NEEDS_MAPPING]
    )
    client.force_login(user)
    body = client.get(f"/uploads/{upload.pk}/mapping.json").json()
    assert body["headers"] == UNKNOWN
    assert body["samples"]["Lieferant"] == ["Acme", "Beta GmbH"]
    assert body["profile"] is None
    assert body["missing"] == [
        "supplier_code or supplier_name",
        "material_code or material_description",
        "po_number",
        "quantity",
        "unit_price or total_price",
    ]
    status = client.get(f"/uploads/{upload.pk}/status.json").json()
    assert status["status"] == "needs_mapping" and status["missing"] == body["missing"]

    # Someone else: 404. An incomplete choice: 400 with the reason, nothing changes.
    other = client.__class__()
    other.force_login(other_user)
    assert other.post(f"/uploads/{upload.pk}/mapping/", {"mapping": json.dumps(CHOICE)}).status_code == 404
    incomplete = {**CHOICE, "Menge": ""}
    answer = client.post(f"/uploads/{upload.pk}/mapping/", {"mapping": json.dumps(incomplete)})
    assert answer.status_code == 400
    assert answer.content.decode() == "The file has no quantity column."

    answer = client.post(
        f"/uploads/{upload.pk}/mapping/",
        {"mapping": json.dumps(CHOICE), "currency": "EUR", "save_profile": "Lieferanten"},
        HTTP_ACCEPT="application/json",
    )
    assert answer.status_code == 202
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert upload.imported_rows == 3
    assert set(PurchaseOrderLine.objects.values_list("currency", flat=True)) == {"EUR"}
    profile = MappingProfile.objects.get(name="Lieferanten")
    assert profile.created_by == user and profile.currency == "EUR"

    # The same headers, rows in another order, another encoding: no question, the profile named.
    second = write(
        tmp_path / "bestellungen-2.csv",
        UNKNOWN,
        [ROWS[2], ROWS[0], ["Gamma", "Schraube", "B-3", "7", "1,50", ""]],
        encoding="cp1252",
    )
    again = wait_for_upload(services.create_upload_from_path(owner=user, path=second))
    assert again.status == Upload.Status.COMPLETED, again.error_message
    assert again.profile == profile and again.profile_note == ""
    assert again.imported_rows == 3
    assert client.get(f"/uploads/{again.pk}/status.json").json()["profile"] == "Lieferanten"

    # One extra column: the profile still serves, and says what differed.
    third = write(tmp_path / "bestellungen-3.csv", [*UNKNOWN, "Kostenstelle"], [[*row, "K1"] for row in ROWS])
    extra = wait_for_upload(services.create_upload_from_path(owner=user, path=third))
    assert extra.status == Upload.Status.COMPLETED, extra.error_message
    assert extra.profile == profile
    assert extra.profile_note == "new column 'Kostenstelle' not loaded"


def test_a_payments_file_loads_as_spend_lines_with_constants(user, client, tmp_path):
    path = real_file("April_2015_published.csv")
    upload = wait_for_upload(
        services.create_upload_from_path(owner=user, path=path), statuses=[Upload.Status.NEEDS_MAPPING]
    )
    client.force_login(user)
    mapping = dict.fromkeys(upload.mapping_plan["headers"], "")
    mapping.update({"Supplier": "supplier_name", "Expense Type": "material_description", "Amount": "total_price"})
    answer = client.post(
        f"/uploads/{upload.pk}/mapping/",
        {"mapping": json.dumps(mapping), "const_quantity": "1", "const_po_number": "BIS-2015-04", "currency": "GBP"},
    )
    assert answer.status_code == 302
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert upload.constants == {"quantity": "1", "po_number": "BIS-2015-04"}
    assert upload.imported_rows + upload.rejected_rows == upload.processed_rows
    assert PurchaseOrder.objects.get().po_number == "BIS-2015-04"
    assert set(PurchaseOrderLine.objects.values_list("quantity", flat=True)) == {Decimal("1")}
    assert set(PurchaseOrderLine.objects.values_list("currency", flat=True)) == {"GBP"}
