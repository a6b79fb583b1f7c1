"""What a buyer does on the dashboard, in a real browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ingestion.models import PurchaseOrderLine, Upload
from tests.files import HEADER, order_rows, write_orders

pytestmark = pytest.mark.e2e


def csv_text(rows: int, **options) -> str:
    lines = [",".join(HEADER)] + [",".join(row) for row in order_rows(rows, **options)]
    return "\n".join(lines) + "\n"


def drop_files(page, files: dict[str, str]) -> None:
    """A real drop: a DataTransfer holding File objects, dispatched on the drop zone."""
    page.evaluate(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, text] of Object.entries(files)) {
                transfer.items.add(new File([text], name, {type: name.endsWith('.csv') ? 'text/csv' : 'application/octet-stream'}));
            }
            const zone = document.getElementById('drop-zone');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        files,
    )


def card(page, upload_id=None, *, name=None):
    if upload_id:
        return page.locator(f'.upload-card[data-upload-id="{upload_id}"]')
    return page.locator(".upload-card", has=page.locator(".file-name", has_text=name))


def upload_named(name: str) -> Upload:
    return Upload.objects.get(original_name=name)


def test_two_dropped_files_complete_live_without_any_polling(signed_in, artifacts):
    alice = signed_in("alice")
    page = alice.page
    drop_files(page, {"north.csv": csv_text(1500, prefix="N"), "south.csv": csv_text(2500, prefix="S")})
    north, south = card(page, name="north.csv"), card(page, name="south.csv")
    expect(north).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(south).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(north).to_have_attribute("data-processed", "1500")
    expect(south).to_have_attribute("data-total", "2500")
    expect(south.locator(".counts")).to_contain_text("2,500")  # lines created
    assert Upload.objects.get(original_name="south.csv").created_lines == 2500
    # After the page load: the two upload POSTs and nothing else. Progress came over the socket.
    http_after_load = [(method, url) for method, url in alice.requests if "/static/" not in url]
    assert sorted(http_after_load) == [("POST", alice.base_url + "/uploads/")] * 2, http_after_load


def test_cancel_a_large_upload_from_the_dashboard(signed_in, tmp_path, artifacts):
    alice = signed_in("carol")
    page = alice.page
    drop_files(page, {"small-order-book.csv": csv_text(800)})
    expect(card(page, name="small-order-book.csv")).to_have_attribute("data-status", "completed", timeout=60_000)
    big = write_orders(tmp_path / "annual-po-lines.csv", 300_000, prefix="BIG")
    page.set_input_files("#file-input", str(big))
    big_card = card(page, name="annual-po-lines.csv")
    expect(big_card).to_have_attribute("data-status", "processing", timeout=60_000)
    expect(big_card).to_have_attribute("data-processed", re.compile(r"^[1-9]\d{4,}$"), timeout=60_000)  # 10,000 rows in
    # The README's docs/dashboard.png is this screenshot.
    page.screenshot(path=str(artifacts / "dashboard-mid-upload.png"))
    big_card.locator("button.cancel").click()
    # The requirement: the cancelled card within 2 seconds of the click.
    expect(big_card).to_have_attribute("data-status", "cancelled", timeout=2_000)
    page.screenshot(path=str(artifacts / "dashboard-after-cancel.png"))
    upload = upload_named("annual-po-lines.csv")
    assert upload.status == Upload.Status.CANCELLED
    assert upload.processed_rows < 300_000
    assert not PurchaseOrderLine.objects.filter(upload=upload).exists()
    assert not PurchaseOrderLine.objects.filter(purchase_order__po_number__startswith="BIG").exists()


def test_page_reconnects_after_a_server_restart_and_shows_the_truth(signed_in, server, tmp_path):
    dave = signed_in("dave")
    page = dave.page
    path = write_orders(tmp_path / "restart.csv", 60_000)
    page.set_input_files("#file-input", str(path))
    the_card = card(page, name="restart.csv")
    expect(the_card).to_have_attribute("data-status", "processing", timeout=60_000)
    server.restart()  # a deploy: the socket closes under the page
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live", timeout=30_000)
    expect(the_card).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(the_card).to_have_attribute("data-processed", "60000")
    assert page.locator(".upload-card").count() == 1
    assert not [r for r in dave.requests if r[0] == "GET" and "/uploads/" in r[1]], "the page fell back to polling"


def test_another_users_browser_never_sees_my_uploads(signed_in):
    erin = signed_in("erin")
    frank = signed_in("frank")
    drop_files(erin.page, {"erin-private.csv": csv_text(3000)})
    expect(card(erin.page, name="erin-private.csv")).to_have_attribute("data-status", "completed", timeout=60_000)
    upload = upload_named("erin-private.csv")
    frank.page.wait_for_timeout(1500)  # give a leak every chance to arrive
    assert frank.page.locator(".upload-card").count() == 0
    assert not any(str(upload.pk) in frame for frame in frank.frames)
    frank.page.reload()
    expect(frank.page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    assert frank.page.locator(".upload-card").count() == 0
    response = frank.page.request.get(f"{frank.base_url}/uploads/{upload.pk}/status.json")
    assert response.status == 404


def test_refused_files_are_explained_and_never_sent(signed_in, settings):
    grace = signed_in("grace")
    page = grace.page
    drop_files(page, {"contract.pdf": "%PDF-1.4", "empty.csv": ""})
    problems = page.locator("#file-problems")
    expect(problems).to_contain_text("contract.pdf")
    expect(problems).to_contain_text(".pdf")
    expect(problems).to_contain_text("empty.csv")
    page.wait_for_timeout(300)
    assert not [r for r in grace.requests if r[0] == "POST"]
    assert not Upload.objects.exists()


BROKEN_WEBSOCKET = """
(() => {
  const Real = window.WebSocket;
  // A proxy that refuses websockets: every socket fails to open.
  window.WebSocket = function (url, protocols) { return new Real('ws://127.0.0.1:9/', protocols); };
  window.WebSocket.prototype = Real.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""


def test_without_websockets_the_page_falls_back_to_http(signed_in, tmp_path):
    heidi = signed_in("heidi", init_script=BROKEN_WEBSOCKET, wait_live=False)
    page = heidi.page
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "polling", timeout=30_000)
    drop_files(page, {"fallback.csv": csv_text(500)})
    expect(card(page, name="fallback.csv")).to_have_attribute("data-status", "completed", timeout=60_000)
    page.set_input_files("#file-input", str(write_orders(tmp_path / "fallback-big.csv", 200_000)))
    big = card(page, name="fallback-big.csv")
    expect(big).to_have_attribute("data-status", "processing", timeout=60_000)
    big.locator("button.cancel").click()
    expect(big).to_have_attribute("data-status", "cancelled", timeout=15_000)
    assert any(method == "POST" and url.endswith("/cancel/") for method, url in heidi.requests)
    assert not PurchaseOrderLine.objects.filter(upload=upload_named("fallback-big.csv")).exists()


def test_uploads_started_elsewhere_appear_and_ten_move_at_once(signed_in, tmp_path):
    ivan = signed_in("ivan")
    page = ivan.page
    owner = Upload._meta.get_field("owner").related_model.objects.get(username="ivan")
    # Started the way `manage.py ingest` and scripts do: straight through the service.
    from ingestion import services

    uploads = [
        services.create_upload_from_path(owner=owner, path=write_orders(tmp_path / f"batch-{i}.csv", 4000, prefix=f"T{i}"))
        for i in range(10)
    ]
    for upload in uploads:
        expect(card(page, str(upload.pk))).to_have_attribute("data-status", "completed", timeout=120_000)
        expect(card(page, str(upload.pk))).to_have_attribute("data-processed", "4000")
    assert page.locator(".upload-card").count() == 10
    assert not [r for r in ivan.requests if "/static/" not in r[1]], ivan.requests
