"""The mapping step through a real Celery worker: suggestions from the data, the stop in
needs_mapping, the choice posted over HTTP, and profiles for the next files."""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest

from ingestion import services
from ingestion.cards import render_card
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


def test_the_scms_file_resolves_its_price_by_the_total_and_loads_without_asking(user, client):
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
    # The columns left out, and why, on the card and the detail page: the date not taken as
    # the order date is named at once, not only inside the list.
    client.force_login(user)
    detail = client.get(f"/uploads/{upload.pk}/").content.decode()
    for html in (render_card(upload), detail):
        assert '<details class="unused-columns" open>' in html
        summary = html.split("<summary>")[1].split("</summary>")[0]
        assert summary.startswith(f"{len(upload.mapping_plan['unused'])} columns not used, ")
        assert "po sent to vendor date" in summary and "unit price" in summary
        assert "<strong>unit price</strong>: a second candidate for the unit price (matches line item value on" in html
        assert "<strong>po sent to vendor date</strong>: looks like the order date" in html
        assert "<strong>managed by</strong>: not a known field" in html
    assert Supplier.objects.count() == 73
    assert PurchaseOrder.objects.count() == 6233
    # Every line's unit price is its row's Pack Price: without a line-number column, a
    # line's number is its row's place among its purchase order's rows in the file.
    pack: dict[tuple[str, int], Decimal] = {}
    rows_of: dict[str, int] = {}
    with real_file(SCMS).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            po = row["po / so #"]
            rows_of[po] = rows_of.get(po, 0) + 1
            pack[(po, rows_of[po])] = Decimal(row["pack price"]).normalize()
    loaded = {
        (po, line): price.normalize()
        for po, line, price in PurchaseOrderLine.objects.values_list(
            "purchase_order__po_number", "line_number", "unit_price"
        )
    }
    assert len(loaded) == 10324
    assert loaded == pack


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
    assert extra.mapping_plan["unused"] == {
        "Bemerkung": "ignored by profile 'Lieferanten'",
        "Kostenstelle": "a new column, not in profile 'Lieferanten'",
    }
    card = render_card(extra)
    assert "<strong>Kostenstelle</strong>: a new column, not in profile &#x27;Lieferanten&#x27;" in card
    assert "Mapped with profile" in card and "new column &#x27;Kostenstelle&#x27; not loaded" in card


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

    # Every line is marked a spend line, on the line's page, the browse pages and the exports.
    assert set(PurchaseOrderLine.objects.values_list("spend", flat=True)) == {True}
    assert "Spend lines: quantity 1 for every row, PO number BIS-2015-04 for every row." in render_card(upload)
    first = PurchaseOrderLine.objects.get(line_number=1)
    assert '<dd class="line-kind">Spend line <span' in client.get(f"/lines/{first.pk}/").content.decode()
    listing = client.get("/browse/lines/").content.decode()
    assert listing.count('<span class="badge badge-spend"') == min(upload.imported_rows, 50)
    export = b"".join(client.get("/browse/lines.csv").streaming_content).decode().splitlines()
    assert export[0].endswith(",Spend line")
    assert {line.rsplit(",", 1)[1] for line in export[1:]} == {"yes"}

    # A priced PO line that overwrites one of them is no spend line; its revert makes it one again.
    priced = tmp_path / "priced.csv"
    priced.write_text(
        "Supplier,Description,PO Number,Line,Quantity,Unit Price\nAcme,Bolt,BIS-2015-04,1,4,2.50\n", encoding="utf-8"
    )
    po_line = wait_for_upload(services.create_upload_from_path(owner=user, path=priced))
    assert po_line.status == Upload.Status.COMPLETED, po_line.error_message
    first.refresh_from_db()
    assert (first.quantity, first.spend, first.upload_id) == (Decimal("4"), False, po_line.pk)
    assert PurchaseOrderLine.objects.filter(spend=True).count() == upload.imported_rows - 1
    assert '<dd class="line-kind">PO line</dd>' in client.get(f"/lines/{first.pk}/").content.decode()
    services.revert_upload(upload=po_line, by=user)
    first.refresh_from_db()
    assert (first.quantity, first.spend, first.upload_id) == (Decimal("1"), True, upload.pk)


DATED = [*UNKNOWN, "Datum"]
DATED_ROWS = [[*row, "2024-03-0" + str(i + 1)] for i, row in enumerate(ROWS)]


def test_a_profile_serves_a_file_missing_an_optional_column_and_asks_for_one_missing_a_needed_one(
    user, client, tmp_path
):
    first = write(tmp_path / "datiert.csv", DATED, DATED_ROWS)
    upload = wait_for_upload(
        services.create_upload_from_path(owner=user, path=first), statuses=[Upload.Status.NEEDS_MAPPING]
    )
    services.apply_mapping(upload=upload, by=user, mapping={**CHOICE, "Datum": "order_date"}, save_profile="Datiert")
    assert wait_for_upload(upload).status == Upload.Status.COMPLETED
    profile = MappingProfile.objects.get(name="Datiert")
    assert profile.mapping["datum"] == "order_date"

    # Without its date column (an optional field): the profile serves, and says what differed.
    headers = [h for h in DATED if h != "Datum"]
    no_date = write(tmp_path / "ohne-datum.csv", headers, ROWS)
    loaded = wait_for_upload(services.create_upload_from_path(owner=user, path=no_date))
    assert loaded.status == Upload.Status.COMPLETED, loaded.error_message
    assert (loaded.profile, loaded.profile_note) == (profile, "column 'datum' missing")
    assert loaded.imported_rows == 3
    assert "Mapped with profile" in render_card(loaded) and "column &#x27;datum&#x27; missing" in render_card(loaded)

    # Without its quantity column (a required field): it asks again, saying why the profile
    # was not used, and nothing is written.
    lines_before = PurchaseOrderLine.objects.count()
    headers = [h for h in DATED if h != "Menge"]
    no_quantity = write(tmp_path / "ohne-menge.csv", headers, [[*r[:3], *r[4:]] for r in DATED_ROWS])
    asked = wait_for_upload(services.create_upload_from_path(owner=user, path=no_quantity))
    assert asked.status == Upload.Status.NEEDS_MAPPING
    assert asked.profile is None
    assert asked.profile_note == "Profile 'Datiert' was not used: the file lacks column 'menge' it needs"
    assert "the file has no quantity column" in asked.error_message.lower()
    assert "Profile &#x27;Datiert&#x27; was not used" in render_card(asked)
    assert PurchaseOrderLine.objects.count() == lines_before


def test_retry_of_a_strict_failure_opens_the_form_and_of_a_file_failure_queues_it(user, tmp_path):
    # Strict stops at the first rejected row, before any row is counted: still a failure
    # the columns may have caused, so Retry opens the form with the choices it failed with.
    path = write(tmp_path / "strict.csv", UNKNOWN, [*ROWS, ["Acme", "Bolt", "B-3", "zehn", "0.25", ""]])
    upload = services.create_upload_from_path(owner=user, path=path, mapping=CHOICE, strict=True)
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.FAILED
    assert upload.error_message.startswith("Strict upload: row 5 was rejected (Menge: Quantity is not a number.)")
    upload = services.retry_upload(upload=upload, by=user)
    assert upload.status == Upload.Status.NEEDS_MAPPING
    assert upload.explicit_header_to_field == CHOICE
    assert upload.error_message.startswith("It failed: Strict upload: row 5 was rejected")
    assert "mapping-form" in render_card(upload)

    # A file with no data rows failed before any row was read: Retry queues it as it is.
    empty = write(tmp_path / "leer.csv", UNKNOWN, [])
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=empty, mapping=CHOICE))
    assert (upload.status, upload.error_message) == (
        Upload.Status.FAILED,
        "The file has a header row but no data rows.",
    )
    upload = services.retry_upload(upload=upload, by=user)
    assert upload.status == Upload.Status.QUEUED
    assert wait_for_upload(upload).status == Upload.Status.FAILED
