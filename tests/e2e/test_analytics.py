"""What a buyer does on the analytics pages, in a real browser: a material's price chart,
the supplier comparison and its CSV, and the "new data" note when any upload completes."""

from __future__ import annotations

import csv

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from ingestion import services
from ingestion.models import Material, PurchaseOrderLine, Upload
from tests.helpers import (
    RECORD_CSP_VIOLATIONS,
    STRICT_CSP,
    create_lines,
    enforce_csp,
    price_rows,
    wait_for_upload,
    write_orders,
)

pytestmark = pytest.mark.e2e

SERIES = "(sel) => echarts.getInstanceByDom(document.querySelector(sel)).getOption().series.map(s => [s.type, s.data.length])"


def test_a_buyer_reads_a_materials_prices_and_compares_its_suppliers(signed_in, tmp_path, artifacts):
    create_lines(price_rows())
    material = Material.objects.get(code="M1")
    usd = PurchaseOrderLine.objects.filter(material=material, currency="USD")
    dated_suppliers = set(
        usd.filter(purchase_order__order_date__isnull=False).values_list("purchase_order__supplier__code", flat=True)
    )
    all_suppliers = set(usd.values_list("purchase_order__supplier__code", flat=True))

    policies: list[str] = []
    buyer = signed_in(
        "buyer", init_script=RECORD_CSP_VIOLATIONS, prepare=lambda context: enforce_csp(context, policies)
    )
    page = buyer.page
    page.goto(f"{buyer.base_url}/analytics/materials/{material.pk}/")
    prices = page.locator('[data-chart="chart-prices"]')
    expect(prices).to_have_attribute("data-drawn", str(2 * len(dated_suppliers)))
    assert prices.locator("canvas").count() == 1
    series = page.evaluate(SERIES, '[data-chart="chart-prices"]')
    # A scatter of points and a monthly-average line per supplier.
    assert [kind for kind, _ in series] == ["scatter", "line"] * len(dated_suppliers)
    expect(page.locator("#prices-table tbody tr")).to_have_count(1)  # M1 is bought in USD only
    artifacts.take(page, "analytics-material-prices.png")
    box = prices.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    page.get_by_role("tab", name="Supplier comparison").click()
    expect(page.locator("#panel-comparison")).to_be_visible()
    comparison = page.locator('[data-chart="chart-comparison"]')
    expect(comparison).to_have_attribute("data-drawn", "2")
    assert comparison.locator("canvas").count() == 1
    assert page.evaluate(SERIES, '[data-chart="chart-comparison"]') == [
        ["boxplot", len(all_suppliers)],
        ["scatter", len(all_suppliers)],
    ]
    expect(page.locator("#panel-prices")).to_be_hidden()
    expect(page.locator("#comparison-table tbody tr")).to_have_count(len(all_suppliers))
    artifacts.take(page, "analytics-supplier-comparison.png")

    with page.expect_download() as info:
        page.locator("#comparison-csv").click()
    download = info.value
    assert download.suggested_filename == f"material-{material.pk}-suppliers.csv"
    path = tmp_path / "comparison.csv"
    download.save_as(path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["supplier", "lines", "min"]
    assert sorted(row[0] for row in rows[1:]) == sorted(f"Supplier {code}" for code in all_suppliers)
    assert sum(int(row[1]) for row in rows[1:]) == usd.count()
    # Charts, tabs and tooltips under the strict policy: nothing refused.
    assert policies[-1] == STRICT_CSP
    assert page.evaluate("window.__csp") == []


def test_an_open_overview_says_new_data_when_anyones_upload_completes(signed_in, tmp_path):
    buyer = signed_in("reader")
    page = buyer.page
    page.goto(f"{buyer.base_url}/analytics/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#count-lines")).to_have_text("0")
    expect(page.locator("#new-data")).to_be_hidden()

    # Someone else loads a file, the way `manage.py ingest` does.
    other = get_user_model().objects.create_user(username="loader", password="loader-pass-1")
    upload = services.create_upload_from_path(owner=other, path=write_orders(tmp_path / "new.csv", 300, prefix="ND"))
    assert wait_for_upload(upload).status == Upload.Status.COMPLETED
    expect(page.locator("#new-data")).to_be_visible(timeout=10_000)
    page.locator("#new-data a").click()
    expect(page.locator("#count-lines")).to_have_text("300")
    expect(page.locator("#new-data")).to_be_hidden()


def test_an_overview_set_to_refresh_by_itself_shows_the_new_figures_without_a_click(signed_in, tmp_path):
    buyer = signed_in("watcher")
    page = buyer.page
    page.goto(f"{buyer.base_url}/analytics/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#count-lines")).to_have_text("0")
    box = page.locator("#auto-refresh")
    expect(box).to_be_visible()
    expect(box).not_to_be_checked()
    box.check()

    other = get_user_model().objects.create_user(username="loader2", password="loader-pass-2")
    upload = services.create_upload_from_path(owner=other, path=write_orders(tmp_path / "auto.csv", 120, prefix="AR"))
    assert wait_for_upload(upload).status == Upload.Status.COMPLETED
    expect(page.locator("#count-lines")).to_have_text("120", timeout=15_000)
    expect(page.locator("#new-data")).to_be_hidden()
    expect(page.locator("#auto-refresh")).to_be_checked()  # remembered across the reload
