"""Review before writing, through a real Celery worker: an upload under `review` that would
change existing lines stops with nothing written; decisions (all, keep, rules, per line) are
set-based; Load continues the same upload; a stale review asks again."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from ingestion import services
from ingestion.models import LineVersion, ProposedChange, PurchaseOrderLine, RowIssue, Upload
from tests.helpers import order_price, wait_for_upload, write_changed_orders, write_orders

pytestmark = pytest.mark.usefixtures("live_worker")

ROWS = 300


def load(user, path, **options) -> Upload:
    return wait_for_upload(services.create_upload_from_path(owner=user, path=path, **options))


def line_for_row(index: int) -> PurchaseOrderLine:
    return PurchaseOrderLine.objects.get(purchase_order__po_number=f"PO-{index // 10:06d}", line_number=index % 10 + 1)


def prices() -> dict[int, Decimal]:
    return dict(PurchaseOrderLine.objects.values_list("id", "unit_price"))


def load_after_review(upload: Upload, user) -> Upload:
    services.load_reviewed(upload=upload, by=user)
    return wait_for_upload(upload)


def test_a_reload_under_review_stops_with_exactly_its_changes_and_take_all_loads_them(user, tmp_path):
    first = load(user, write_orders(tmp_path / "a.csv", ROWS))
    assert first.status == Upload.Status.COMPLETED
    changed = {i: f"{order_price(i) + 100}" for i in range(0, ROWS, 6)}  # 50 rows
    assert len(changed) == 50
    before = prices()

    upload = load(user, write_changed_orders(tmp_path / "b.csv", ROWS, prices=changed), on_existing="review")
    assert upload.status == Upload.Status.AWAITING_REVIEW
    assert upload.review_summary == {
        "new": 0,
        "changed": 50,
        "unchanged": 250,
        "rejected": 0,
        "conflicts": 0,
        "pending": 50,
    }
    assert prices() == before  # nothing written
    assert (upload.created_lines, upload.updated_lines) == (0, 0)
    proposals = ProposedChange.objects.filter(upload=upload)
    assert {p.line_id for p in proposals} == {line_for_row(i).pk for i in changed}
    for proposal in proposals:
        assert proposal.new_unit_price == proposal.old_unit_price + 100
        assert proposal.price_change_percent == round(100 * 100 / proposal.old_unit_price, 2)
    assert LineVersion.objects.count() == 0  # nothing written: the lines are still their first states

    counts = services.apply_review(upload=upload, by=user, decision="all")
    assert counts == {"changed": 50, "taken": 50, "kept": 0, "pending": 0}
    done = load_after_review(upload, user)
    assert done.status == Upload.Status.COMPLETED, done.error_message
    assert (done.created_lines, done.updated_lines, done.unchanged_lines, done.kept_lines) == (0, 50, 250, 0)
    after = prices()
    for i, price in changed.items():
        line = line_for_row(i)
        assert after[line.pk] == Decimal(price)
        assert list(
            LineVersion.objects.filter(line_id=line.pk)
            .order_by("valid_from", "id")
            .values_list("unit_price", flat=True)
        ) == [before[line.pk], Decimal(price)]
    assert {k: v for k, v in after.items() if v != before[k]}.keys() == {line_for_row(i).pk for i in changed}


def test_a_reload_under_review_that_changes_nothing_simply_loads(user, tmp_path):
    load(user, write_orders(tmp_path / "a.csv", 100))
    upload = load(user, write_orders(tmp_path / "b.csv", 120), on_existing="review")
    assert upload.status == Upload.Status.COMPLETED
    assert (upload.created_lines, upload.updated_lines, upload.unchanged_lines) == (20, 0, 100)


def test_keep_all_and_the_keep_policy_leave_every_existing_price(user, tmp_path):
    load(user, write_orders(tmp_path / "a.csv", 100))
    before = prices()
    changed = dict.fromkeys(range(5), "77.00")
    kept = load(user, write_changed_orders(tmp_path / "k.csv", 110, prices=changed), on_existing="keep")
    assert kept.status == Upload.Status.COMPLETED
    assert (kept.created_lines, kept.updated_lines, kept.kept_lines, kept.unchanged_lines) == (10, 0, 5, 95)
    assert {k: v for k, v in prices().items() if k in before} == before

    upload = load(user, write_changed_orders(tmp_path / "r.csv", 110, prices=changed), on_existing="review")
    assert upload.status == Upload.Status.AWAITING_REVIEW
    services.apply_review(upload=upload, by=user, decision="keep")
    done = load_after_review(upload, user)
    assert (done.status, done.updated_lines, done.kept_lines) == (Upload.Status.COMPLETED, 0, 5)
    assert {k: v for k, v in prices().items() if k in before} == before


@pytest.mark.parametrize("later_first", [True, False])
def test_the_newer_rule_takes_only_lines_whose_order_date_is_later(user, tmp_path, later_first):
    load(user, write_orders(tmp_path / "a.csv", 40))  # every PO dated 2024-03-15
    # PO-000000 (rows 0-9) and PO-000001 (rows 10-19): one dated later, the other earlier.
    later, earlier = (range(10), range(10, 20)) if later_first else (range(10, 20), range(10))
    dates = dict.fromkeys(later, "2024-04-01") | dict.fromkeys(earlier, "2024-02-01")
    changed = dict.fromkeys(range(20), "50.00")
    upload = load(user, write_changed_orders(tmp_path / "b.csv", 40, prices=changed, dates=dates), on_existing="review")
    assert upload.status == Upload.Status.AWAITING_REVIEW
    assert upload.review_summary["changed"] == 20
    counts = services.apply_review(upload=upload, by=user, decision="newer")
    assert counts == {"changed": 20, "taken": 10, "kept": 10, "pending": 0}
    done = load_after_review(upload, user)
    assert (done.updated_lines, done.kept_lines) == (10, 10)
    for i in later:
        assert line_for_row(i).unit_price == Decimal("50.00")
    for i in earlier:
        assert line_for_row(i).unit_price == order_price(i)


def test_the_within_rule_takes_moves_of_at_most_x_percent_and_line_choices_override_it(user, tmp_path):
    load(user, write_orders(tmp_path / "a.csv", 30))
    # Row 0's price is 1.25, row 1's 2.25, row 2's 3.25, row 3's 4.25.
    changed = {0: "1.30", 1: "2.40", 2: "3.10", 3: "4.70"}  # +4%, +6.67%, -4.62%, +10.59%
    upload = load(user, write_changed_orders(tmp_path / "b.csv", 30, prices=changed), on_existing="review")
    assert upload.status == Upload.Status.AWAITING_REVIEW
    percents = dict(ProposedChange.objects.filter(upload=upload).values_list("line_id", "price_change_percent"))
    assert percents == {
        line_for_row(0).pk: Decimal("4.00"),
        line_for_row(1).pk: Decimal("6.67"),
        line_for_row(2).pk: Decimal("-4.62"),
        line_for_row(3).pk: Decimal("10.59"),
    }
    counts = services.apply_review(
        upload=upload, by=user, decision="within", percent=Decimal("5"), take=[line_for_row(3).pk]
    )
    assert counts == {"changed": 4, "taken": 3, "kept": 1, "pending": 0}
    done = load_after_review(upload, user)
    assert (done.updated_lines, done.kept_lines) == (3, 1)
    assert [line_for_row(i).unit_price for i in range(4)] == [
        Decimal("1.30"),
        Decimal("2.25"),
        Decimal("3.10"),
        Decimal("4.70"),
    ]


def test_a_stale_review_asks_again_for_the_lines_another_upload_changed(user, tmp_path):
    load(user, write_orders(tmp_path / "a.csv", 50))
    changed = dict.fromkeys(range(5), "60.00")
    upload = load(user, write_changed_orders(tmp_path / "b.csv", 50, prices=changed), on_existing="review")
    assert upload.status == Upload.Status.AWAITING_REVIEW
    services.apply_review(upload=upload, by=user, decision="all")
    # Meanwhile another upload changes two of the same lines.
    other = load(user, write_changed_orders(tmp_path / "c.csv", 50, prices={0: "70.00", 1: "71.00"}))
    assert (other.status, other.updated_lines) == (Upload.Status.COMPLETED, 2)

    again = load_after_review(upload, user)
    assert again.status == Upload.Status.AWAITING_REVIEW
    assert again.review_summary["pending"] == 2
    pending = ProposedChange.objects.filter(upload=upload, decision="")
    assert {(p.line_id, p.old_unit_price) for p in pending} == {
        (line_for_row(0).pk, Decimal("70.00")),
        (line_for_row(1).pk, Decimal("71.00")),
    }
    assert line_for_row(0).unit_price == Decimal("70.00")  # nothing overwritten
    assert line_for_row(2).unit_price == order_price(2)

    services.apply_review(upload=upload, by=user, keep=[line_for_row(0).pk], take=[line_for_row(1).pk])
    done = load_after_review(upload, user)
    assert (done.status, done.updated_lines, done.kept_lines) == (Upload.Status.COMPLETED, 4, 1)
    assert [line_for_row(i).unit_price for i in range(5)] == [Decimal("70.00")] + [Decimal("60.00")] * 4


def test_a_line_twice_in_one_file_with_other_values_is_a_conflict_that_names_the_row_taken(user, tmp_path):
    path = tmp_path / "conflict.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Supplier Code", "Material Number", "PO Number", "Line", "Qty", "Unit Price"])
        writer.writerow(["S1", "M1", "PO-9", "1", "2", "10.00"])
        writer.writerow(["S1", "M1", "PO-9", "2", "2", "11.00"])
        writer.writerow(["S1", "M1", "PO-9", "1", "2", "12.00"])
    upload = load(user, path, on_existing="update")
    assert (upload.status, upload.created_lines) == (Upload.Status.COMPLETED, 2)
    issue = RowIssue.objects.get(upload=upload)
    assert (issue.row_number, issue.severity) == (2, "warning")
    assert issue.message == (
        "PO PO-9 line 1 appears again in row 4 with other values; row 4 was taken (unit price 10.00 here)."
    )
    assert PurchaseOrderLine.objects.get(purchase_order__po_number="PO-9", line_number=1).unit_price == Decimal("12")

    # Under review, with a change to an existing line, the conflict is counted and listed.
    path2 = tmp_path / "conflict2.csv"
    path2.write_text(path.read_text().replace("11.00", "11.50"))
    review = load(user, path2, on_existing="review")
    assert review.status == Upload.Status.AWAITING_REVIEW
    assert (review.review_summary["changed"], review.review_summary["conflicts"]) == (1, 1)


def test_a_line_twice_in_one_file_in_different_batches_is_a_conflict_too(user, tmp_path, service_env):
    path = tmp_path / "far.csv"
    batch = int(service_env["INGEST_BATCH_ROWS"])  # the worker's
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Supplier Code", "Material Number", "PO Number", "Line", "Qty", "Unit Price"])
        writer.writerow(["S1", "M1", "PO-9", "1", "2", "10.00"])
        for i in range(batch + 100):  # the repeat comes in a later batch
            writer.writerow(["S1", "M1", f"PO-F{i // 10}", str(i % 10 + 1), "1", "3.00"])
        writer.writerow(["S1", "M1", "PO-9", "1", "2", "12.50"])
        writer.writerow(["S1", "M1", "PO-F0", "1", "1", "3.00"])  # the same values again: no conflict
    last_row = batch + 100 + 3
    upload = load(user, path, on_existing="update")
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    issue = RowIssue.objects.get(upload=upload)
    assert (issue.row_number, issue.severity) == (2, "warning")
    assert issue.message == (
        f"PO PO-9 line 1 appears again in row {last_row} with other values; row {last_row} was taken "
        "(unit price 10.00 here)."
    )
    assert PurchaseOrderLine.objects.get(purchase_order__po_number="PO-9", line_number=1).unit_price == Decimal("12.5")
    # Under review the reload's conflict is counted in the summary and listed on the page.
    path2 = tmp_path / "far2.csv"
    path2.write_text(path.read_text().replace("12.50", "13.00"))
    review = load(user, path2, on_existing="review")
    assert review.status == Upload.Status.AWAITING_REVIEW
    assert review.review_summary["conflicts"] == 1
    client = Client()
    client.force_login(user)
    page = client.get(reverse("upload-review", args=[review.pk])).content.decode()
    assert f"PO PO-9 line 1 appears again in row {last_row}" in page


def test_review_endpoints_are_owner_only_csrf_checked_and_say_what_changes(user, other_user, tmp_path):
    load(user, write_orders(tmp_path / "a.csv", 20))
    upload = load(user, write_changed_orders(tmp_path / "b.csv", 20, prices={4: "9.00"}), on_existing="review")
    assert upload.status == Upload.Status.AWAITING_REVIEW
    line = line_for_row(4)

    stranger = Client()
    stranger.force_login(other_user)
    for name, method in (
        ("upload-review", "get"),
        ("upload-changes-json", "get"),
        ("upload-apply", "post"),
        ("upload-load", "post"),
    ):
        assert getattr(stranger, method)(reverse(name, args=[upload.pk])).status_code == 404

    owner = Client(enforce_csrf_checks=True)
    owner.force_login(user)
    assert owner.post(reverse("upload-apply", args=[upload.pk]), {"decision": "all"}).status_code == 403

    status = owner.get(reverse("upload-status", args=[upload.pk])).json()
    assert status["status"] == "awaiting_review"
    assert status["review"] == {
        "changed": 1,
        "conflicts": 0,
        "new": 0,
        "unchanged": 19,
        "pending": 1,
        "url": reverse("upload-review", args=[upload.pk]),
    }
    changes = owner.get(reverse("upload-changes-json", args=[upload.pk])).json()
    assert changes["total"] == 1
    assert changes["results"] == [
        {
            "line_id": line.pk,
            "po_number": "PO-000000",
            "line_number": 5,
            "supplier": "Supplier 0",  # a PO keeps the supplier of its first row
            "decision": None,
            "field": field,
            "old": old,
            "new": new,
            "change_percent": percent,
        }
        for field, old, new, percent in (
            ("unit_price", "5.250000", "9.000000", "71.43"),
            ("total_price", "26.2500", "45.0000", "71.43"),
        )
    ]
    page = owner.get(reverse("upload-review", args=[upload.pk])).content.decode()
    for text in ("PO PO-000000", "Supplier 0", "5.250000", "9.000000", "(+71.43%)", "Take all incoming"):
        assert text in page

    # Load refuses while a change is undecided.
    client = Client()
    client.force_login(user)
    refused = client.post(reverse("upload-load", args=[upload.pk]), HTTP_ACCEPT="application/json")
    assert refused.status_code == 409
    assert refused.json() == {"error": "1 changed lines have no decision yet; take or keep them first."}
    answer = client.post(
        reverse("upload-apply", args=[upload.pk]), {"take": str(line.pk)}, HTTP_ACCEPT="application/json"
    )
    assert answer.json() == {"changed": 1, "taken": 1, "kept": 0, "pending": 0}
    assert client.post(reverse("upload-load", args=[upload.pk]), HTTP_ACCEPT="application/json").status_code == 200
    done = wait_for_upload(upload)
    assert (done.status, done.updated_lines) == (Upload.Status.COMPLETED, 1)
    assert client.get(reverse("upload-status", args=[upload.pk])).json()["changes"] == {
        "created": 0,
        "updated": 1,
        "unchanged": 19,
        "kept": 0,
    }


def test_the_same_file_again_says_so_on_its_card_and_loads_nothing_new(user, tmp_path):
    from ingestion.cards import render_card

    path = write_orders(tmp_path / "same.csv", 30)
    first = load(user, path)
    again = load(user, path, on_existing="review")
    assert (again.status, again.same_file_as_id, again.created_lines, again.updated_lines) == (
        Upload.Status.COMPLETED,
        first.pk,
        0,
        0,
    )
    card = render_card(again)
    assert "The same file as same.csv, loaded " in card
    assert ": nothing new." in card
    assert "The same file as" not in render_card(first)
