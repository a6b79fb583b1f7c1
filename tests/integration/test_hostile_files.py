"""Hostile files sent through the real worker: each used to take gigabytes, abort the worker's
process or leave its upload processing forever. Now the upload fails at once with a message
that says why, nothing is loaded, and the same worker loads a good file next."""

from __future__ import annotations

import pytest

from ingestion import services
from ingestion.models import PurchaseOrderLine, RowIssue, Supplier, Upload
from scripts import hostile_files as hostile
from tests.helpers import wait_for_upload, write_orders

pytestmark = pytest.mark.usefixtures("live_worker")

HOSTILE = {
    # 2. 300,000 identical rows: 58 MB of XML in a quarter of a megabyte.
    "bomb.xlsx": (
        lambda path: hostile.xlsx_bomb(path, rows=300_000),
        "more than the 100 times allowed (INGEST_MAX_COMPRESSION_RATIO): this is how zip bombs look",
    ),
    # 3. Cells far away: calamine would fill a grid of 17 billion cells and abort.
    "far.xlsx": (
        hostile.far_cell_xlsx,
        "Sheet 'Orders' has values as far as column XFD and row 1,048,576 (cell XFD1048576)",
    ),
    # 3. A shared-strings count of 10^18: calamine panics (a BaseException).
    "strings.xlsx": (
        hostile.shared_strings_xlsx,
        "its shared-strings table says it holds 1000000000000000000 strings",
    ),
    # 3. 872 bytes of repeated .ods cells standing for 82 million.
    "repeated.ods": (
        hostile.repeated_ods,
        "Sheet 'Orders' has values as far as column XFD and row 5,001 (cell XFD5001)",
    ),
    # 4. A header of 20,000 columns.
    "wide.csv": (hostile.wide_csv, "The header row has 20,000 columns, more than the 500 allowed (INGEST_MAX_COLUMNS)"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_file_fails_with_its_reason_and_the_worker_loads_the_next_file(user, tmp_path, name):
    build, message = HOSTILE[name]
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=build(tmp_path / name)), timeout=60)
    assert upload.status == Upload.Status.FAILED
    assert message in upload.error_message
    assert (upload.processed_rows, upload.imported_rows) == (0, 0)
    assert not PurchaseOrderLine.objects.exists()

    good = wait_for_upload(services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "good.csv", 50)))
    assert good.status == Upload.Status.COMPLETED, good.error_message
    assert (good.imported_rows, good.created_lines) == (50, 50)


def test_a_nul_byte_far_into_a_csv_is_removed_with_a_warning_and_every_row_loads(user, tmp_path):
    path = hostile.nul_csv(tmp_path / "nul.csv", rows=20_000, nul_row=15_000)
    assert path.read_bytes().index(b"\x00") > 65536
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=path))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert (upload.processed_rows, upload.imported_rows, upload.rejected_rows) == (20_000, 20_000, 0)
    assert upload.warning_count == 1
    issue = RowIssue.objects.get(upload=upload)
    assert (issue.row_number, issue.column, issue.value, issue.severity, issue.message) == (
        15_000,
        "Supplier",
        "Supplier",
        "warning",
        "A NUL byte (binary data) was removed from this value",
    )
    assert PurchaseOrderLine.objects.filter(upload=upload).count() == upload.created_lines == 20_000
    line = PurchaseOrderLine.objects.get(purchase_order__po_number="PO-1499", line_number=9)
    assert line.quantity == 5
    assert Supplier.objects.filter(name="Supplier").count() == 1  # the cleaned value, stored
