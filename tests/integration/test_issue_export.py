"""issues.csv beside each issue: the row's PO number, supplier and material, and for a total
that disagrees the expected total (quantity x unit price), through a real load."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from ingestion import services
from ingestion.models import Upload
from tests.helpers import HEADER, order_rows, wait_for_upload

pytestmark = pytest.mark.usefixtures("live_worker")


def test_issues_csv_names_the_rows_po_supplier_material_and_the_expected_total(user, tmp_path):
    rows = list(order_rows(30))
    rows[4][9] = "999.99"  # total of row 4 (spreadsheet row 6): quantity 5 x 5.25 = 26.25
    rows[12][8] = "abc"  # unit price not a number (spreadsheet row 14): rejected, no expected total
    path = tmp_path / "orders.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=path))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message

    client = Client()
    client.force_login(user)
    response = client.get(reverse("upload-issues-csv", args=[upload.pk]))
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    by_row = {int(r["row"]): r for r in table if r["row"]}
    total = by_row[6]
    assert total["message"] == "Total price differs from quantity x unit price."
    assert (total["po_number"], total["supplier"], total["material"]) == (
        "PO-000000",
        "S0004 Supplier 4",
        "M00004 Material 4",
    )
    assert total["value"] == "999.99"
    assert total["expected"] == "26.25"
    price = by_row[14]
    assert (price["po_number"], price["supplier"], price["material"]) == (
        "PO-000001",
        "S0012 Supplier 12",
        "M00012 Material 12",
    )
    assert price["expected"] == ""
