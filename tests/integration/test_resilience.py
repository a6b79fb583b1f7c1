"""Failures the system can suffer, with the real worker process: the data must end up
exactly right and the upload row must tell the truth."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from ingestion import services
from ingestion.models import PurchaseOrderLine, Upload
from tests.helpers import wait_for_upload, write_orders

pytestmark = pytest.mark.usefixtures("live_worker")


def test_a_worker_killed_mid_load_is_taken_over_and_loads_everything_exactly_once(user, worker, tmp_path):
    base = wait_for_upload(services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "base.csv", 1000)))
    assert base.status == Upload.Status.COMPLETED
    # The base's 1,000 lines at new prices, and 59,000 more.
    upload = services.create_upload_from_path(
        owner=user, path=write_orders(tmp_path / "big.csv", 60_000, price_factor=2)
    )
    wait_for_upload(upload, statuses={Upload.Status.PROCESSING})
    while upload.processed_rows < 10_000 and upload.status == Upload.Status.PROCESSING:
        time.sleep(0.02)
        upload.refresh_from_db()
    assert upload.status == Upload.Status.PROCESSING, "the load ended before the worker could be killed"

    for child in psutil.Process(worker.pid).children(recursive=True):
        child.send_signal(signal.SIGKILL)  # the pool processes; the worker itself starts new ones
    # The dead run's lines were never committed: the base is as it was.
    assert not PurchaseOrderLine.objects.filter(upload=upload).exists()
    assert PurchaseOrderLine.objects.count() == 1000

    # Celery redelivers the task (acks_late, reject_on_worker_lost); the new run waits for the
    # dead run's lease to go stale, then starts over from a clean slate.
    upload = wait_for_upload(upload, timeout=240)
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert upload.attempts == 2
    assert (upload.processed_rows, upload.imported_rows, upload.rejected_rows) == (60_000, 60_000, 0)
    assert (upload.created_lines, upload.updated_lines) == (59_000, 1_000)
    # The purchase orders beyond the base's 100, whichever run created them, counted once.
    assert (upload.created_suppliers, upload.created_materials, upload.created_purchase_orders) == (0, 0, 5_900)
    assert PurchaseOrderLine.objects.count() == 60_000
    assert PurchaseOrderLine.objects.filter(upload=upload).count() == 60_000
