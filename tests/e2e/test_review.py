"""A buyer reviews a file that would change prices, in a real browser: the card stops for
review, the rule "at most 5%" decides, Load completes the same card, and Revert undoes it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from ingestion import services
from ingestion.models import PurchaseOrderLine, Upload
from tests.helpers import card_locator as card
from tests.helpers import drop_files, order_price, wait_for_upload, write_changed_orders, write_orders

pytestmark = pytest.mark.e2e

# Rows 0-3 move by +4%, +2.2%, -1.5% and +4.7% (within 5%); rows 4-9 by +20% or more.
SMALL = {0: "1.30", 1: "2.30", 2: "3.20", 3: "4.45"}
LARGE = {i: f"{order_price(i) * Decimal('1.2'):.2f}" for i in range(4, 10)}


def prices() -> dict[tuple[str, int], Decimal]:
    return {
        (po, line): price
        for po, line, price in PurchaseOrderLine.objects.values_list(
            "purchase_order__po_number", "line_number", "unit_price"
        )
    }


def test_a_buyer_reviews_changed_prices_takes_those_within_5_percent_loads_and_reverts(signed_in, tmp_path, artifacts):
    frank = signed_in("frank")
    page = frank.page
    user = get_user_model().objects.get(username="frank")
    first = wait_for_upload(services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "march.csv", 60)))
    assert first.status == Upload.Status.COMPLETED
    before = prices()

    changed = write_changed_orders(tmp_path / "april.csv", 60, prices=SMALL | LARGE)
    drop_files(page, {"april.csv": changed.read_text()})
    april = card(page, name="april.csv")
    expect(april).to_have_attribute("data-status", "awaiting_review", timeout=60_000)
    expect(april.locator(".card-review")).to_contain_text("Changed10")
    expect(april.locator(".card-review")).to_contain_text("Unchanged50")
    expect(april.locator(".card-review")).to_contain_text("New lines0")
    assert prices() == before  # nothing written while it waits
    artifacts.take(page, "review-card.png")

    april.locator(".review-link").click()
    page.wait_for_url("**/review/")
    expect(page.locator(".change-row")).to_have_count(10)
    expect(page.locator("#count-pending")).to_have_text("10")
    page.fill("#within-percent", "5")
    page.click("#rule-within")
    page.wait_for_load_state()
    expect(page.locator("#count-taken")).to_have_text("4")
    expect(page.locator("#count-kept")).to_have_text("6")
    expect(page.locator("#count-pending")).to_have_text("0")
    # The live card on the review page says the same.
    expect(page.locator('.upload-card [data-review="pending"]')).to_have_text("0")
    artifacts.take(page, "review-page.png", full_page=True)

    page.click("#load")
    page.wait_for_url("**/uploads/*/")
    upload = Upload.objects.get(original_name="april.csv")
    live = card(page, upload.pk)
    expect(live).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(live.locator(".counts").first).to_contain_text("Lines updated4")
    expect(live.locator(".card-review-done")).to_contain_text("Unchanged 50 · kept existing 6")
    after = prices()
    for i in range(10):
        key = ("PO-000000", i + 1)
        assert after[key] == (Decimal(SMALL[i]) if i in SMALL else before[key])
    upload.refresh_from_db()
    assert (upload.updated_lines, upload.kept_lines, upload.unchanged_lines) == (4, 6, 50)

    # The detail page was rendered while the upload was queued: it offers Revert once reloaded.
    expect(page.locator("#issues-stale")).to_be_visible()
    page.reload()
    page.click("#revert")
    page.wait_for_url("**/uploads/*/")
    expect(page.locator(".card-reverted")).to_contain_text("Reverted")
    expect(page.locator("#revert")).to_have_count(0)
    assert prices() == before
    artifacts.take(page, "reverted.png")


def test_decisions_taken_elsewhere_update_the_open_review_pages_summary(signed_in, tmp_path):
    grace = signed_in("grace")
    page = grace.page
    user = get_user_model().objects.get(username="grace")
    wait_for_upload(services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "may.csv", 30)))
    upload = wait_for_upload(
        services.create_upload_from_path(
            owner=user, path=write_changed_orders(tmp_path / "june.csv", 30, prices=SMALL), on_existing="review"
        )
    )
    assert upload.status == Upload.Status.AWAITING_REVIEW
    page.goto(f"{grace.base_url}/uploads/{upload.pk}/review/")
    expect(page.locator("#count-pending")).to_have_text("4")
    expect(page.locator("#load")).to_be_disabled()
    # Another page (the same service behind it) takes them all: this one follows, no reload.
    services.apply_review(upload=upload, by=user, decision="all")
    expect(page.locator("#count-taken")).to_have_text("4", timeout=15_000)
    expect(page.locator("#count-pending")).to_have_text("0")
    expect(page.locator("#load")).to_be_enabled()
