"""No partial data when an upload ends without a run to end it: the sweeper cancelling one
whose worker died, a run failing it after its runs kept dying, a cancel of one queued again.
Each removes the suppliers, materials and purchase orders its dead runs created that nothing
else uses, as a run's own end does. Real PostgreSQL; the services are called here, on
uploads crafted as a killed worker leaves them (test_faults kills real workers)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from ingestion import runner, services, sweeper
from ingestion.models import Material, PurchaseOrder, Supplier, Upload
from tests.helpers import write_orders

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _short_lease(settings):
    settings.INGEST_STALE_SECONDS = 30
    settings.INGEST_MAX_ATTEMPTS = 3


def left_by_a_dead_run(user, tmp_path, **fields) -> Upload:
    """An upload whose dead run created two suppliers, a material and two purchase orders (no
    line of theirs was committed), beside a completed upload whose order uses one supplier."""
    upload = services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "dead.csv", 10), enqueue=False)
    other = services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "done.csv", 10), enqueue=False)
    Upload.objects.filter(pk=other.pk).update(status=Upload.Status.COMPLETED)
    mine = [Supplier.objects.create(key=f"dead-{i}", name=f"Dead {i}", created_by_upload=upload) for i in (1, 2)]
    Material.objects.create(key="dead-m", code="M-DEAD", created_by_upload=upload)
    for i, supplier in enumerate(mine):
        PurchaseOrder.objects.create(po_number=f"DEAD-{i}", supplier=supplier, created_by_upload=upload)
    PurchaseOrder.objects.create(po_number="KEPT", supplier=mine[1], created_by_upload=other)
    Upload.objects.filter(pk=upload.pk).update(
        created_suppliers=2, created_materials=1, created_purchase_orders=2, **fields
    )
    upload.refresh_from_db()
    return upload


def assert_only_the_used_supplier_is_left(upload: Upload) -> None:
    upload.refresh_from_db()
    assert list(Supplier.objects.values_list("key", flat=True)) == ["dead-2"]  # the KEPT order uses it
    assert not Material.objects.exists()
    assert list(PurchaseOrder.objects.values_list("po_number", flat=True)) == ["KEPT"]
    assert (upload.created_suppliers, upload.created_materials, upload.created_purchase_orders) == (1, 0, 0)


def stale() -> timezone.datetime:
    return timezone.now() - timedelta(seconds=settings.INGEST_STALE_SECONDS + 5)


def test_the_sweeper_ending_a_cancel_whose_worker_died_removes_what_it_created(user, tmp_path):
    upload = left_by_a_dead_run(user, tmp_path, status=Upload.Status.CANCELLING, heartbeat_at=stale(), attempts=1)
    assert sweeper.sweep()["cancelled"] == 1
    assert_only_the_used_supplier_is_left(upload)
    assert (upload.status, upload.error_message) == (Upload.Status.CANCELLED, sweeper.RUN_GONE_NOTE)


def test_a_cancel_of_an_upload_whose_run_is_gone_removes_what_it_created(user, tmp_path):
    upload = left_by_a_dead_run(user, tmp_path, status=Upload.Status.PROCESSING, heartbeat_at=stale(), attempts=1)
    upload = services.cancel_upload(upload=upload, by=user)
    assert upload.status == Upload.Status.CANCELLED
    assert_only_the_used_supplier_is_left(upload)


def test_failing_an_upload_whose_runs_kept_dying_removes_what_they_created(user, tmp_path):
    upload = left_by_a_dead_run(
        user, tmp_path, status=Upload.Status.PROCESSING, heartbeat_at=stale(), attempts=2, crashed_runs=2
    )
    assert runner._claim(upload_id=upload.pk, task_id="redelivered") is None
    assert_only_the_used_supplier_is_left(upload)
    assert (upload.status, upload.crashed_runs) == (Upload.Status.FAILED, 3)


def test_failing_an_upload_the_sweeper_queued_again_after_its_last_crash_removes_what_it_created(user, tmp_path):
    upload = left_by_a_dead_run(user, tmp_path, status=Upload.Status.QUEUED, attempts=3, crashed_runs=3)
    assert runner._claim(upload_id=upload.pk, task_id="sent-again") is None
    assert_only_the_used_supplier_is_left(upload)
    assert upload.status == Upload.Status.FAILED


def test_cancelling_an_upload_queued_again_after_its_run_died_removes_what_it_created(user, tmp_path):
    upload = left_by_a_dead_run(user, tmp_path, status=Upload.Status.QUEUED, attempts=1, crashed_runs=1)
    upload = services.cancel_upload(upload=upload, by=user)
    assert (upload.status, upload.error_message) == (Upload.Status.CANCELLED, "Cancelled before it started.")
    assert_only_the_used_supplier_is_left(upload)
