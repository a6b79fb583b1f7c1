"""The page against the socket's limits, for real: a page that floods its own socket is closed
with 4429, shows the server's reason and backs off before it comes back; a user with more
unfinished uploads than the snapshot carries sees "and N more"."""

from __future__ import annotations

import html
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from ingestion import services
from tests.helpers import card_locator, write_orders

pytestmark = pytest.mark.e2e

LIVE = "#live-indicator"

# Keeps every websocket the page opens, and how each closed, so the test can make the page's
# own socket misbehave (a buggy or hostile script) and see what the server answered.
KEEP_SOCKETS = """
(() => {
  const Real = window.WebSocket;
  window.__sockets = [];
  window.__closes = [];
  window.WebSocket = function (url, protocols) {
    const socket = new Real(url, protocols);
    window.__sockets.push(socket);
    socket.addEventListener('close', (e) => window.__closes.push([e.code, e.reason]));
    return socket;
  };
  window.WebSocket.prototype = Real.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""

FLOOD = """(count) => {
  const socket = window.__sockets[window.__sockets.length - 1];
  for (let i = 0; i < count; i++) socket.send(JSON.stringify({action: 'sync', upload_ids: []}));
}"""


def test_a_page_that_floods_its_socket_shows_the_reason_and_backs_off(signed_in):
    olga = signed_in("olga", init_script=KEEP_SOCKETS)
    page = olga.page
    assert page.evaluate("window.__sockets.length") == 1
    page.evaluate(FLOOD, settings.REALTIME_MESSAGE_BURST * 3)
    expect(page.locator(LIVE)).to_have_attribute("data-state", "refused", timeout=10_000)
    assert [code for code, _ in page.evaluate("window.__closes")] == [4429]
    # The reason the server gave (in the error it sent before closing) is on screen, and stays.
    errors = [m for frame in olga.sockets[-1] for m in re.findall(r'id="ws-error"[^>]*data-error="([^"]*)"', frame)]
    assert errors, olga.sockets[-1]
    reason = html.unescape(errors[-1])
    assert reason.startswith("Too many messages")
    expect(page.locator("#live-refused")).to_have_text(reason)
    expect(page.locator(LIVE)).to_have_attribute("title", reason)
    expect(page.locator(LIVE)).to_have_text("Paused")
    # It does not hammer: no new socket for a good while (the page waits at least 15 s) ...
    page.wait_for_timeout(6_000)
    assert page.evaluate("window.__sockets.length") == 1
    assert not [r for r in olga.http() if r[0] == "GET"], "the page polled over HTTP instead"
    expect(page.locator("#live-refused")).to_have_text(reason)
    # ... then comes back by itself, live, and the reason goes away.
    expect(page.locator(LIVE)).to_have_attribute("data-state", "live", timeout=45_000)
    assert page.evaluate("window.__sockets.length") == 2
    expect(page.locator("#live-refused")).to_have_count(0)


def test_the_capped_snapshot_says_how_many_more_unfinished_uploads_there_are(signed_in, tmp_path, monkeypatch):
    pia = signed_in("pia", wait_live=False)
    owner = get_user_model().objects.get(username="pia")
    path = write_orders(tmp_path / "waiting.csv", 5, prefix="W")
    extra = 3
    # More unfinished uploads than one person may start: made here, past the per-user cap.
    monkeypatch.setattr(settings, "INGEST_MAX_ACTIVE_UPLOADS_PER_USER", settings.REALTIME_SNAPSHOT_MAX + extra)
    # Queued and never sent to the broker: they stay unfinished while the page looks.
    uploads = [
        services.create_upload_from_path(owner=owner, path=path, enqueue=False)
        for _ in range(settings.REALTIME_SNAPSHOT_MAX + extra)
    ]
    pia.open_dashboard()
    page = pia.page
    more = page.locator("#more-unfinished")
    expect(more).to_be_visible()
    expect(more).to_have_text(f"and {extra} more unfinished uploads")
    expect(more).to_have_attribute("data-more", str(extra))
    # The snapshot's cards joined the page's first 25 in order, newest first.
    expect(page.locator(".upload-card")).to_have_count(settings.REALTIME_SNAPSHOT_MAX)
    shown = page.eval_on_selector_all(".upload-card", "cards => cards.map(c => c.dataset.uploadId)")
    newest_first = [str(u.pk) for u in sorted(uploads, key=lambda u: u.created_at, reverse=True)]
    assert shown == newest_first[: settings.REALTIME_SNAPSHOT_MAX]
    expect(card_locator(page, uploads[0].pk)).to_have_count(0)  # the oldest is among the "more"
