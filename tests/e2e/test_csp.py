"""The pages keep their Content-Security-Policy in a real browser: nothing they load or do is
blocked (no inline script, no inline style, no eval), on the login page, the dashboard with
live cards, and the detail page."""

from __future__ import annotations

import pytest

from ingestion import services
from ingestion.models import Upload
from tests.helpers import wait_for_upload, write_orders

pytestmark = pytest.mark.e2e

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations")


def test_no_page_breaks_the_content_security_policy(signed_in, tmp_path):
    alice = signed_in("alice", init_script=RECORD_VIOLATIONS)
    page = alice.page
    response = page.goto(alice.base_url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.locator('#live-indicator[data-state="live"]').wait_for(timeout=10_000)

    user = Upload._meta.get_field("owner").related_model.objects.get(username="alice")
    upload = services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "csp.csv", 3000))
    page.locator(f'.upload-card[data-upload-id="{upload.pk}"][data-status="completed"]').wait_for(timeout=60_000)
    wait_for_upload(upload)
    assert violations(page) == []

    page.goto(alice.base_url + f"/uploads/{upload.pk}/")
    page.locator('#live-indicator[data-state="live"]').wait_for(timeout=10_000)
    assert violations(page) == []

    page.goto(alice.base_url + "/accounts/login/")
    assert violations(page) == []
