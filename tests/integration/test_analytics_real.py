"""The real SCMS shipment-pricing file through the real worker, then every analytics page
for its vendors and items: each renders, and spend adds up to the file's own figures."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils.html import escape

from ingestion import services
from ingestion.models import Material, PurchaseOrderLine, Supplier, Upload
from tests.helpers import SCMS, SCMS_MAPPING, real_file, wait_for_upload

pytestmark = pytest.mark.usefixtures("live_worker")


def test_real_scms_files_analytics_render_for_its_vendors_and_items(client, user):
    upload = services.create_upload_from_path(owner=user, path=real_file(SCMS), mapping=SCMS_MAPPING)
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    client.force_login(user)

    with real_file(SCMS).open(newline="", encoding="utf-8") as handle:
        file_spend = sum(
            (Decimal(row["line item quantity"]) * Decimal(row["pack price"]) for row in csv.DictReader(handle)),
            Decimal(0),
        )
    spend = client.get(reverse("analytics-spend-json") + "?by=supplier").json()
    assert spend["currency"] == "USD"
    assert spend["lines"] == 10324
    assert spend["total"] == str(file_spend.quantize(Decimal("0.01")))
    assert len(spend["rows"]) == 10
    assert Decimal(spend["total"]) == sum(Decimal(r["spend"]) for r in spend["rows"]) + Decimal(spend["other"]["spend"])

    overview = client.get(reverse("analytics-overview"))
    assert overview.status_code == 200
    assert escape(spend["rows"][0]["label"]) in overview.content.decode()

    suppliers = list(Supplier.objects.all())
    assert len(suppliers) > 50
    for supplier in suppliers:
        page = client.get(reverse("browse-supplier", args=[supplier.pk]))
        assert page.status_code == 200
        assert escape(supplier.name) in page.content.decode()
        assert (
            page.context["lines"].paginator.count
            == PurchaseOrderLine.objects.filter(purchase_order__supplier=supplier).count()
        )

    materials = list(Material.objects.all())
    assert len(materials) > 100
    for material in materials:
        page = client.get(reverse("analytics-material", args=[material.pk]))
        assert page.status_code == 200, material
        prices = page.context["prices"]
        assert (
            sum(g["lines"] for g in prices["currencies"]) == PurchaseOrderLine.objects.filter(material=material).count()
        )
        comparison = page.context["comparison"]
        assert (
            sum(s["lines"] for s in comparison["suppliers"])
            == PurchaseOrderLine.objects.filter(material=material, currency=comparison["currency"]).count()
        )

    for url in [reverse("analytics-outliers"), reverse("analytics-variance"), reverse("browse-lines")]:
        assert client.get(url).status_code == 200, url
    outliers = client.get(reverse("analytics-outliers-json")).json()
    assert outliers["total"] > 0
    variance = client.get(reverse("analytics-variance-json")).json()
    assert (
        variance["to"]
        == max(
            PurchaseOrderLine.objects.filter(purchase_order__order_date__isnull=False).values_list(
                "purchase_order__order_date", flat=True
            )
        ).isoformat()
    )
