"""HTTP views against the real database: sign-in, owner-only access, uploads, the JSON
shapes scripts rely on, the issues CSV and CSRF. Processing, where a test needs it, is done
by the real Celery worker (`live_worker`); elsewhere an upload simply stays queued (with the
plain `db` fixture the transaction never commits, so nothing is sent to Celery)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from ingestion.models import RowIssue, Upload
from tests.helpers import HEADER, order_rows, wait_for_upload

pytestmark = pytest.mark.django_db

CSV_TEXT = "\n".join([",".join(HEADER), *(",".join(row) for row in order_rows(30))]) + "\n"


def csv_file(name: str = "orders.csv", content: str = CSV_TEXT) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode(), content_type="text/csv")


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


def card_ids(html: str) -> list[str]:
    return re.findall(r'<article id="upload-[^"]+" class="upload-card[^"]*" data-upload-id="([^"]+)"', html)


# --- sign-in ------------------------------------------------------------------------------


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content and b'name="password"' in response.content


def test_signing_in_leads_to_the_dashboard(client, user):
    response = client.post(reverse("login"), {"username": "alice", "password": "alice-password-1"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    assert b'id="upload-list"' in response.content


@pytest.mark.parametrize(
    ("method", "name", "with_id"),
    [
        ("get", "dashboard", False),
        ("post", "upload-create", False),
        ("get", "upload-cards", False),
        ("get", "upload-detail", True),
        ("get", "upload-status", True),
        ("get", "upload-progress", True),
        ("get", "upload-issues-csv", True),
        ("post", "upload-cancel", True),
        ("post", "upload-retry", True),
    ],
)
def test_every_page_requires_sign_in(client, user, method, name, with_id):
    upload = make_upload(user)
    url = reverse(name, args=[upload.pk] if with_id else [])
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    upload.refresh_from_db()
    assert upload.status == Upload.Status.QUEUED


# --- the dashboard ------------------------------------------------------------------------


def test_dashboard_lists_own_uploads_newest_first(alice, user, other_user, settings):
    settings.UPLOAD_MAX_BYTES = 12_345_678  # the page hands the server's limit to the browser
    older = make_upload(user, original_name="older.csv")
    newer = make_upload(user, original_name="newer.csv")
    foreign = make_upload(other_user, original_name="someone-elses.csv")
    response = alice.get(reverse("dashboard"))
    html = response.content.decode()
    assert response.status_code == 200
    assert card_ids(html) == [str(newer.pk), str(older.pk)]
    assert str(foreign.pk) not in html
    assert 'data-socket-url="/ws/uploads/"' in html
    assert "X-CSRFToken" in html  # hx-headers on <body>
    assert 'data-max-bytes="12345678"' in html
    for script in ("common.js", "cards.js", "live.js", "uploader.js"):
        assert f'<script src="/static/intake/{script}" defer></script>' in html


def test_card_carries_the_contract_attributes(alice, user):
    upload = make_upload(user, status=Upload.Status.PROCESSING, total_rows=200, processed_rows=50, seq=1234567)
    html = alice.get(reverse("dashboard")).content.decode()
    root = re.search(rf'<article id="upload-{upload.pk}"[^>]*>', html).group(0)
    for attribute in (
        f'data-upload-id="{upload.pk}"',
        'data-status="processing"',
        'data-processed="50"',
        'data-total="200"',
        'data-seq="1234567"',
    ):
        assert attribute in root
    # The page's script does every swap: no htmx swap or send attribute is left on a card.
    assert "hx-swap-oob" not in html and "ws-send" not in html and "hx-post" not in html
    cancel_url = reverse("upload-cancel", args=[upload.pk])
    assert f'data-action="cancel" data-url="{cancel_url}">Cancel</button>' in html
    assert '<progress class="bar" data-key="bar" max="100" value="25"' in html


def test_card_renders_without_a_request():
    from ingestion.cards import render_card

    upload = Upload(original_name="x.csv", size=5, status=Upload.Status.FAILED, error_message="Broken header", seq=9)
    html = render_card(upload)
    assert 'data-status="failed"' in html and 'data-total=""' in html
    assert "Broken header" in html and 'data-action="retry"' in html and 'data-action="cancel"' not in html


# --- uploading ----------------------------------------------------------------------------


def test_htmx_upload_returns_the_new_card_and_queues_it(alice, user):
    response = alice.post(
        reverse("upload-create"),
        {"files": csv_file(), "day_first": "on", "strict": "on", "mapping": '{"Vendor": "supplier_name"}'},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 201
    upload = Upload.objects.get(owner=user)
    assert card_ids(response.content.decode()) == [str(upload.pk)]
    assert upload.status == Upload.Status.QUEUED
    assert upload.original_name == "orders.csv"
    assert upload.day_first is True and upload.strict is True
    assert upload.explicit_header_to_field == {"Vendor": "supplier_name"}


def test_upload_many_files_at_once(alice, user):
    response = alice.post(
        reverse("upload-create"),
        {"files": [csv_file("a.csv"), csv_file("b.csv")]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 201
    assert len(card_ids(response.content.decode())) == 2
    assert sorted(Upload.objects.filter(owner=user).values_list("original_name", flat=True)) == ["a.csv", "b.csv"]


def test_json_upload_answers_201_with_ids_status_and_url(alice, user):
    response = alice.post(
        reverse("upload-create"), {"files": [csv_file("a.csv"), csv_file("b.csv")]}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"uploads"}
    assert len(body["uploads"]) == 2
    for item in body["uploads"]:
        assert set(item) == {"id", "status", "url"}
        upload = Upload.objects.get(pk=item["id"], owner=user)
        assert item["status"] == "queued"
        assert item["url"] == reverse("upload-detail", args=[upload.pk])


def test_plain_form_upload_redirects_to_the_dashboard(alice, user):
    response = alice.post(reverse("upload-create"), {"files": csv_file()})
    assert response.status_code == 302 and response.url == reverse("dashboard")
    assert Upload.objects.filter(owner=user).count() == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({}, "Choose at least one file"),
        ({"files": SimpleUploadedFile("report.pdf", b"%PDF-1.4")}, ".pdf"),
        ({"files": SimpleUploadedFile("empty.csv", b"")}, "empty"),
        ({"files": csv_file(), "mapping": "{not json"}, "not valid JSON"),
        ({"files": csv_file(), "mapping": '["a"]'}, "JSON object"),
        ({"files": csv_file(), "mapping": '{"Vendor": "no_such_field"}'}, "no_such_field"),
    ],
)
def test_refused_uploads_get_400_with_the_reason(alice, user, data, reason):
    response = alice.post(reverse("upload-create"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not Upload.objects.exists()


def test_refused_upload_as_json(alice):
    response = alice.post(
        reverse("upload-create"), {"files": SimpleUploadedFile("notes.docx", b"x")}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400
    assert ".docx" in response.json()["error"]


def test_too_large_file_is_refused(alice, settings):
    settings.UPLOAD_MAX_BYTES = 10
    response = alice.post(reverse("upload-create"), {"files": csv_file()}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert "limit" in response.json()["error"]
    assert not Upload.objects.exists()


def test_one_bad_file_refuses_the_whole_batch(alice):
    response = alice.post(
        reverse("upload-create"),
        {"files": [csv_file("good.csv"), SimpleUploadedFile("bad.exe", b"MZ")]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    assert "bad.exe" in response.content.decode()
    assert not Upload.objects.exists()


def test_upload_only_accepts_post(alice):
    assert alice.get(reverse("upload-create")).status_code == 405


# --- machine-readable state ---------------------------------------------------------------


def test_status_json_shape(alice, user):
    upload = make_upload(
        user,
        status=Upload.Status.PROCESSING,
        total_rows=400,
        processed_rows=100,
        imported_rows=96,
        rejected_rows=3,
        warning_count=7,
        created_suppliers=2,
        created_materials=5,
        created_purchase_orders=11,
        seq=4242,
    )
    body = alice.get(reverse("upload-status", args=[upload.pk])).json()
    assert body == {
        "upload_id": str(upload.pk),
        "file": "orders.csv",
        "status": "processing",
        "total_rows": 400,
        "processed_rows": 100,
        "percent": 25,
        "imported_rows": 96,
        "rejected_rows": 3,
        "warnings": 7,
        "created": {"suppliers": 2, "materials": 5, "purchase_orders": 11, "lines": 0},
        "updated_lines": 0,
        "changes": {"created": 0, "updated": 0, "unchanged": 0, "kept": 0},
        "on_existing": "update",
        "reverted": False,
        "error": None,
        "quality": None,  # scored when the load completes
        "profile": None,
        "seq": 4242,
    }


def progress_of(client, upload) -> dict:
    response = client.get(reverse("upload-progress", args=[upload.pk]))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"state", "complete", "success", "progress", "result"}
    assert set(body["progress"]) == {"pending", "current", "total", "percent", "description"}
    return body


def test_progress_has_the_celery_progress_shape(alice, user):
    queued = progress_of(alice, make_upload(user))
    assert queued["state"] == "PENDING" and queued["complete"] is False and queued["success"] is None
    assert queued["progress"]["pending"] is True

    running = progress_of(alice, make_upload(user, status=Upload.Status.PROCESSING, total_rows=200, processed_rows=50))
    assert running["state"] == "PROGRESS" and running["complete"] is False
    assert running["progress"] == {
        "pending": False,
        "current": 50,
        "total": 200,
        "percent": 25.0,
        "description": running["progress"]["description"],
    }

    done = progress_of(
        alice, make_upload(user, status=Upload.Status.COMPLETED, total_rows=10, processed_rows=10, imported_rows=10)
    )
    assert done["state"] == "SUCCESS" and done["complete"] is True and done["success"] is True
    assert done["progress"]["percent"] == 100.0
    assert done["result"]["imported"] == 10 and done["result"]["status"] == "completed"

    failed = progress_of(
        alice, make_upload(user, status=Upload.Status.FAILED, error_message="Missing column PO Number")
    )
    assert failed["state"] == "FAILURE" and failed["complete"] is True and failed["success"] is False
    assert failed["result"] == "Missing column PO Number"

    cancelled = progress_of(alice, make_upload(user, status=Upload.Status.CANCELLED))
    assert cancelled["state"] == "REVOKED" and cancelled["complete"] is True and cancelled["success"] is False


# --- issues -------------------------------------------------------------------------------


def test_issues_csv_neutralizes_formula_cells(alice, user):
    upload = make_upload(user, original_name="dangerous.xlsx", status=Upload.Status.COMPLETED)
    values = ['=HYPERLINK("http://x")', "+1+2", "-3", "@SUM(A1)", "\tTAB", "\rCR", "plain", ""]
    for number, value in enumerate(values, start=2):
        RowIssue.objects.create(
            upload=upload, row_number=number, column="Unit Price", value=value, message="Not a number."
        )
    RowIssue.objects.create(upload=upload, row_number=20, column="=cmd", value="x", message="-bad", severity="warning")

    response = alice.get(reverse("upload-issues-csv", args=[upload.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="dangerous-issues.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    assert rows[0] == [
        "row",
        "column",
        "value",
        "message",
        "severity",
        "po_number",
        "supplier",
        "material",
        "expected",
    ]
    assert [row[2] for row in rows[1:9]] == [
        '\'=HYPERLINK("http://x")',
        "'+1+2",
        "'-3",
        "'@SUM(A1)",
        "'\tTAB",
        "'\rCR",
        "plain",
        "",
    ]
    assert rows[1][0] == "2"
    assert rows[9][:5] == ["20", "'=cmd", "x", "'-bad", "warning"]


def test_detail_page_shows_summary_and_paginated_issues(alice, user):
    upload = make_upload(user, status=Upload.Status.COMPLETED, total_rows=80, processed_rows=80, rejected_rows=60)
    RowIssue.objects.bulk_create(
        RowIssue(
            upload=upload,
            row_number=n,
            column="Qty",
            value=f"v{n}",
            message=f"message {n}",
            severity="error" if n % 2 else "warning",
        )
        for n in range(2, 62)
    )
    response = alice.get(reverse("upload-detail", args=[upload.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-socket-url="/ws/uploads/?upload={upload.pk}"' in html
    assert f'id="upload-{upload.pk}"' in html
    assert reverse("upload-issues-csv", args=[upload.pk]) in html
    assert "message 2<" in html and "message 51<" in html and "message 52<" not in html
    second = alice.get(reverse("upload-detail", args=[upload.pk]), {"page": 2}).content.decode()
    assert "message 52<" in second
    warnings = alice.get(reverse("upload-detail", args=[upload.pk]), {"severity": "warning"}).content.decode()
    assert "message 2<" in warnings and "message 3<" not in warnings


# --- cancel, retry, cards -----------------------------------------------------------------


def test_cancel_a_queued_upload_over_http(alice, user):
    upload = make_upload(user)
    response = alice.post(reverse("upload-cancel", args=[upload.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'data-status="cancelled"' in response.content.decode()
    upload.refresh_from_db()
    assert upload.status == Upload.Status.CANCELLED


def test_cancel_and_retry_as_json(alice, user):
    upload = make_upload(user)
    cancelled = alice.post(reverse("upload-cancel", args=[upload.pk]), HTTP_ACCEPT="application/json").json()
    assert cancelled == {"id": str(upload.pk), "status": "cancelled", "url": reverse("upload-detail", args=[upload.pk])}
    retried = alice.post(reverse("upload-retry", args=[upload.pk]), HTTP_ACCEPT="application/json").json()
    assert retried["status"] == "queued"
    upload.refresh_from_db()
    assert upload.status == Upload.Status.QUEUED


def test_retry_returns_the_card_for_htmx(alice, user):
    upload = make_upload(user, status=Upload.Status.FAILED, error_message="boom")
    response = alice.post(reverse("upload-retry", args=[upload.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert card_ids(html) == [str(upload.pk)] and 'data-status="queued"' in html


def test_retry_of_an_unfinished_upload_is_refused(alice, user):
    upload = make_upload(user)
    response = alice.post(reverse("upload-retry", args=[upload.pk]), HTTP_ACCEPT="application/json")
    assert response.status_code == 409
    assert "failed or cancelled" in response.json()["error"]


def test_cards_endpoint_returns_own_cards_only(alice, user, other_user):
    mine = make_upload(user, status=Upload.Status.COMPLETED)
    active = make_upload(user, status=Upload.Status.PROCESSING)
    foreign = make_upload(other_user)
    url = reverse("upload-cards")
    assert card_ids(alice.get(url, {"ids": f"{mine.pk},{foreign.pk},not-a-uuid"}).content.decode()) == [str(mine.pk)]
    assert card_ids(alice.get(url, {"active": "1"}).content.decode()) == [str(active.pk)]
    both = card_ids(alice.get(url, {"active": "1", "ids": str(mine.pk)}).content.decode())
    assert both == [str(active.pk), str(mine.pk)]


# --- ownership ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "upload-detail"),
        ("get", "upload-status"),
        ("get", "upload-progress"),
        ("get", "upload-issues-csv"),
        ("post", "upload-cancel"),
        ("post", "upload-retry"),
    ],
)
def test_another_users_upload_is_404_everywhere(client, user, other_user, method, name):
    upload = make_upload(user, status=Upload.Status.FAILED, error_message="kept")
    RowIssue.objects.create(upload=upload, row_number=2, column="Qty", value="secret", message="m")
    client.force_login(other_user)
    response = getattr(client, method)(reverse(name, args=[upload.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 404
    assert b"secret" not in response.content
    upload.refresh_from_db()
    assert upload.status == Upload.Status.FAILED and upload.error_message == "kept"


def test_unknown_upload_is_404(alice):
    assert alice.get("/uploads/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert alice.get("/uploads/not-a-uuid/").status_code == 404


# --- CSRF ---------------------------------------------------------------------------------


def test_csrf_is_enforced_on_posts(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    upload = make_upload(user)
    assert client.post(reverse("upload-create"), {"files": csv_file()}, HTTP_HX_REQUEST="true").status_code == 403
    assert client.post(reverse("upload-cancel", args=[upload.pk])).status_code == 403
    assert client.post(reverse("upload-retry", args=[upload.pk])).status_code == 403
    assert not Upload.objects.exclude(pk=upload.pk).exists()
    upload.refresh_from_db()
    assert upload.status == Upload.Status.QUEUED

    # The page hands htmx the token through hx-headers; with it, the same post is taken.
    page = client.get(reverse("dashboard")).content.decode()
    token = json.loads(re.search(r"hx-headers='([^']+)'", page).group(1))["X-CSRFToken"]
    response = client.post(
        reverse("upload-create"), {"files": csv_file()}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201


# --- processed by the real worker ---------------------------------------------------------


def test_uploaded_file_is_processed_and_reported(client, user, live_worker):
    client.force_login(user)
    response = client.post(reverse("upload-create"), {"files": csv_file("real.csv")}, HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    upload = wait_for_upload(Upload.objects.get(pk=response.json()["uploads"][0]["id"]))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message

    status = client.get(reverse("upload-status", args=[upload.pk])).json()
    assert status["status"] == "completed"
    assert status["processed_rows"] == 30 and status["total_rows"] == 30 and status["percent"] == 100
    assert status["created"]["lines"] == 30

    progress = progress_of(client, upload)
    assert progress["state"] == "SUCCESS" and progress["success"] is True
    assert progress["progress"]["current"] == 30 and progress["result"]["created_prices"] == 30

    html = client.get(reverse("dashboard")).content.decode()
    assert 'data-status="completed"' in html and 'data-processed="30"' in html
