"""Browse pages (suppliers, materials, purchase orders, lines) and the lines export: search
and filters, each page's lines and the uploads that wrote them (own uploads only), CSV and
.xlsx downloads that keep formula-looking text as text."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from ingestion.models import Material, PurchaseOrder, PurchaseOrderLine, Supplier, Upload
from tests.helpers import create_lines, price_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded(user, other_user):
    mine = Upload.objects.create(owner=user, original_name="mine.csv", status=Upload.Status.COMPLETED)
    theirs = Upload.objects.create(owner=other_user, original_name="theirs.csv", status=Upload.Status.COMPLETED)
    rows = price_rows()
    create_lines([r for r in rows if r["supplier"] != "S3"], upload=mine)
    create_lines([r for r in rows if r["supplier"] == "S3"], upload=theirs)
    return rows


def body(response) -> str:
    return response.content.decode()


def test_every_browse_page_needs_sign_in(client, loaded):
    supplier = Supplier.objects.first()
    for url in [
        reverse("browse-suppliers"),
        reverse("browse-supplier", args=[supplier.pk]),
        reverse("browse-materials"),
        reverse("browse-purchase-orders"),
        reverse("browse-lines"),
        reverse("browse-lines-csv"),
        reverse("browse-lines-xlsx"),
    ]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_lists_search_and_count(client, user, loaded):
    client.force_login(user)
    page = body(client.get(reverse("browse-suppliers") + "?q=s2"))
    assert "Supplier S2" in page and "Supplier S1" not in page
    s2 = Supplier.objects.get(code="S2")
    expected_lines = PurchaseOrderLine.objects.filter(purchase_order__supplier=s2).count()
    response = client.get(reverse("browse-suppliers") + "?q=s2")
    row = response.context["page"].object_list[0]
    assert (row.po_count, row.line_count) == (PurchaseOrder.objects.filter(supplier=s2).count(), expected_lines)

    materials = client.get(reverse("browse-materials") + "?category=Fasteners").context["page"].object_list
    assert [m.code for m in materials] == ["M1", "M3"]

    month = PurchaseOrder.objects.filter(supplier=s2, order_date__isnull=False).first().order_date.month
    orders = client.get(
        reverse("browse-purchase-orders") + f"?supplier={s2.pk}&from=2024-{month:02d}-01&to=2024-{month:02d}-28"
    )
    expected = PurchaseOrder.objects.filter(supplier=s2, order_date__month=month, order_date__day__lte=28).count()
    assert orders.context["page"].paginator.count == expected > 0


def test_detail_pages_show_lines_and_only_own_uploads(client, user, loaded):
    client.force_login(user)
    s1, s3 = Supplier.objects.get(code="S1"), Supplier.objects.get(code="S3")
    page = client.get(reverse("browse-supplier", args=[s1.pk]))
    assert (
        page.context["lines"].paginator.count == PurchaseOrderLine.objects.filter(purchase_order__supplier=s1).count()
    )
    assert [u.original_name for u in page.context["uploads"]] == ["mine.csv"]
    # S3's lines came from someone else's upload: the lines show, the upload does not.
    other = client.get(reverse("browse-supplier", args=[s3.pk]))
    assert other.context["lines"].paginator.count > 0
    assert list(other.context["uploads"]) == []
    assert "theirs.csv" not in body(other)

    material = Material.objects.get(code="M2")
    page = client.get(reverse("browse-material", args=[material.pk]))
    assert page.context["lines"].paginator.count == PurchaseOrderLine.objects.filter(material=material).count()
    assert [g["currency"] for g in page.context["prices"]["currencies"]] == ["USD", "EUR"]

    order = PurchaseOrder.objects.get(po_number="PO-0001")
    page = client.get(reverse("browse-purchase-order", args=[order.pk]))
    assert [r["line_number"] for r in page.context["line_rows"]] == [1, 2, 3]
    assert client.get(reverse("browse-purchase-order", args=[999999])).status_code == 404


def test_lines_export_csv_and_xlsx_follow_the_filter_and_stay_formula_safe(client, user, loaded):
    Supplier.objects.filter(code="S1").update(name="=cmd|' /C calc'!A0")
    client.force_login(user)
    s1 = Supplier.objects.get(code="S1")
    query = f"?supplier={s1.pk}&currency=USD"
    expected = PurchaseOrderLine.objects.filter(purchase_order__supplier=s1, currency="USD").count()

    response = client.get(reverse("browse-lines-csv") + query)
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("PO number,Line,Order date,Supplier code,Supplier")
    assert len(lines) - 1 == expected
    assert all(",'=cmd" in line for line in lines[1:])

    response = client.get(reverse("browse-lines-xlsx") + query)
    assert response["Content-Disposition"] == 'attachment; filename="lines.xlsx"'
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    values = list(sheet.iter_rows(values_only=True))
    assert len(values) - 1 == expected
    assert {row[4] for row in values[1:]} == {"=cmd|' /C calc'!A0"}  # text, not a formula
    cell = sheet.cell(row=2, column=5)
    assert cell.data_type == "s"
    total_quantity = sum(Decimal(str(row[9])) for row in values[1:])
    assert total_quantity == sum(
        PurchaseOrderLine.objects.filter(purchase_order__supplier=s1, currency="USD").values_list("quantity", flat=True)
    )
