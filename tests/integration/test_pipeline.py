"""The whole pipeline through a real Celery worker process, real Redis and the test
database (PostgreSQL in CI)."""

from __future__ import annotations

import csv
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.db.models import Sum

from ingestion import services
from ingestion.models import Material, PurchaseOrder, PurchaseOrderLine, RowIssue, Supplier, Upload
from ingestion.tasks import process_upload
from tests.helpers import HEADER, SCMS_MAPPING, real_file, wait_for_upload, write_orders

pytestmark = pytest.mark.usefixtures("live_worker")


def upload_path(user, path, **options) -> Upload:
    return services.create_upload_from_path(owner=user, path=path, **options)


def lines_snapshot():
    return list(
        PurchaseOrderLine.objects.order_by("purchase_order_id", "line_number").values_list(
            "purchase_order_id",
            "line_number",
            "material_id",
            "quantity",
            "unit_price",
            "total_price",
            "currency",
            "upload_id",
        )
    )


def test_real_scms_file_loads_every_row_and_reports_bad_dates_as_warnings(user):
    upload = wait_for_upload(
        upload_path(user, real_file("Supply_Chain_Shipment_Pricing_Data.csv"), mapping=SCMS_MAPPING)
    )
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert upload.total_rows == upload.processed_rows == upload.imported_rows == 10324
    assert upload.rejected_rows == 0
    assert PurchaseOrderLine.objects.filter(upload=upload).count() == upload.created_lines == 10324
    assert upload.created_purchase_orders == PurchaseOrder.objects.count() > 6000
    # 'N/A - From RDC', 'Date Not Captured', ... in the order-date column: warnings, not rejections.
    date_warnings = RowIssue.objects.filter(upload=upload, column="po sent to vendor date", severity="warning")
    assert date_warnings.count() > 5000
    assert date_warnings.filter(value="N/A - From RDC").exists()
    first = date_warnings.order_by("row_number").first()
    assert first.row_number >= 2 and "Date not recognised" in first.message
    assert Supplier.objects.filter(name="SCMS from RDC").exists()
    # Money kept exact: the lines' totals add up to the cent to the file's own, summed here
    # with the csv module and Decimal, independently of the pipeline.
    with real_file("Supply_Chain_Shipment_Pricing_Data.csv").open(newline="", encoding="utf-8") as handle:
        file_total = sum((Decimal(row["line item value"]) for row in csv.DictReader(handle)), Decimal(0))
    loaded_total = PurchaseOrderLine.objects.filter(upload=upload).aggregate(total=Sum("total_price"))["total"]
    assert loaded_total == file_total


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("April_2015_published.csv", ["po_number", "quantity"]),
        ("expenditure-over-500-oct-dec-2017.csv", ["material_code or material_description", "po_number", "quantity"]),
    ],
)
def test_uk_payment_files_stop_for_their_mapping_naming_what_is_missing(user, name, missing):
    upload = wait_for_upload(upload_path(user, real_file(name)), statuses=[Upload.Status.NEEDS_MAPPING])
    words = {
        "po_number": "PO number",
        "quantity": "quantity",
        "material_code or material_description": "material code or material description",
    }
    expected = "; ".join(f"the file has no {words[m]} column" for m in missing)
    assert upload.error_message == "T" + expected[1:] + ". Choose the columns below."
    assert upload.mapping_plan["missing"] == missing
    assert upload.mapping_plan["headers"][0] in ("Department", "Client")
    assert PurchaseOrderLine.objects.count() == 0
    assert RowIssue.objects.filter(upload=upload).count() == 0
    # Dropped with one click: nothing was ever written.
    upload = services.cancel_upload(upload=upload, by=user)
    assert upload.status == Upload.Status.CANCELLED
    assert upload.error_message == "Dropped; nothing was loaded."


def test_real_scms_file_without_mapping_uses_synonyms(user):
    upload = wait_for_upload(upload_path(user, real_file("Supply_Chain_Shipment_Pricing_Data.csv")))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert upload.imported_rows == 10324


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("blank.csv", b"   \r\n\r\n", "The file is empty."),
        ("header.csv", (",".join(HEADER) + "\r\n").encode(), "no data rows"),
        ("junk.csv", bytes(range(256)) * 64, "not a text file"),
        ("fake.xlsx", b"Supplier,SKU,PO,Qty,Price\nA,B,C,1,2\n", "not a valid Excel workbook"),
        ("zip.csv", b"PK\x03\x04" + b"\x00" * 100, "zip archive"),
    ],
)
def test_bad_files_fail_with_a_clear_message(user, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    upload = wait_for_upload(upload_path(user, path))
    assert upload.status == Upload.Status.FAILED
    assert message in upload.error_message
    assert PurchaseOrderLine.objects.count() == 0


def test_an_empty_file_is_refused_at_upload(user, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(services.UploadRejected, match="empty"):
        upload_path(user, path)
    assert not Upload.objects.exists()


def test_a_file_whose_only_line_is_50_mb_fails_cleanly(user, tmp_path):
    path = tmp_path / "oneline.csv"
    with path.open("wb") as handle:
        for _ in range(50):
            handle.write(b"x" * (1 << 20))
    upload = wait_for_upload(upload_path(user, path))
    assert upload.status == Upload.Status.FAILED
    assert "first line is longer than 1 MB" in upload.error_message


def test_cp1252_file_loads_with_its_accents(user, tmp_path):
    path = tmp_path / "legacy.csv"
    text = "Vendor;Item;PO Number;Qty;Unit Price\r\nCôte d'Ivoire Pharma;Crème, 50 ml;PO-1;2;3,50\r\nSociété Générale;Café;PO-2;1;10\r\n"
    path.write_bytes(text.encode("cp1252"))
    upload = wait_for_upload(upload_path(user, path))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert set(Supplier.objects.values_list("name", flat=True)) == {"Côte d'Ivoire Pharma", "Société Générale"}
    assert Material.objects.filter(code="Crème, 50 ml").exists()
    line = PurchaseOrderLine.objects.get(purchase_order__po_number="PO-1")
    assert str(line.unit_price).startswith("3.5")


def test_bad_rows_are_reported_with_row_and_column_and_the_rest_loads(user, tmp_path):
    path = tmp_path / "messy.csv"
    path.write_text(
        "Vendor,SKU,PO,Qty,Price,PO Date\n"
        "Acme,M1,PO-1,2,$1.50,2024-01-02\n"
        "Acme,M2,PO-1,zero,$1.50,2024-01-02\n"
        "Acme,M3,,4,$1.50,2024-01-02\n"
        "Acme,M4,PO-2,1,USD 12.50,not a date\n",
        encoding="utf-8",
    )
    upload = wait_for_upload(upload_path(user, path))
    assert upload.status == Upload.Status.COMPLETED
    assert (upload.imported_rows, upload.rejected_rows, upload.warning_count) == (2, 2, 1)
    issues = {(i.row_number, i.column, i.severity) for i in RowIssue.objects.filter(upload=upload)}
    assert issues == {(3, "Qty", "error"), (4, "PO", "error"), (5, "PO Date", "warning")}
    assert PurchaseOrderLine.objects.count() == 2


def test_more_than_half_rejected_fails_and_loads_nothing(user, tmp_path):
    path = tmp_path / "mostly-bad.csv"
    path.write_text("Vendor,SKU,PO,Qty,Price\nA,M1,PO-1,1,2\nA,M2,PO-1,0,2\nA,M3,PO-1,x,2\n", encoding="utf-8")
    upload = wait_for_upload(upload_path(user, path))
    assert upload.status == Upload.Status.FAILED
    assert "2 of 3 rows were rejected" in upload.error_message
    assert PurchaseOrderLine.objects.count() == 0
    assert RowIssue.objects.filter(upload=upload, severity="error").count() == 2


def test_strict_upload_fails_on_the_first_rejected_row(user, tmp_path):
    path = tmp_path / "strict.csv"
    path.write_text("Vendor,SKU,PO,Qty,Price\nA,M1,PO-1,1,2\nA,M2,PO-1,1,2\nA,M3,PO-2,0,2\n", encoding="utf-8")
    upload = wait_for_upload(upload_path(user, path, strict=True))
    assert upload.status == Upload.Status.FAILED
    assert "row 4" in upload.error_message
    assert PurchaseOrderLine.objects.count() == 0


def test_loading_the_same_file_twice_creates_nothing_new_and_price_changes_count_as_updates(user, tmp_path):
    first = wait_for_upload(upload_path(user, write_orders(tmp_path / "a.csv", 3000)))
    assert first.status == Upload.Status.COMPLETED
    assert (first.created_lines, first.updated_lines) == (3000, 0)
    assert (first.created_suppliers, first.created_materials, first.created_purchase_orders) == (20, 50, 300)
    again = wait_for_upload(upload_path(user, write_orders(tmp_path / "b.csv", 3000)))
    assert (again.created_lines, again.updated_lines, again.created_suppliers, again.created_purchase_orders) == (
        0,
        0,
        0,
        0,
    )
    changed = wait_for_upload(upload_path(user, write_orders(tmp_path / "c.csv", 3000, price_factor=2)))
    assert (changed.created_lines, changed.updated_lines) == (0, 3000)
    assert PurchaseOrderLine.objects.count() == 3000
    assert PurchaseOrderLine.objects.filter(upload=changed).count() == 3000


def test_cancel_midway_leaves_the_lines_exactly_as_they_were(user, tmp_path):
    base = wait_for_upload(upload_path(user, write_orders(tmp_path / "base.csv", 2000)))
    assert base.status == Upload.Status.COMPLETED
    before = lines_snapshot()
    # The same lines at new prices, and many more: a cancelled load must leave neither.
    upload = upload_path(user, write_orders(tmp_path / "big.csv", 150_000, price_factor=3))
    wait_for_upload(upload, statuses={Upload.Status.PROCESSING})
    while upload.processed_rows < 3000 and upload.status == Upload.Status.PROCESSING:
        time.sleep(0.02)
        upload.refresh_from_db()
    assert upload.status == Upload.Status.PROCESSING, "the load ended before it could be cancelled"
    services.cancel_upload(upload=upload, by=user)
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.CANCELLED
    assert lines_snapshot() == before
    assert not PurchaseOrderLine.objects.filter(upload=upload).exists()
    assert upload.processed_rows < 150_000
    # No partial data: the purchase orders it created went too; the base's stay, in use.
    assert PurchaseOrder.objects.count() == base.created_purchase_orders == 200
    assert (Supplier.objects.count(), Material.objects.count()) == (base.created_suppliers, base.created_materials)
    assert (upload.created_suppliers, upload.created_materials, upload.created_purchase_orders) == (0, 0, 0)
    assert upload.error_message == (
        "Cancelled; no lines were written. The suppliers, materials and purchase orders it created were removed."
    )


def test_a_retried_upload_counts_what_every_attempt_created(user, tmp_path):
    # 2,000 suppliers and 50 materials in the first 2,000 rows; 10,000 purchase orders, ten
    # rows each, all through the file.
    path = write_orders(tmp_path / "many-suppliers.csv", 100_000, suppliers=2000, materials=50)
    upload = upload_path(user, path)
    wait_for_upload(upload, statuses={Upload.Status.PROCESSING})
    while upload.processed_rows < 3000 and upload.status == Upload.Status.PROCESSING:
        time.sleep(0.02)
        upload.refresh_from_db()
    assert upload.status == Upload.Status.PROCESSING, "the load ended before it could be cancelled"
    services.cancel_upload(upload=upload, by=user)
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.CANCELLED
    # The first attempt's suppliers, materials and purchase orders went with it (nothing else
    # used them), and its counts say so.
    assert (Supplier.objects.count(), Material.objects.count(), PurchaseOrder.objects.count()) == (0, 0, 0)
    assert (upload.created_suppliers, upload.created_materials, upload.created_purchase_orders) == (0, 0, 0)
    assert (upload.created_lines, upload.attempts) == (0, 1)

    upload = services.retry_upload(upload=upload, by=user)
    assert (upload.processed_rows, upload.created_suppliers, upload.created_purchase_orders) == (0, 0, 0)
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert upload.attempts == 2
    assert (upload.processed_rows, upload.imported_rows, upload.rejected_rows) == (100_000, 100_000, 0)
    # The second attempt created them all again; the upload's counts are everything in the database.
    assert (upload.created_suppliers, upload.created_materials, upload.created_purchase_orders) == (2000, 50, 10_000)
    assert (Supplier.objects.count(), Material.objects.count(), PurchaseOrder.objects.count()) == (2000, 50, 10_000)
    assert (upload.created_lines, upload.updated_lines) == (100_000, 0)
    assert PurchaseOrderLine.objects.filter(upload=upload).count() == 100_000


def test_cancel_of_a_queued_upload_ends_it_at_once(user, tmp_path):
    upload = services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "q.csv", 10), enqueue=False)
    cancelled = services.cancel_upload(upload=upload, by=user)
    assert cancelled.status == Upload.Status.CANCELLED
    process_upload.delay(str(upload.pk)).get(timeout=60)  # a late delivery changes nothing
    upload.refresh_from_db()
    assert upload.status == Upload.Status.CANCELLED and not PurchaseOrderLine.objects.exists()


def test_cancel_is_refused_for_another_users_upload(user, other_user, tmp_path):
    upload = services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "q.csv", 10), enqueue=False)
    with pytest.raises(services.PermissionDenied):
        services.cancel_upload(upload=upload, by=other_user)
    upload.refresh_from_db()
    assert upload.status == Upload.Status.QUEUED


def test_a_task_delivered_twice_loads_once(user, tmp_path):
    upload = services.create_upload_from_path(
        owner=user, path=write_orders(tmp_path / "twice.csv", 20_000), enqueue=False
    )
    first = process_upload.delay(str(upload.pk))
    second = process_upload.delay(str(upload.pk))  # the worker has two processes: both run at once
    results = [first.get(timeout=120), second.get(timeout=120)]
    upload.refresh_from_db()
    assert upload.status == Upload.Status.COMPLETED
    assert PurchaseOrderLine.objects.count() == 20_000
    assert all(r["status"] == "completed" for r in results)
    assert upload.created_lines == 20_000
    # And once more after the end: nothing changes.
    assert process_upload.delay(str(upload.pk)).get(timeout=60)["created_prices"] == 20_000
    assert PurchaseOrderLine.objects.count() == 20_000


def test_two_uploads_sharing_suppliers_and_materials_both_complete(user, tmp_path):
    a = upload_path(user, write_orders(tmp_path / "a.csv", 20_000, prefix="A"))
    b = upload_path(user, write_orders(tmp_path / "b.csv", 20_000, prefix="B"))
    a, b = wait_for_upload(a), wait_for_upload(b)
    assert (a.status, b.status) == (Upload.Status.COMPLETED, Upload.Status.COMPLETED), (
        a.error_message,
        b.error_message,
    )
    assert a.created_suppliers + b.created_suppliers == Supplier.objects.count() == 20
    assert a.created_materials + b.created_materials == Material.objects.count() == 50
    assert PurchaseOrderLine.objects.count() == 40_000


def test_task_result_has_the_keys_the_readme_names(user, tmp_path):
    upload = services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "r.csv", 100), enqueue=False)
    result = process_upload.delay(str(upload.pk)).get(timeout=60)
    assert result == {
        "upload_id": str(upload.pk),
        "status": "completed",
        "processed": 100,
        "imported": 100,
        "rejected": 0,
        "created_suppliers": 20,
        "created_materials": 50,
        "created_pos": 10,
        "created_prices": 100,
        "updated_prices": 0,
        "error": None,
    }


def test_retry_of_a_failed_upload_runs_it_again(user, tmp_path):
    path = tmp_path / "fix.csv"
    path.write_text("Vendor,SKU,PO,Qty,Price\nA,M1,PO-1,0,2\n", encoding="utf-8")
    upload = wait_for_upload(upload_path(user, path))
    assert upload.status == Upload.Status.FAILED
    assert upload.attempts == 1
    first_error = upload.error_message
    upload = services.retry_upload(upload=upload, by=user)
    # Retry opens the mapping form with the choice it failed with, from a clean slate.
    assert (upload.status, upload.processed_rows, upload.rejected_rows) == (Upload.Status.NEEDS_MAPPING, 0, 0)
    assert upload.error_message == f"It failed: {first_error} Check the columns and options below, then load it again."
    assert upload.explicit_header_to_field == {
        "Vendor": "supplier_name",
        "SKU": "material_code",
        "PO": "po_number",
        "Qty": "quantity",
        "Price": "unit_price",
    }
    upload = services.apply_mapping(upload=upload, by=user, mapping=upload.explicit_header_to_field)
    assert (upload.status, upload.error_message) == (Upload.Status.QUEUED, "")
    upload = wait_for_upload(upload)
    assert (upload.status, upload.attempts) == (Upload.Status.FAILED, 2)
    assert upload.error_message == first_error
    assert list(RowIssue.objects.filter(upload=upload).values_list("row_number", "column")) == [(2, "Qty")]


def test_progress_shows_every_batch_while_the_lines_appear_all_at_once(user, tmp_path):
    upload = upload_path(user, write_orders(tmp_path / "big.csv", 60_000))
    wait_for_upload(upload, statuses={Upload.Status.PROCESSING})
    while upload.processed_rows < 5000 and upload.status == Upload.Status.PROCESSING:
        time.sleep(0.01)
        upload.refresh_from_db()
    # Seen from another connection: the progress is there, the lines are not (yet).
    lines_meanwhile = PurchaseOrderLine.objects.count()
    assert upload.status == Upload.Status.PROCESSING, "the load ended before it could be watched"
    assert upload.processed_rows >= 5000 and lines_meanwhile == 0
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.COMPLETED
    assert PurchaseOrderLine.objects.filter(upload=upload).count() == upload.created_lines == 60_000


def test_a_line_repeated_in_the_file_counts_once_and_its_last_values_win(user, tmp_path):
    # Batches of 1000 rows: repeats fall in the same batch as their original and in later ones.
    originals = [[f"PO-{i // 10:04d}", str(i % 10 + 1), "5", f"{i % 13 + 1}.00"] for i in range(1500)]
    repeats = [[po, line, quantity, "99.50"] for po, line, quantity, _ in originals[1000:1050] + originals[:600]]
    path = tmp_path / "repeats.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("Vendor,SKU,PO,Line,Qty,Price\n")
        handle.writelines(
            f"Acme,M{int(line) % 4},{po},{line},{quantity},{price}\n"
            for po, line, quantity, price in originals + repeats
        )
    upload = wait_for_upload(upload_path(user, path))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert (upload.imported_rows, upload.created_lines, upload.updated_lines) == (2150, 1500, 0)
    assert PurchaseOrderLine.objects.count() == 1500
    repeated = {(po, int(line)) for po, line, *_ in repeats}
    prices = {
        (po, line): price
        for po, line, price in PurchaseOrderLine.objects.values_list(
            "purchase_order__po_number", "line_number", "unit_price"
        )
    }
    assert all(prices[key] == Decimal("99.50") for key in repeated)
    assert all(price != Decimal("99.50") for key, price in prices.items() if key not in repeated)


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="the PostgreSQL line writer's row locks (CI runs on PostgreSQL)",
)
def test_cancel_stops_a_load_that_waits_on_a_line_another_transaction_holds(user, tmp_path):
    import psycopg
    from django.db import connection

    from tests.helpers import database_url_for

    base = wait_for_upload(upload_path(user, write_orders(tmp_path / "base.csv", 2000)))
    before = lines_snapshot()
    with psycopg.connect(database_url_for(connection.settings_dict)) as holder:
        holder.execute(
            "SELECT id FROM ingestion_purchaseorderline WHERE upload_id = %s ORDER BY id LIMIT 1 FOR UPDATE", [base.pk]
        ).fetchone()
        upload = upload_path(user, write_orders(tmp_path / "new-prices.csv", 20_000, price_factor=3))
        wait_for_upload(upload, statuses={Upload.Status.PROCESSING})
        while upload.processed_rows < 2000 and upload.status == Upload.Status.PROCESSING:
            time.sleep(0.02)
            upload.refresh_from_db()
        services.cancel_upload(upload=upload, by=user)
        # Still holding the lock: the blocked statement itself must be stopped.
        upload = wait_for_upload(upload, timeout=20)
        assert upload.status == Upload.Status.CANCELLED
        holder.rollback()
    assert lines_snapshot() == before


def test_fixing_a_rejected_row_and_loading_again_adds_just_that_line(user, tmp_path):
    # No line-number column: lines are numbered by order within their PO, rejected rows included.
    bad, fixed = tmp_path / "orders.csv", tmp_path / "orders-fixed.csv"
    bad.write_text(
        "Vendor,SKU,PO,Qty,Price\nAcme,M1,PO-1,1,2\nAcme,M2,PO-1,two,2\nAcme,M3,PO-1,3,2\n", encoding="utf-8"
    )
    fixed.write_text(
        "Vendor,SKU,PO,Qty,Price\nAcme,M1,PO-1,1,2\nAcme,M2,PO-1,2,2\nAcme,M3,PO-1,3,2\n", encoding="utf-8"
    )
    first = wait_for_upload(upload_path(user, bad))
    assert (first.status, first.rejected_rows, first.created_lines) == (Upload.Status.COMPLETED, 1, 2)
    again = wait_for_upload(upload_path(user, fixed))
    assert (again.created_lines, again.updated_lines) == (1, 0)
    assert list(PurchaseOrderLine.objects.order_by("line_number").values_list("line_number", "material__code")) == [
        (1, "M1"),
        (2, "M2"),
        (3, "M3"),
    ]


def test_values_near_the_columns_limits_load_and_beyond_them_only_their_row_is_rejected(user, tmp_path):
    path = tmp_path / "limits.csv"
    path.write_text(
        "Vendor,SKU,PO,Qty,Price,Total\n"
        "Acme,M1,PO-1,999999999999999,99999999999999,\n"  # near the largest the columns hold
        "Acme,M2,PO-1,1,5,99999999999999999\n"
        "Acme,M3,PO-1,1,500000000000000,\n"  # beyond: the row is rejected, the file loads
        "Acme,M4,PO-1,2,3,6\n",
        encoding="utf-8",
    )
    upload = wait_for_upload(upload_path(user, path))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert (upload.imported_rows, upload.rejected_rows, upload.created_lines) == (3, 1, 3)
    assert RowIssue.objects.get(upload=upload, severity="error").row_number == 4
    assert PurchaseOrderLine.objects.get(material__code="M1").unit_price == Decimal("99999999999999")
