"""Undo of an upload, through a real Celery worker: its changed lines get their replaced
values back exactly, its new lines go, all as versions; a later upload blocks it."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from ingestion import services
from ingestion.models import LineVersion, PurchaseOrderLine, Upload
from ingestion.revert import RevertBlocked
from tests.helpers import order_price, wait_for_upload, write_changed_orders, write_orders

pytestmark = pytest.mark.usefixtures("live_worker")

VALUES = ("purchase_order_id", "line_number", "material_id", "quantity", "unit_price", "total_price", "currency")


def load(user, path, **options) -> Upload:
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=path, **options))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    return upload


def snapshot() -> list[tuple]:
    return list(
        PurchaseOrderLine.objects.order_by("purchase_order_id", "line_number").values_list(*VALUES, "upload_id")
    )


def line_for_row(index: int) -> PurchaseOrderLine:
    return PurchaseOrderLine.objects.get(purchase_order__po_number=f"PO-{index // 10:06d}", line_number=index % 10 + 1)


def test_revert_gives_every_line_its_first_values_back_and_removes_the_lines_it_created(user, tmp_path):
    first = load(user, write_orders(tmp_path / "a.csv", 200))
    before = snapshot()
    changed = {i: f"{order_price(i) + 1}" for i in range(0, 200, 4)}  # 50 lines
    second = load(user, write_changed_orders(tmp_path / "b.csv", 230, prices=changed))
    assert (second.created_lines, second.updated_lines) == (30, 50)
    assert PurchaseOrderLine.objects.count() == 230

    restored, removed = services.revert_upload(upload=second, by=user)
    assert (restored, removed) == (50, 30)
    assert snapshot() == before  # row for row, the upload each line came from included
    for i in changed:
        line = line_for_row(i)
        assert list(
            LineVersion.objects.filter(line_id=line.pk).order_by("id").values_list("kind", "unit_price", "upload_id")
        ) == [
            ("created", order_price(i), first.pk),
            ("updated", order_price(i) + 1, second.pk),
            ("reverted", order_price(i), second.pk),
        ]
    assert LineVersion.objects.filter(upload=second, kind="removed").count() == 30
    assert LineVersion.objects.filter(valid_to__isnull=True, kind="reverted").count() == 50
    # The 150 lines it left alone were never changed: still their first state, no version.
    assert LineVersion.objects.filter(valid_to__isnull=True).count() == 50
    second.refresh_from_db()
    assert second.reverted_at is not None
    with pytest.raises(services.RevertRefused, match="reverted already"):
        services.revert_upload(upload=second, by=user)

    # The first upload, nothing after it left: every line goes.
    assert services.revert_upload(upload=first, by=user) == (0, 200)
    assert PurchaseOrderLine.objects.count() == 0


def test_a_revert_blocked_by_a_later_upload_lists_its_lines_and_changes_nothing(user, other_user, tmp_path):
    load(user, write_orders(tmp_path / "a.csv", 40))
    second = load(user, write_changed_orders(tmp_path / "b.csv", 40, prices={1: "20.00", 2: "21.00", 3: "22.00"}))
    third = load(
        other_user, write_changed_orders(tmp_path / "later.csv", 40, prices={1: "20.00", 2: "30.00", 3: "22.00"})
    )
    assert third.updated_lines == 1
    before = snapshot()
    versions = LineVersion.objects.count()

    with pytest.raises(RevertBlocked) as blocked:
        services.revert_upload(upload=second, by=user)
    assert blocked.value.total == 1
    assert [(b.line_id, b.po_number, b.line_number, b.upload_id, b.file) for b in blocked.value.blockers] == [
        (line_for_row(2).pk, "PO-000000", 3, str(third.pk), "later.csv")
    ]
    assert snapshot() == before
    assert LineVersion.objects.count() == versions
    second.refresh_from_db()
    assert second.reverted_at is None

    # The same over HTTP (409, the lines listed) and the command line (exit 1).
    client = Client()
    client.force_login(user)
    response = client.post(reverse("upload-revert", args=[second.pk]), HTTP_ACCEPT="application/json")
    assert response.status_code == 409
    assert response.json()["lines"] == [
        {
            "line_id": line_for_row(2).pk,
            "po_number": "PO-000000",
            "line_number": 3,
            "changed_by": {"upload_id": str(third.pk), "file": "later.csv"},
        }
    ]
    page = client.post(reverse("upload-revert", args=[second.pk]))
    assert page.status_code == 409
    assert "PO PO-000000, line 3</a>: changed by later.csv" in page.content.decode()
    with pytest.raises(CommandError, match="1 lines this upload wrote were changed since"):
        call_command("revert_upload", str(second.pk))
    assert snapshot() == before

    # Once the later upload is reverted, this one can be.
    services.revert_upload(upload=third, by=other_user)
    out = StringIO()
    call_command("revert_upload", str(second.pk), "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"upload_id": str(second.pk), "restored": 3, "removed": 0}
    assert [line_for_row(i).unit_price for i in range(1, 4)] == [order_price(i) for i in range(1, 4)]


def test_revert_is_owner_only_csrf_checked_and_shown_on_the_card(user, other_user, tmp_path):
    load(user, write_orders(tmp_path / "a.csv", 10))
    second = load(user, write_changed_orders(tmp_path / "b.csv", 10, prices={0: "3.00"}))
    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.post(reverse("upload-revert", args=[second.pk])).status_code == 404
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(user)
    assert guarded.post(reverse("upload-revert", args=[second.pk])).status_code == 403
    assert line_for_row(0).unit_price == Decimal("3.00")

    client = Client()
    client.force_login(user)
    detail = client.get(reverse("upload-detail", args=[second.pk])).content.decode()
    assert 'id="revert"' in detail
    response = client.post(reverse("upload-revert", args=[second.pk]))
    assert response.status_code == 302
    assert line_for_row(0).unit_price == order_price(0)
    detail = client.get(reverse("upload-detail", args=[second.pk])).content.decode()
    assert 'id="revert"' not in detail
    assert "badge-reverted" in detail
    assert client.get(reverse("upload-status", args=[second.pk])).json()["reverted"] is True
