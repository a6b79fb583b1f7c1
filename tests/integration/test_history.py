"""Line history through a real Celery worker: every state of a line is kept, written with
the lines: a line written once is its own version, a change records the state it replaces
and the new one; an unchanged line writes nothing; the line's page and JSON show them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from ingestion import selectors, services
from ingestion.models import LineVersion, PurchaseOrder, PurchaseOrderLine, Upload
from tests.helpers import wait_for_upload, write_changed_orders, write_orders

pytestmark = pytest.mark.usefixtures("live_worker")

CHANGED = {3: "99.50", 17: "0.75", 42: "12.00"}  # row index -> new unit price


def load(user, path) -> Upload:
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=path))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    return upload


def line_for_row(index: int) -> PurchaseOrderLine:
    """The line `write_orders` puts at row `index` (ten lines per PO, numbered in order)."""
    return PurchaseOrderLine.objects.get(purchase_order__po_number=f"PO-{index // 10:06d}", line_number=index % 10 + 1)


def test_a_reload_keeps_every_price_it_replaces_and_unchanged_lines_write_nothing(user, tmp_path):
    first = load(user, write_orders(tmp_path / "a.csv", 300))
    assert LineVersion.objects.count() == 0  # a created line is its own version
    line = line_for_row(7)
    _, history = selectors.line_with_history(line_id=line.pk)
    assert [(h["kind"], h["upload"], h["user"], h["unit_price"], h["valid_from"], h["valid_to"]) for h in history] == [
        ("created", first, "alice", line.unit_price, line.created_at, None)
    ]
    before = {i: line_for_row(i) for i in CHANGED}

    same = load(user, write_orders(tmp_path / "same.csv", 300))
    assert (same.created_lines, same.updated_lines) == (0, 0)
    assert LineVersion.objects.count() == 0  # unchanged lines write nothing

    second = load(user, write_changed_orders(tmp_path / "b.csv", 300, prices=CHANGED))
    assert (second.created_lines, second.updated_lines) == (0, 3)
    assert LineVersion.objects.count() == 6  # each changed line: the state it had, and its new one
    for i, price in CHANGED.items():
        line = line_for_row(i)
        old, new = LineVersion.objects.filter(line_id=line.pk).order_by("valid_from", "id")
        assert (old.kind, old.upload_id, old.unit_price, old.total_price) == (
            "created",
            first.pk,
            before[i].unit_price,
            before[i].total_price,
        )
        assert (new.kind, new.upload_id, new.user_id, new.unit_price, new.total_price, new.valid_to) == (
            "updated",
            second.pk,
            user.pk,
            Decimal(price),
            line.quantity * Decimal(price),
            None,
        )
        assert old.valid_to == new.valid_from  # the old state ends where the new one begins
        assert (old.user_id, old.valid_from, old.order_date) == (user.pk, before[i].created_at, new.order_date)
        assert (new.quantity, new.currency, new.material_id) == (line.quantity, line.currency, line.material_id)
        assert new.order_date == line.purchase_order.order_date
        assert line.unit_price == Decimal(price)
    assert LineVersion.objects.filter(valid_to__isnull=True).count() == 3
    # A third change to a line closes its open version and opens one: no second "created".
    third = load(user, write_changed_orders(tmp_path / "c.csv", 300, prices={**CHANGED, 3: "101.00"}))
    assert third.updated_lines == 1
    assert list(
        LineVersion.objects.filter(line_id=line_for_row(3).pk).order_by("id").values_list("kind", "upload_id")
    ) == [("created", first.pk), ("updated", second.pk), ("updated", third.pk)]
    assert LineVersion.objects.filter(valid_to__isnull=True).count() == 3
    # The second upload's page lists the three lines it changed; the first's, all 300 it wrote.
    assert [(s["line"], s["kind_value"], s["until"] is None) for s in selectors.lines_written_by(upload=second)] == [
        (line_for_row(i).pk, "updated", i != 3) for i in sorted(CHANGED, key=lambda i: line_for_row(i).pk)
    ]
    written = list(selectors.lines_written_by(upload=first))
    assert len(written) == 300 and [s["line"] for s in written] == sorted(s["line"] for s in written)
    assert {s["kind_value"] for s in written} == {"created"}
    assert sum(1 for s in written if s["until"] is not None) == 3  # changed since


def test_a_line_repeated_in_one_file_keeps_both_states_and_its_last_values(user, tmp_path):
    path = tmp_path / "repeat.csv"
    write_orders(path, 5)
    with path.open("a", encoding="utf-8") as handle:  # PO-000000 line 6 is a new line (no line-number column)
        handle.write("S0000,Supplier 0,M00000,Material 0,EA,PO-000000,2024-03-15,2,7.25,14.50,USD\n")
    upload = load(user, path)
    assert (upload.created_lines, upload.updated_lines) == (6, 0)
    assert len(selectors.lines_written_by(upload=upload)) == 6


def test_the_line_page_and_its_json_show_who_when_and_which_file(user, other_user, client, tmp_path):
    first = load(user, write_orders(tmp_path / "orders-march.csv", 50))
    second = load(user, write_changed_orders(tmp_path / "orders-april.csv", 50, prices={3: "99.50"}))
    line = line_for_row(3)
    versions = list(LineVersion.objects.filter(line_id=line.pk).order_by("valid_from", "id"))

    client.force_login(other_user)  # one organization's data: any signed-in user reads it
    data = client.get(reverse("line-history-json", args=[line.pk])).json()
    assert data == {
        "line_id": line.pk,
        "exists": True,
        "po_number": "PO-000000",
        "line_number": 4,
        "versions": [
            {
                "kind": version.kind,
                "valid_from": version.valid_from.isoformat(),
                "valid_to": version.valid_to.isoformat() if version.valid_to else None,
                "quantity": str(version.quantity),
                "unit_price": str(version.unit_price),
                "total_price": str(version.total_price),
                "currency": "USD",
                "order_date": "2024-03-15",
                "material": "M00003",
                "material_id": line.material_id,
                "upload_id": str(upload.pk),
                "file": upload.original_name,
                "user": "alice",
            }
            for version, upload in zip(versions, [first, second], strict=True)
        ],
        "order_changes": [],  # the same order date both times: its order never changed
    }
    assert [v["unit_price"] for v in data["versions"]] == ["4.250000", "99.500000"]

    client.force_login(user)
    page = client.get(reverse("line-detail", args=[line.pk])).content.decode()
    assert page.count('class="version-row"') == 2
    for text in ("PO PO-000000, line 4", "99.5 USD", "4.25 USD", "orders-march.csv", "orders-april.csv", "alice"):
        assert text in page
    # The owner reaches their uploads from the versions; another user sees the file's name only.
    assert reverse("upload-detail", args=[second.pk]) in page
    client.force_login(other_user)
    assert (
        reverse("upload-detail", args=[second.pk])
        not in client.get(reverse("line-detail", args=[line.pk])).content.decode()
    )

    # The upload's detail page links the lines it wrote.
    client.force_login(user)
    detail = client.get(reverse("upload-detail", args=[second.pk])).content.decode()
    assert reverse("line-detail", args=[line.pk]) in detail


def test_line_history_needs_a_signed_in_user_and_an_existing_line(user, client, tmp_path):
    load(user, write_orders(tmp_path / "a.csv", 10))
    line = line_for_row(0)
    for name in ("line-detail", "line-history-json"):
        response = client.get(reverse(name, args=[line.pk]))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(user)
    missing = PurchaseOrderLine.objects.order_by("-pk").first().pk + 1000
    assert client.get(reverse("line-detail", args=[missing])).status_code == 404
    assert client.get(reverse("line-history-json", args=[missing])).status_code == 404


@pytest.mark.django_db
def test_lines_loaded_before_history_get_their_current_state_as_first_version(user, tmp_path):
    """The migration's backfill, run again on lines written without a version."""
    import importlib

    from django.apps import apps

    load(user, write_orders(tmp_path / "a.csv", 20))
    LineVersion.objects.all().delete()
    migration = importlib.import_module("ingestion.migrations.0005_line_versions")
    with connection.schema_editor() as editor:
        migration.first_versions(apps, editor)
    assert LineVersion.objects.count() == 20
    line = line_for_row(5)
    version = LineVersion.objects.get(line_id=line.pk)
    assert (version.unit_price, version.quantity, version.upload_id, version.user_id, version.order_date) == (
        line.unit_price,
        line.quantity,
        line.upload_id,
        user.pk,
        PurchaseOrder.objects.get(pk=line.purchase_order_id).order_date,
    )
