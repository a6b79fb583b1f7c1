"""The page itself, in a real browser: keyboard use while cards update, the detail page on a
phone, the Content-Security-Policy, and how often the page asks the socket for quiet cards."""

from __future__ import annotations

import csv
import json
import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from ingestion import services
from ingestion.models import PurchaseOrderLine, Upload
from tests.helpers import (
    HEADER,
    RECORD_CSP_VIOLATIONS,
    STRICT_CSP,
    card_locator,
    drop_files,
    enforce_csp,
    order_rows,
    wait_for_upload,
    write_orders,
)

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}

# Remembers, after every update of one card, whether the Cancel button it had when the watch
# began still has the focus, and where the page was scrolled. A MutationObserver's callback
# runs once the update is complete, so it sees what the user would.
WATCH_FOCUS = """(id) => {
    const card = document.getElementById('upload-' + id);
    const cancel = card.querySelector('button.cancel');
    window.__updates = [];
    new MutationObserver(() => window.__updates.push({
        processed: card.getAttribute('data-processed'),
        status: card.getAttribute('data-status'),
        cancelFocused: document.activeElement === cancel,
        scrollY: window.scrollY,
    })).observe(card, {attributes: true, attributeFilter: ['data-processed', 'data-status']});
    return cancel.isConnected && document.activeElement === cancel;
}"""


def tab_to(page, selector: str, *, most: int = 40) -> None:
    """Press Tab, as a keyboard user does, until the element matching selector has the focus."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{most} presses of Tab never reached {selector}")


def test_keyboard_cancel_keeps_focus_while_the_card_updates(signed_in, tmp_path):
    kim = signed_in("kim")
    page = kim.page
    page.set_input_files("#file-input", str(write_orders(tmp_path / "keyboard.csv", 300_000, prefix="KB")))
    the_card = card_locator(page, name="keyboard.csv")
    expect(the_card).to_have_attribute("data-status", "processing", timeout=60_000)
    upload = Upload.objects.get(original_name="keyboard.csv")

    page.locator("body").focus()
    tab_to(page, f'#upload-{upload.pk} button.cancel[data-action="cancel"]')
    assert page.evaluate(WATCH_FOCUS, str(upload.pk)) is True
    # Several live updates land while the button has the focus.
    kim.wait_until(
        lambda: len({u["processed"] for u in page.evaluate("window.__updates")}) >= 5,
        timeout=30,
        message="fewer than 5 progress updates arrived",
    )
    before_enter = page.evaluate("window.__updates")
    assert all(u["status"] == "processing" for u in before_enter), before_enter
    assert all(u["cancelFocused"] for u in before_enter), before_enter
    assert {u["scrollY"] for u in before_enter} == {page.evaluate("window.scrollY")}, before_enter

    page.keyboard.press("Enter")
    expect(the_card).to_have_attribute("data-status", "cancelled", timeout=15_000)
    upload.refresh_from_db()
    assert upload.status == Upload.Status.CANCELLED
    assert upload.processed_rows < 300_000
    assert not PurchaseOrderLine.objects.filter(upload=upload).exists()
    # Enter pressed Cancel (sent over the socket), never the Details link.
    assert page.url == kim.base_url + "/"
    cancels = [json.loads(frame) for frame in kim.sent if '"cancel"' in frame]
    assert cancels == [{"action": "cancel", "upload_id": str(upload.pk)}], kim.sent
    # Until the button itself went away (the upload ended), the focus stayed on it; then it
    # went to the card, not to a control a second Enter would press.
    updates = page.evaluate("window.__updates")
    assert all(u["cancelFocused"] for u in updates if u["status"] in ("processing", "cancelling")), updates
    assert page.evaluate("document.activeElement.id") == f"upload-{upload.pk}"
    assert len({u["scrollY"] for u in updates}) == 1, updates


LONG_NAME = "Quarterly-purchase-order-lines-export-from-the-ERP-for-every-plant-and-every-supplier-2024-Q3-final-v2.csv"


def write_messy_orders(path, rows: int):
    """Every 10th row rejected (an unreadable quantity), every 10th warned (an unreadable date)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i, row in enumerate(order_rows(rows, prefix="PH")):
            if i % 10 == 0:
                row[HEADER.index("Qty")] = "lots of them, see the attached note from the warehouse"
            elif i % 10 == 5:
                row[HEADER.index("PO Date")] = "N/A - From RDC"
            writer.writerow(row)
    return path


def box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def fact(name: str) -> str:
    return {"File": ".facts dd.file-fact", "Uploaded": ".facts dd.uploaded-fact"}[name]


def test_detail_page_fits_a_phone_and_a_long_file_name(signed_in, tmp_path, artifacts):
    lou = signed_in("lou")
    page = lou.page
    owner = get_user_model().objects.get(username="lou")
    upload = services.create_upload_from_path(owner=owner, path=write_messy_orders(tmp_path / LONG_NAME, 200))
    upload = wait_for_upload(upload)
    assert (upload.status, upload.rejected_rows, upload.warning_count) == (Upload.Status.COMPLETED, 20, 20)

    page.goto(f"{lou.base_url}/uploads/{upload.pk}/")
    expect(page.locator(fact("File"))).to_contain_text(LONG_NAME)
    # Wide screen: the name stays inside its own box and clear of the date.
    width = page.viewport_size["width"]
    assert not overlap(box(page, fact("File")), box(page, fact("Uploaded")))
    assert box(page, fact("File"))["x"] + box(page, fact("File"))["width"] <= width

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator(".issue-table tbody tr")).to_have_count(40)
    artifacts.take(page, "detail-phone.png", full_page=True)
    # Nothing wider than the phone: no sideways scrolling of the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    file_box, uploaded_box = box(page, fact("File")), box(page, fact("Uploaded"))
    assert not overlap(file_box, uploaded_box), (file_box, uploaded_box)
    assert file_box["x"] >= 0 and file_box["x"] + file_box["width"] <= PHONE["width"]
    # Every row's Severity is on the screen, inside the viewport's width, and readable.
    severities = page.locator(".issue-table tbody td.severity")
    assert severities.count() == 40
    shown = set()
    for i in range(severities.count()):
        cell = severities.nth(i)
        cell.scroll_into_view_if_needed()
        expect(cell).to_be_visible()
        b = cell.bounding_box()
        assert b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"], (i, b)
        shown.add(cell.inner_text().strip())
    assert shown == {"Error", "Warning"}
    # The long message and value cells wrap inside the screen as well.
    for selector in (".issue-table tbody td.message", ".issue-table tbody td.value"):
        b = box(page, f"{selector} >> nth=0")
        assert b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"], (selector, b)
    page.locator("#issues-heading").evaluate("el => el.scrollIntoView()")
    artifacts.take(page, "detail-phone-issues.png")
    page.evaluate("window.scrollTo(0, 0)")
    artifacts.take(page, "detail-phone-top.png")


# The policy the app's pages must pass: scripts and styles only from its own files.
def test_every_page_passes_a_strict_content_security_policy(signed_in, tmp_path):
    policies: list[str] = []
    mia = signed_in("mia", init_script=RECORD_CSP_VIOLATIONS, prepare=lambda context: enforce_csp(context, policies))
    page = mia.page
    assert policies and all("script-src 'self'" in p and "style-src 'self'" in p for p in policies), policies
    # The dashboard is live (its scripts ran) and htmx added no <style> of its own.
    assert page.evaluate("typeof htmx") == "object"
    assert page.evaluate("document.querySelectorAll('style, [style]').length") == 0
    # An upload with its byte progress, live progress and the final card.
    drop_files(page, {"csp.csv": write_messy_orders(tmp_path / "csp.csv", 3000).read_text()})
    the_card = card_locator(page, name="csp.csv")
    expect(the_card).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(the_card.locator("progress.bar")).to_have_attribute("value", "100")
    # The detail page with its issues.
    the_card.locator("a.details").click()
    expect(page.locator(".issue-table")).to_be_visible()
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    assert page.evaluate("window.__csp") == []
    # Signing out, and the sign-in page (loaded afresh: Chromium does not route the request
    # that follows a redirect the test itself fulfilled, so that one carries no policy).
    page.locator(".logout button").click()
    expect(page.locator('input[name="username"]')).to_be_visible()
    page.goto(mia.base_url + "/accounts/login/")
    expect(page.locator('input[name="username"]')).to_be_visible()
    assert page.evaluate("window.__csp") == []
    assert policies[-1] == STRICT_CSP or "script-src 'self'" in policies[-1], policies
    # The watch works: an inline style is reported as a violation.
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')")
    mia.wait_until(lambda: page.evaluate("window.__csp.length") > 0, timeout=5)
    assert page.evaluate("window.__csp")[0].startswith("style-src-attr"), page.evaluate("window.__csp")


def test_queued_cards_are_not_asked_for_every_second(signed_in, tmp_path):
    """A queued upload has nothing to report until a worker takes it: the page asks the
    socket for it rarely (after 30 s of quiet), while a quiet running one is asked for
    within seconds. Both are real rows no task will touch: queued ones never sent to the
    broker, and one marked processing with no worker running it."""
    ned = signed_in("ned", wait_live=False)
    owner = get_user_model().objects.get(username="ned")
    queued = [
        services.create_upload_from_path(
            owner=owner, path=write_orders(tmp_path / f"waiting-{i}.csv", 10, prefix=f"Q{i}"), enqueue=False
        )
        for i in range(3)
    ]
    running = services.create_upload_from_path(
        owner=owner, path=write_orders(tmp_path / "stalled.csv", 10, prefix="ST"), enqueue=False
    )
    Upload.objects.filter(pk=running.pk).update(status=Upload.Status.PROCESSING, total_rows=10)
    ned.open_dashboard()
    page = ned.page
    expect(card_locator(page, running.pk)).to_have_attribute("data-status", "processing")
    for upload in queued:
        expect(card_locator(page, upload.pk)).to_have_attribute("data-status", "queued")

    def asked() -> list[list[str]]:
        return [m["upload_ids"] for m in map(json.loads, ned.sent) if m.get("action") == "sync"]

    # Three questions about the running one take about 5 s: well inside the queued ones' 30 s.
    ned.wait_until(lambda: sum(str(running.pk) in ids for ids in asked()) >= 3, timeout=20)
    syncs = asked()
    assert all(ids == [str(running.pk)] for ids in syncs), syncs
    assert not any(str(upload.pk) in frame for upload in queued for frame in ned.sent), ned.sent
    # Each answer is the card, so the page stays live and the card stays as it is.
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    assert re.search(rf'data-upload-id="{running.pk}"\s+data-status="processing"', "".join(ned.frames))


def test_the_detail_page_follows_its_upload_and_says_when_its_issues_are_stale(signed_in, tmp_path):
    quinn = signed_in("quinn")
    page = quinn.page
    owner = get_user_model().objects.get(username="quinn")
    upload = services.create_upload_from_path(
        owner=owner, path=write_orders(tmp_path / "followed.csv", 60_000), enqueue=False
    )
    page.goto(f"{quinn.base_url}/uploads/{upload.pk}/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    the_card = card_locator(page, upload.pk)
    expect(the_card).to_have_attribute("data-status", "queued")
    expect(page.locator("#issues-stale")).to_be_hidden()
    services.enqueue_upload(upload=upload)  # queued only now that the page watches
    expect(the_card).to_have_attribute("data-status", "completed", timeout=120_000)
    expect(the_card).to_have_attribute("data-processed", "60000")
    expect(page.locator("#issues-stale")).to_be_visible()
    # The detail page's own socket (?upload=...) carried it: no HTTP polling.
    assert not [r for r in quinn.http() if r[0] == "GET" and "/uploads/cards/" in r[1]], quinn.http()
    assert any(f'data-upload-id="{upload.pk}"' in frame for frame in quinn.sockets[-1])
