"""The admin shows the data without letting anyone write around the services, and stays
cheap on big purchase orders."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from ingestion.models import Material, PurchaseOrder, PurchaseOrderLine, RowIssue, Supplier, Upload

pytestmark = pytest.mark.django_db

LINES = 5000


@pytest.fixture
def big_po():
    supplier = Supplier.objects.create(key="s1", code="S1", name="Supplier 1")
    material = Material.objects.create(key="m1", code="M1", description="Bolt")
    po = PurchaseOrder.objects.create(po_number="PO-BIG", supplier=supplier)
    PurchaseOrderLine.objects.bulk_create(
        PurchaseOrderLine(
            purchase_order=po, line_number=n, material=material, quantity=Decimal(1), unit_price=Decimal("2.50")
        )
        for n in range(1, LINES + 1)
    )
    return po


def test_a_po_with_5000_lines_opens_with_a_bounded_number_of_queries(
    admin_client, big_po, django_assert_max_num_queries
):
    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("admin:ingestion_purchaseorder_change", args=[big_po.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "5,000 lines" in body
    assert body.count("2.500000") == 0  # no line inlined

    lines_url = reverse("admin:ingestion_purchaseorderline_changelist") + f"?purchase_order__id__exact={big_po.pk}"
    assert f'href="{lines_url}"'.replace("&", "&amp;") in body
    with django_assert_max_num_queries(10):
        response = admin_client.get(lines_url)
    assert response.status_code == 200
    assert response.content.decode().count('class="field-line_number"') == 100  # one page


def test_uploads_pos_lines_and_issues_are_read_only(admin_client, admin_user, big_po):
    upload = Upload.objects.create(
        owner=admin_user, original_name="a.csv", file="uploads/a.csv", size=1, status=Upload.Status.PROCESSING
    )
    RowIssue.objects.create(upload=upload, row_number=2, message="bad")
    line = big_po.lines.first()
    for name, obj in (("upload", upload), ("purchaseorder", big_po), ("purchaseorderline", line)):
        url = reverse(f"admin:ingestion_{name}_change", args=[obj.pk])
        page = admin_client.get(url).content.decode()
        assert 'name="_save"' not in page  # view only: no form to save
        assert admin_client.post(url, {"status": "completed", "po_number": "X"}).status_code == 403
        assert admin_client.get(reverse(f"admin:ingestion_{name}_add")).status_code == 403
        assert admin_client.get(reverse(f"admin:ingestion_{name}_delete", args=[obj.pk])).status_code == 403
    upload.refresh_from_db()
    assert upload.status == Upload.Status.PROCESSING
    assert admin_client.get(reverse("admin:ingestion_rowissue_add")).status_code == 403
