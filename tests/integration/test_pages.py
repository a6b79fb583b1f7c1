"""What the pages say and what they are made of: the card's buttons follow the model's
can_cancel / can_retry (as the services do), a failed or cancelled upload's detail page says
why instead of "every row was clean", and no page carries inline script, style or handlers
(the Content-Security-Policy allows none)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from ingestion import services
from ingestion.cards import render_card, render_cards
from ingestion.models import RowIssue, Upload
from tests.helpers import wait_for_upload

pytestmark = pytest.mark.django_db


def make_upload(owner, **fields) -> Upload:
    fields.setdefault("original_name", "orders.csv")
    fields.setdefault("size", 100)
    fields.setdefault("file", "uploads/orders.csv")
    fields.setdefault("seq", 1)
    return Upload.objects.create(owner=owner, **fields)


@pytest.fixture
def alice(client, user):
    client.force_login(user)
    return client


def issues_section(html: str) -> str:
    return html[html.index('<section class="panel issues"') :]


# --- can_cancel / can_retry ---------------------------------------------------------------

ACTIONS = {
    Upload.Status.QUEUED: (True, False),
    Upload.Status.PROCESSING: (True, False),
    Upload.Status.CANCELLING: (False, False),
    Upload.Status.COMPLETED: (False, False),
    Upload.Status.FAILED: (False, True),
    Upload.Status.CANCELLED: (False, True),
}


@pytest.mark.parametrize(("status", "actions"), ACTIONS.items())
def test_card_buttons_and_the_retry_service_follow_the_model(user, status, actions):
    upload = make_upload(user, status=status, error_message="x" if status == Upload.Status.FAILED else "")
    assert (upload.can_cancel, upload.can_retry) == actions
    html = render_card(upload)
    assert ('data-action="cancel"' in html, 'data-action="retry"' in html) == actions
    # "Cancelling…" is shown, focusable but inert, only while a cancel is under way.
    assert ('aria-disabled="true">Cancelling…</button>' in html) == (status == Upload.Status.CANCELLING)
    if upload.can_retry:
        assert services.retry_upload(upload=upload, by=user).status == Upload.Status.QUEUED
    else:
        with pytest.raises(services.RetryRefused, match=f"this one is {status}"):
            services.retry_upload(upload=upload, by=user)
        upload.refresh_from_db()
        assert upload.status == status


def test_render_cards_keeps_the_order_given(user):
    first, second = make_upload(user, original_name="a.csv"), make_upload(user, original_name="b.csv")
    html = render_cards([second, first])
    assert re.findall(r'data-upload-id="([^"]+)"', html) == [str(second.pk), str(first.pk)]
    assert "&lt;article" not in html  # joined cards stay markup, not escaped text


# --- the detail page's issues section -----------------------------------------------------

NO_ROWS_CSV = "Vendor,SKU,PO,Qty,Price\n"


def test_a_failed_uploads_detail_page_says_why(client, user, live_worker):
    client.force_login(user)
    response = client.post(
        reverse("upload-create"),
        {"files": SimpleUploadedFile("no-rows.csv", NO_ROWS_CSV.encode(), content_type="text/csv")},
        HTTP_ACCEPT="application/json",
    )
    upload = wait_for_upload(Upload.objects.get(pk=response.json()["uploads"][0]["id"]))
    assert upload.status == Upload.Status.FAILED
    assert upload.error_message and not upload.issues.exists()
    html = client.get(reverse("upload-detail", args=[upload.pk])).content.decode()
    section = issues_section(html)
    assert "Every row was clean" not in html
    assert '<div class="issues-empty is-failed" role="alert">' in section
    assert f"This upload failed:</strong> {escape(upload.error_message)}</p>" in section
    assert "none of its lines were loaded" in section


def test_a_cancelled_uploads_detail_page_says_so(alice, user):
    upload = make_upload(user)
    alice.post(reverse("upload-cancel", args=[upload.pk]), HTTP_ACCEPT="application/json")
    upload.refresh_from_db()
    assert upload.status == Upload.Status.CANCELLED
    html = alice.get(reverse("upload-detail", args=[upload.pk])).content.decode()
    section = issues_section(html)
    assert "Every row was clean" not in html
    assert f"This upload was cancelled:</strong> {upload.error_message}</p>" in section
    assert upload.error_message == "Cancelled before it started."


def test_a_clean_completed_uploads_detail_page_says_every_row_was_clean(alice, user):
    upload = make_upload(user, status=Upload.Status.COMPLETED, total_rows=5, processed_rows=5, imported_rows=5)
    section = issues_section(alice.get(reverse("upload-detail", args=[upload.pk])).content.decode())
    assert '<p class="muted">No row issues. Every row was clean.</p>' in section
    # Filtered to one kind while the other kind exists: not "every row was clean".
    RowIssue.objects.create(upload=upload, row_number=3, column="Qty", value="x", message="bad", severity="error")
    warnings = issues_section(
        alice.get(reverse("upload-detail", args=[upload.pk]), {"severity": "warning"}).content.decode()
    )
    assert '<p class="muted">No warnings.</p>' in warnings and "Every row was clean" not in warnings


# --- no inline script, style or handler ---------------------------------------------------


class InlineFinder(HTMLParser):
    """Collects what a strict CSP (script-src 'self'; style-src 'self') would block."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.scripts_with_src: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            if attributes.get("src"):
                self.scripts_with_src.append(attributes["src"])
            else:
                self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in attrs:
            if name == "style":
                self.found.append(f"style attribute on <{tag}>")
            if name.startswith("on"):
                self.found.append(f"{name} handler on <{tag}>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL on <{tag}>")


def inline_parts(html: str) -> InlineFinder:
    finder = InlineFinder()
    finder.feed(html)
    return finder


def test_no_page_carries_inline_script_style_or_handlers(alice, user):
    login = inline_parts(Client().get(reverse("login")).content.decode())
    uploads = [
        make_upload(user, status=status, total_rows=10, processed_rows=5, error_message="Broken", seq=i + 2)
        for i, status in enumerate(ACTIONS)
    ]
    failed = uploads[list(ACTIONS).index(Upload.Status.FAILED)]
    failed.column_mapping = {"Vendor": "supplier_name"}
    failed.resolved_mapping = {"supplier_name": "Vendor"}
    failed.save()
    RowIssue.objects.create(upload=failed, row_number=4, column="Qty", value="<b>", message="bad", severity="error")
    pages = {
        "login": login,
        "dashboard": inline_parts(alice.get(reverse("dashboard")).content.decode()),
        "cards": inline_parts(alice.get(reverse("upload-cards"), {"active": "1"}).content.decode()),
        **{
            f"detail {upload.status}": inline_parts(
                alice.get(reverse("upload-detail", args=[upload.pk])).content.decode()
            )
            for upload in uploads
        },
    }
    assert {name: finder.found for name, finder in pages.items() if finder.found} == {}
    # The page's scripts are files; htmx gets its settings from a meta tag, never a script.
    assert [src for src in pages["dashboard"].scripts_with_src if src.startswith("/static/intake/")] == [
        "/static/intake/common.js",
        "/static/intake/cards.js",
        "/static/intake/live.js",
        "/static/intake/uploader.js",
        "/static/intake/mapping.js",
    ]
    dashboard = alice.get(reverse("dashboard")).content.decode()
    assert (
        '<meta name="htmx-config" content=\'{"includeIndicatorStyles": false, "allowEval": false, '
        '"allowScriptTags": false}\'>' in dashboard
    )
