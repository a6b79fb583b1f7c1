"""`manage.py ingest --dry-run`: what a load would do, on PostgreSQL, with nothing written
(no upload row, no supplier, material or purchase order, no line, no stored file)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from ingestion import services
from ingestion.models import (
    LineVersion,
    Material,
    ProposedChange,
    PurchaseOrder,
    PurchaseOrderLine,
    RowIssue,
    Supplier,
    Upload,
)
from tests.helpers import HEADER, order_price, order_rows, wait_for_upload, write_changed_orders, write_orders

ROWS = 300


def state() -> tuple:
    return (
        Upload.objects.count(),
        Supplier.objects.count(),
        Material.objects.count(),
        PurchaseOrder.objects.count(),
        list(PurchaseOrderLine.objects.order_by("pk").values_list("pk", "unit_price", "updated_at")),
        LineVersion.objects.count(),
        ProposedChange.objects.count(),
        RowIssue.objects.count(),
        sorted(p.name for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()),
    )


def dry_run(*args: str) -> str:
    out = io.StringIO()
    call_command("ingest", *args, "--user", "alice", "--dry-run", stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.usefixtures("live_worker")
def test_a_dry_run_reports_new_changed_unchanged_and_rejected_and_writes_nothing(user, tmp_path):
    base = wait_for_upload(services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "a.csv", ROWS)))
    assert base.status == Upload.Status.COMPLETED
    changed = {i: f"{order_price(i) + 10}" for i in range(0, ROWS, 15)}  # 20 rows
    # 30 rows more: 3 new purchase orders; and one row whose price is not a number, rejected.
    path = write_changed_orders(tmp_path / "b.csv", ROWS + 30, prices=changed)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("S0001,Supplier 1,M00001,Material 1,EA,PO-000099,2024-03-15,1,not-a-price,,USD\n")
    before = state()

    report = json.loads(dry_run(str(path), "--json"))

    assert state() == before
    assert report["status"] == "would_load"
    assert report["dry_run"] is True
    assert report["lines"] == {"new": 30, "changed": 20, "unchanged": ROWS - 20, "rejected": 1}
    assert report["created"] == {"suppliers": 0, "materials": 0, "purchase_orders": 3}
    # The first changes (all 20 here), each field as old -> new: the price, and the total with it.
    assert len(report["changes"]) == 40
    assert {c["field"] for c in report["changes"]} == {"unit_price", "total_price"}
    first = report["changes"][0]
    assert (first["po_number"], first["line_number"], first["field"]) == ("PO-000000", 1, "unit_price")
    assert (first["old"], first["new"], first["change_percent"]) == ("1.250000", "11.250000", "800.00")

    text = dry_run(str(path))
    assert "dry run, nothing written: would load 30 new lines, change 20, leave 280 unchanged, reject 1 rows" in text
    assert "would create 0 suppliers, 0 materials, 3 purchase orders" in text
    assert "PO PO-000000 line 1 unit_price: 1.250000 -> 11.250000 (800.00%)" in text
    assert state() == before


@pytest.mark.django_db(transaction=True)
def test_a_dry_run_of_a_file_that_would_fail_says_why_and_exits_1(user, tmp_path):
    from django.core.management.base import CommandError

    path = tmp_path / "header-only.csv"
    path.write_text("Vendor,SKU,PO,Qty,Price\n", encoding="utf-8")
    before = state()
    with pytest.raises(CommandError, match="would fail \\(The file has a header row but no data rows.\\)"):
        dry_run(str(path), "--json")
    assert state() == before


def write_rows(path: Path, rows: list[list[str]], *, dates: bool = True) -> Path:
    header = [h for h in HEADER if dates or h != "PO Date"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(row if dates else row[:6] + row[7:] for row in rows)
    return path


@pytest.mark.usefixtures("live_worker")
def test_a_dry_run_reports_the_orders_whose_date_or_currency_would_change_and_supplier_conflicts(user, tmp_path):
    # Ten orders loaded without their dates (PO-), ten with them (DT-).
    for path in (
        write_rows(tmp_path / "undated.csv", list(order_rows(100)), dates=False),
        write_orders(tmp_path / "dated.csv", 100, prefix="DT"),
    ):
        assert wait_for_upload(services.create_upload_from_path(owner=user, path=path)).status == "completed"
    rows = list(order_rows(100))  # brings the PO- dates: filled
    for i, row in enumerate(order_rows(100, prefix="DT")):
        row[6] = "2024-05-02"  # another date for every DT- order: changed
        if i >= 90:
            row[10] = "EUR"  # and another currency for DT-000009
        rows.append(row)
    for row in rows[30:40]:  # PO-000003 (of "Supplier 10") with another supplier
        row[0], row[1] = "S9999", "Supplier Other"
    path = write_rows(tmp_path / "again.csv", rows)
    before = state()

    report = json.loads(dry_run(str(path), "--json"))

    assert state() == before
    orders = report["orders"]
    assert (orders["filled"], orders["changed"]) == (10, 10)
    assert len(orders["changes"]) == 20  # the first 20, by PO number
    assert orders["changes"][0] == {
        "po_number": "DT-000000",
        "field": "order_date",
        "old": "2024-03-15",
        "new": "2024-05-02",
    }
    assert {"po_number": "DT-000009", "field": "currency", "old": "USD", "new": "EUR"} in orders["changes"]
    assert {"po_number": "PO-000000", "field": "order_date", "old": None, "new": "2024-03-15"} in orders["changes"]
    assert orders["supplier_conflicts"] == 1
    assert orders["conflicts"] == [
        {"po_number": "PO-000003", "supplier": "Supplier 10", "file_supplier": "Supplier Other", "rows": 10}
    ]

    # Under `keep` a different date or currency is kept: only the missing dates are filled.
    kept = json.loads(dry_run(str(path), "--json", "--on-existing", "keep"))["orders"]
    assert (kept["filled"], kept["changed"]) == (10, 0)

    text = dry_run(str(path))
    assert "purchase orders: would fill the order date of 10, change the date or currency of 10" in text
    assert "PO DT-000009 currency: USD -> EUR" in text
    assert "1 PO numbers would arrive with another supplier than their order's:" in text
    assert "PO PO-000003 belongs to 'Supplier 10'; this file gives it 'Supplier Other' (10 rows)" in text
    assert state() == before
