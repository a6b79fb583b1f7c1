"""Housekeeping, run by the real worker as beat would: stored files and row issues of uploads
finished more than INGEST_KEEP_FILES_DAYS ago are deleted; the data they loaded stays."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from ingestion import services
from ingestion.models import PurchaseOrderLine, RowIssue, Upload
from ingestion.tasks import delete_expired_files
from tests.helpers import HEADER, order_rows, wait_for_upload

pytestmark = pytest.mark.usefixtures("live_worker")


def orders_with_a_bad_row(path: Path, rows: int) -> Path:
    lines = [",".join(HEADER), *(",".join(row) for row in order_rows(rows))]
    bad = list(next(order_rows(1, prefix="BAD")))
    bad[HEADER.index("Qty")] = "0"  # a quantity that is not above zero: the row is rejected
    lines.append(",".join(bad))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_old_files_and_row_issues_are_deleted_and_the_loaded_data_stays(user, tmp_path, settings):
    old = wait_for_upload(
        services.create_upload_from_path(owner=user, path=orders_with_a_bad_row(tmp_path / "old.csv", 40))
    )
    young = wait_for_upload(
        services.create_upload_from_path(owner=user, path=orders_with_a_bad_row(tmp_path / "young.csv", 40))
    )
    assert (old.status, old.imported_rows, old.rejected_rows) == (Upload.Status.COMPLETED, 40, 1)
    assert RowIssue.objects.filter(upload=old).count() == 1
    old_file, young_file = Path(old.file.path), Path(young.file.path)
    assert old_file.exists() and young_file.exists()
    Upload.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=31))
    Upload.objects.filter(pk=young.pk).update(finished_at=timezone.now() - timedelta(days=29))
    lines = PurchaseOrderLine.objects.count()
    assert lines == 40

    assert delete_expired_files.delay().get(timeout=60) == {"files": 1, "row_issues": 1}

    old.refresh_from_db()
    young.refresh_from_db()
    assert not old_file.exists() and old.file.name == ""
    assert young_file.exists() and Path(young.file.path) == young_file
    assert RowIssue.objects.filter(upload=old).count() == 0
    assert RowIssue.objects.filter(upload=young).count() == 1
    assert PurchaseOrderLine.objects.count() == lines
    assert (old.status, old.imported_rows, old.rejected_rows) == (Upload.Status.COMPLETED, 40, 1)

    # Its file is gone, so it cannot be retried: the reason says so.
    Upload.objects.filter(pk=old.pk).update(status=Upload.Status.FAILED)
    old.refresh_from_db()
    with pytest.raises(services.RetryRefused) as refused:
        services.retry_upload(upload=old, by=user)
    assert str(refused.value) == "The stored copy of old.csv was deleted after 30 days; upload the file again."
