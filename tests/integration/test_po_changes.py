"""Purchase orders change too, through a real Celery worker on PostgreSQL: an order date
arriving where there was none fills it, a different one is a change under the upload's
policy with its history, a PO number with another supplier is a conflict, and a cancelled,
failed or reverted upload leaves no supplier, material or order that nothing uses."""

from __future__ import annotations

import csv
import datetime as dt
import time
from pathlib import Path

import pytest

from ingestion import services
from ingestion.models import (
    Material,
    PurchaseOrder,
    PurchaseOrderChange,
    PurchaseOrderLine,
    RowIssue,
    Supplier,
    Upload,
)
from ingestion.signals import lines_changed
from tests.helpers import HEADER, order_rows, real_file, wait_for_upload, write_orders

pytestmark = pytest.mark.usefixtures("live_worker")

ROWS = 200  # 20 purchase orders of ten lines


def load(user, path, **options) -> Upload:
    return wait_for_upload(services.create_upload_from_path(owner=user, path=path, **options))


def write(path: Path, rows: int, *, date: str | None = "2024-03-15", supplier: str | None = None, **options) -> Path:
    """`write_orders`' file with every PO date `date` (None: no date column at all) and, with
    `supplier`, every row's supplier that one."""
    header = [h for h in HEADER if date is not None or h != "PO Date"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in order_rows(rows, **options):
            if supplier is not None:
                row[0], row[1] = supplier, f"Supplier {supplier}"
            if date is None:
                del row[6]
            else:
                row[6] = date
            writer.writerow(row)
    return path


def dates() -> set:
    return set(PurchaseOrder.objects.values_list("order_date", flat=True))


def test_a_reload_that_brings_order_dates_fills_them_and_records_it(user, tmp_path):
    first = load(user, write(tmp_path / "a.csv", ROWS, date=None))
    assert first.status == Upload.Status.COMPLETED, first.error_message
    assert dates() == {None}
    # Under `keep` too: filling a missing date replaces nothing.
    second = load(user, write(tmp_path / "b.csv", ROWS), on_existing="keep")
    assert second.status == Upload.Status.COMPLETED, second.error_message
    assert dates() == {dt.date(2024, 3, 15)}
    changes = PurchaseOrderChange.objects.filter(upload=second)
    assert changes.count() == PurchaseOrder.objects.count() == 20
    assert set(changes.values_list("kind", "old_order_date", "new_order_date", "user_id")) == {
        ("filled", None, dt.date(2024, 3, 15), user.pk)
    }


@pytest.mark.parametrize("policy", ["update", "keep"])
def test_a_different_order_date_follows_the_policy(user, tmp_path, policy):
    load(user, write(tmp_path / "a.csv", ROWS))
    second = load(user, write(tmp_path / "b.csv", ROWS, date="2024-05-02"), on_existing=policy)
    assert second.status == Upload.Status.COMPLETED, second.error_message
    if policy == "update":
        assert dates() == {dt.date(2024, 5, 2)}
        assert set(PurchaseOrderChange.objects.values_list("kind", "old_order_date", "new_order_date")) == {
            ("updated", dt.date(2024, 3, 15), dt.date(2024, 5, 2))
        }
        assert PurchaseOrderChange.objects.count() == 20
        # The line's page and its history.json show its order's change, who and which file.
        from django.test import Client

        client = Client()
        client.force_login(user)
        line = PurchaseOrderLine.objects.order_by("pk").first()
        page = client.get(f"/lines/{line.pk}/").content.decode()
        assert "2024-03-15 → 2024-05-02" in page and "b.csv" in page
        changes = client.get(f"/lines/{line.pk}/history.json").json()["order_changes"]
        assert [(c["kind"], c["old_order_date"], c["new_order_date"], c["file"], c["user"]) for c in changes] == [
            ("updated", "2024-03-15", "2024-05-02", "b.csv", "alice")
        ]
    else:
        assert dates() == {dt.date(2024, 3, 15)}
        assert not PurchaseOrderChange.objects.exists()


def test_under_review_a_new_order_date_is_listed_and_taken_with_the_line(user, tmp_path):
    load(user, write(tmp_path / "a.csv", ROWS))
    upload = load(user, write(tmp_path / "b.csv", ROWS, date="2024-05-02"), on_existing="review")
    assert upload.status == Upload.Status.AWAITING_REVIEW
    assert upload.review_summary["changed"] == ROWS  # every line's order has a new date
    changes = services_changes(user, upload)
    assert {(c["field"], c["old"], c["new"]) for c in changes} == {("order_date", "2024-03-15", "2024-05-02")}
    assert dates() == {dt.date(2024, 3, 15)}
    # Take the lines of the first order only: only that order's date changes.
    first_po = PurchaseOrder.objects.order_by("po_number").first()
    take = list(PurchaseOrderLine.objects.filter(purchase_order=first_po).values_list("pk", flat=True))
    services.apply_review(upload=upload, by=user, decision="keep", take=take)
    services.load_reviewed(upload=upload, by=user)
    done = wait_for_upload(upload)
    assert done.status == Upload.Status.COMPLETED, done.error_message
    assert dict(PurchaseOrder.objects.values_list("po_number", "order_date")) == {
        po: (dt.date(2024, 5, 2) if po == first_po.po_number else dt.date(2024, 3, 15))
        for po in PurchaseOrder.objects.values_list("po_number", flat=True)
    }
    assert list(PurchaseOrderChange.objects.values_list("purchase_order_id", "kind")) == [(first_po.pk, "updated")]


def services_changes(user, upload) -> list[dict]:
    from django.test import Client

    client = Client()
    client.force_login(user)
    response = client.get(f"/uploads/{upload.pk}/changes.json")
    assert response.status_code == 200
    return response.json()["results"]


def test_a_po_number_with_another_supplier_is_a_conflict_naming_both(user, tmp_path):
    load(user, write(tmp_path / "a.csv", ROWS, supplier="S0001"))
    other = load(user, write(tmp_path / "b.csv", ROWS, supplier="S0777", price_factor=5))
    assert other.status == Upload.Status.COMPLETED, other.error_message
    issues = RowIssue.objects.filter(upload=other, severity="warning", message__contains="belongs to supplier")
    assert issues.count() == other.warning_count == ROWS
    assert issues.first().message == (
        "PO PO-000000 belongs to supplier 'Supplier S0001'; this file gives it 'Supplier S0777'. A PO number "
        "with another supplier is a conflict: the row was loaded into the order of 'Supplier S0001', its history "
        "keeps what it replaced (check the PO number or the supplier; revert the upload to take it back)."
    )
    # The orders keep their supplier; the lines took the file's values (`update`), and a
    # revert gives them back.
    assert set(PurchaseOrder.objects.values_list("supplier__code", flat=True)) == {"S0001"}
    assert other.updated_lines == ROWS
    # Under review the rows are listed as conflicts and counted in the summary.
    mixed = tmp_path / "c.csv"
    with mixed.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i, row in enumerate(order_rows(ROWS + 300, price_factor=2)):
            # Orders 1 to 9 (rows 10-99) come with another supplier; every price is new.
            row[0], row[1] = ("S0777", "Supplier S0777") if 10 <= i < 100 else ("S0001", "Supplier S0001")
            writer.writerow(row)
    upload = load(user, mixed, on_existing="review")
    assert upload.status == Upload.Status.AWAITING_REVIEW, upload.error_message
    assert upload.review_summary["conflicts"] == 90
    assert (upload.review_summary["changed"], upload.review_summary["new"]) == (ROWS, 300)
    from django.test import Client

    client = Client()
    client.force_login(user)
    page = client.get(f"/uploads/{upload.pk}/review/").content.decode()
    assert "PO PO-000001 belongs to supplier" in page


def test_the_usaid_file_loaded_without_then_with_its_dates_gets_them(user, tmp_path):
    path = real_file("Supply_Chain_Shipment_Pricing_Data.csv")
    mapping = {
        "vendor": "supplier_name",
        "item description": "material_description",
        "po / so #": "po_number",
        "line item quantity": "quantity",
        "pack price": "unit_price",
        "line item value": "total_price",
    }
    without = load(user, path, mapping={**mapping, "po sent to vendor date": ""})
    assert without.status == Upload.Status.COMPLETED, without.error_message
    assert not PurchaseOrder.objects.exclude(order_date=None).exists()
    orders = PurchaseOrder.objects.count()
    assert orders > 6000
    dated = load(user, path, mapping={**mapping, "po sent to vendor date": "order_date"})
    assert dated.status == Upload.Status.COMPLETED, dated.error_message
    filled = PurchaseOrder.objects.exclude(order_date=None)
    # Many rows say 'N/A - From RDC' or 'Date Not Captured': those orders stay without one.
    assert filled.count() > 1000
    assert PurchaseOrderChange.objects.filter(upload=dated, kind="filled").count() == filled.count()
    assert (dated.created_lines, dated.updated_lines) == (0, 0)


def test_a_cancelled_load_leaves_no_order_material_or_supplier_that_nothing_uses(user, tmp_path):
    base = load(user, write_orders(tmp_path / "base.csv", 500))
    kept = (Supplier.objects.count(), Material.objects.count(), PurchaseOrder.objects.count())
    upload = services.create_upload_from_path(
        owner=user, path=write_orders(tmp_path / "big.csv", 150_000, suppliers=5000, materials=20_000)
    )
    wait_for_upload(upload, statuses={Upload.Status.PROCESSING})
    while upload.processed_rows < 3000 and upload.status == Upload.Status.PROCESSING:
        time.sleep(0.02)
        upload.refresh_from_db()
    assert upload.status == Upload.Status.PROCESSING, "the load ended before it could be cancelled"
    services.cancel_upload(upload=upload, by=user)
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.CANCELLED
    assert (Supplier.objects.count(), Material.objects.count(), PurchaseOrder.objects.count()) == kept
    assert not PurchaseOrder.objects.filter(lines=None).exists()
    assert not Material.objects.filter(lines=None).exists()
    assert set(PurchaseOrder.objects.values_list("created_by_upload_id", flat=True)) == {base.pk}


def test_a_revert_removes_what_it_created_unless_something_else_uses_it(user, tmp_path):
    first = load(user, write_orders(tmp_path / "a.csv", 100))
    # The same 100 lines and 100 more: 10 new orders, new suppliers and materials for some.
    second = load(user, write_orders(tmp_path / "b.csv", 200, suppliers=40, materials=80))
    assert second.status == Upload.Status.COMPLETED, second.error_message
    assert second.created_purchase_orders == 10
    services.revert_upload(upload=second, by=user)
    second.refresh_from_db()
    assert PurchaseOrder.objects.count() == first.created_purchase_orders == 10
    assert Supplier.objects.count() == first.created_suppliers
    assert Material.objects.count() == first.created_materials
    assert (second.created_suppliers, second.created_materials, second.created_purchase_orders) == (0, 0, 0)
    # And the first, reverted too, leaves nothing.
    services.revert_upload(upload=first, by=user)
    assert (Supplier.objects.count(), Material.objects.count(), PurchaseOrder.objects.count()) == (0, 0, 0)


def test_a_revert_puts_the_order_dates_back(user, tmp_path):
    load(user, write(tmp_path / "a.csv", ROWS))
    second = load(user, write(tmp_path / "b.csv", ROWS, date="2024-05-02"))
    assert dates() == {dt.date(2024, 5, 2)}
    heard = []

    def receiver(sender, upload, kind, **kwargs):
        heard.append((upload.pk, kind))

    lines_changed.connect(receiver, weak=False)
    try:
        services.revert_upload(upload=second, by=user)
    finally:
        lines_changed.disconnect(receiver)
    assert heard == [(second.pk, "reverted")]
    assert dates() == {dt.date(2024, 3, 15)}
    assert PurchaseOrderChange.objects.filter(upload=second, kind="reverted").count() == 20
