"""An upload's quality score, through the real worker: a crafted file with known defects
gives the exact score and dimensions worked out here by hand; a clean file scores 100; a
price outlier becomes a warning; status.json, the card and the detail page carry it."""

from __future__ import annotations

import csv
from fractions import Fraction

import pytest
from django.urls import reverse

from analytics.models import UploadQuality
from ingestion import services
from ingestion.models import RowIssue, Upload
from tests.helpers import wait_for_score, wait_for_upload

pytestmark = pytest.mark.usefixtures("live_worker")

HEADER = ["Supplier Code", "Supplier Name", "Material Number", "Item Description", "UOM", "Category", "PO Number",
          "Line", "PO Date", "Qty", "Unit Price", "Total Price", "Currency"]  # fmt: skip

DEFECTS = [
    ["S1", "Acme", "M1", "Bolt", "EA", "Fasteners", "PO-1", "1", "2024-03-01", "2", "10.00", "20.00", "USD"],
    ["S1", "Acme", "M1", "Bolt", "EA", "Fasteners", "PO-1", "1", "2024-03-01", "3", "10.00", "30.00", "USD"],  # PO line twice
    ["S1", "Acme", "M2", "Nut", "EA", "", "PO-1", "2", "2024-03-01", "5", "2.00", "10.00", "USD"],  # no category
    ["S2", "Beta", "M2", "Nut", "BOX", "Fasteners", "PO-2", "1", "2024-03-02", "1", "2.10", "2.10", "USD"],  # M2 in a 2nd unit
    ["S1", "Acme", "M3", "Washer", "EA", "Fasteners", "PO-2", "2", "2024-03-02", "4", "1.00", "5.00", "USD"],  # 2nd supplier; total
    ["S3", "Gamma", "M4", "Pin", "EA", "Fasteners", "PO-3", "1", "2030-01-01", "1", "3.00", "3.00", ""],  # future; no currency
    ["S3", "Gamma", "M4", "Pin", "EA", "Fasteners", "PO-3", "2", "1990-05-05", "1", "3.00", "3.00", "EUR"],  # too old; 2nd currency
    ["S3", "", "M5", "Clip", "EA", "Fasteners", "PO-4", "1", "", "2", "1.50", "3.00", "USD"],  # no name, no date
    ["S3", "Gamma", "M5", "Clip", "EA", "Fasteners", "PO-4", "2", "2024-04-01", "0", "1.50", "0.00", "USD"],  # rejected
    ["S3", "Gamma", "M5", "Clip", "EA", "Fasteners", "PO-4", "3", "2024-04-01", "1", "1.50", "1.50", "USD"],
] + [
    ["S4", "Delta", "M6", "Gear", "EA", "Parts", "PO-5", str(n), "2024-05-01", "1", price, price, "USD"]
    for n, price in enumerate(["10.00", "10.20", "9.80", "10.10", "9.90", "60.00"], start=1)  # 60.00: an outlier
]  # fmt: skip


def write(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def expected_score(dimensions: dict[str, list[Fraction]]) -> tuple[float, dict[str, float]]:
    weights = {"validity": 40, "completeness": 15, "consistency": 20, "uniqueness": 10, "plausibility": 15}
    shares = {d: sum(rules, Fraction(0)) / len(rules) for d, rules in dimensions.items()}
    score = sum(weights[d] * shares[d] for d in shares) / sum(weights[d] for d in shares) * 100
    return round(float(score), 1), {d: round(float(s) * 100, 1) for d, s in shares.items()}


def test_a_crafted_file_scores_exactly_what_its_defects_cost(user, client, tmp_path):
    upload = services.create_upload_from_path(owner=user, path=write(tmp_path / "defects.csv", DEFECTS))
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert (upload.imported_rows, upload.rejected_rows) == (15, 1)
    wait_for_score(upload)

    f = Fraction
    score, dimensions = expected_score(
        {
            "validity": [1 - f(1, 16)],
            # order date, currency, unit, category, supplier name, material description (15 rows)
            "completeness": [1 - f(1, 15), 1 - f(1, 15), f(1), 1 - f(1, 15), 1 - f(1, 15), f(1)],
            # totals (15 rows give both), suppliers per PO (5), currencies per PO (5), units per material (6)
            "consistency": [1 - f(1, 15), 1 - f(1, 5), 1 - f(1, 5), 1 - f(1, 6)],
            "uniqueness": [1 - f(1, 15)],
            # order dates in range (14 dated), prices not outliers (15)
            "plausibility": [1 - f(2, 14), 1 - f(1, 15)],
        }
    )
    stored = UploadQuality.objects.get(upload=upload)
    assert float(stored.score) == score
    assert stored.dimensions == dimensions
    assert stored.grade == ("A" if score >= 95 else "B" if score >= 85 else "C" if score >= 70 else "D")
    costs = {r["rule"]: (r["measured"], r["failed"]) for r in stored.rules}
    assert costs == {
        "rejected": (16, 1),
        "order_date": (15, 1),
        "currency": (15, 1),
        "category": (15, 1),
        "supplier_name": (15, 1),
        "total_mismatch": (15, 1),
        "po_suppliers": (5, 1),
        "po_currencies": (5, 1),
        "material_units": (6, 1),
        "duplicate_lines": (15, 1),
        "order_date_range": (14, 2),
        "price_outliers": (15, 1),
    }
    # Each rule's cost: its dimension's weight x what the rule lost / the dimension's rules.
    assert {r["rule"]: r["points"] for r in stored.rules} == {
        "rejected": round(40 * 1 / 16, 2),
        "order_date_range": round(15 * 2 / 14 / 2, 2),
        "po_suppliers": round(20 * 1 / 5 / 4, 2),
        "po_currencies": round(20 * 1 / 5 / 4, 2),
        "material_units": round(20 * 1 / 6 / 4, 2),
        "duplicate_lines": round(10 * 1 / 15, 2),
        "price_outliers": round(15 * 1 / 15 / 2, 2),
        "total_mismatch": round(20 * 1 / 15 / 4, 2),
        "order_date": round(15 * 1 / 15 / 6, 2),
        "currency": round(15 * 1 / 15 / 6, 2),
        "category": round(15 * 1 / 15 / 6, 2),
        "supplier_name": round(15 * 1 / 15 / 6, 2),
    }
    assert [r["rule"] for r in stored.rules[:3]] == ["rejected", "order_date_range", "po_currencies"]
    assert sum(r["points"] for r in stored.rules) == pytest.approx(100 - score, abs=0.1)

    # The dates out of range and the outlier are warnings on the upload.
    warnings = RowIssue.objects.filter(upload=upload, severity="warning")
    assert sorted(warnings.filter(message__startswith="Order date is").values_list("row_number", "message")) == [
        (7, "Order date is in the future."),
        (8, "Order date is before 2000."),
    ]
    outlier = warnings.get(message__startswith="Unit price is far")
    assert outlier.value == "60.000000 (PO PO-5 line 6; median 10.050000; z 224.6)"
    assert outlier.message == "Unit price is far from this material's usual price (modified z-score above 3.5)."

    client.force_login(user)
    status = client.get(reverse("upload-status", args=[upload.pk])).json()
    assert status["quality"] == {"score": score, "grade": stored.grade, "dimensions": dimensions}
    detail = client.get(reverse("upload-detail", args=[upload.pk]))
    html = detail.content.decode()
    assert f'data-score="{stored.score}"' in html and "?rule=rejected" in html
    only = client.get(reverse("upload-detail", args=[upload.pk]) + "?rule=order_date_range")
    assert [i.row_number for i in only.context["issues"]] == [7, 8]
    rejected = client.get(reverse("upload-detail", args=[upload.pk]) + "?rule=rejected")
    assert [i.row_number for i in rejected.context["issues"]] == [10]


def test_a_clean_file_scores_100(user, tmp_path):
    clean = [
        ["S1", "Acme", f"M{i % 3}", f"Part {i % 3}", "EA", "Parts", f"PO-{i // 4}", str(i % 4 + 1), "2024-06-01",
         "2", "5.00", "10.00", "USD"]
        for i in range(40)
    ]  # fmt: skip
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=write(tmp_path / "clean.csv", clean)))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    stored = wait_for_score(upload)
    assert (float(stored.score), stored.grade, stored.rules) == (100.0, "A", [])
    assert stored.dimensions == dict.fromkeys(
        ("validity", "completeness", "consistency", "uniqueness", "plausibility"), 100.0
    )


def test_a_suppliers_page_shows_the_scores_of_the_uploads_that_carried_its_lines(user, client, tmp_path):
    first = wait_for_upload(services.create_upload_from_path(owner=user, path=write(tmp_path / "a.csv", DEFECTS)))
    clean = [["S9", "Nine", "M9", "Part", "EA", "Parts", "PO-9", "1", "2024-06-01", "2", "5.00", "10.00", "USD"]]
    second = wait_for_upload(services.create_upload_from_path(owner=user, path=write(tmp_path / "b.csv", clean)))
    wait_for_score(first), wait_for_score(second)
    from ingestion.models import Supplier

    client.force_login(user)
    acme = client.get(reverse("browse-supplier", args=[Supplier.objects.get(code="S1").pk]))
    assert [(s["upload"].pk, s["score"]) for s in acme.context["scores"]] == [(first.pk, first.quality.score)]
    nine = client.get(reverse("browse-supplier", args=[Supplier.objects.get(code="S9").pk]))
    assert [(s["upload"].pk, float(s["score"])) for s in nine.context["scores"]] == [(second.pk, 100.0)]
    assert 'data-chart="chart-scores"' in nine.content.decode()


def test_the_detail_page_groups_issues_by_rule_and_column_each_expandable_to_its_rows(user, client, tmp_path):
    """Today the same warning filled pages: now it is one line with its count."""
    rows = [
        ["S1", "Acme", "M1", "Bolt", "EA", "Parts", f"PO-{i}", "1", "Date Not Captured" if i % 3 else "2024-01-05",
         "1", "2.00", "2.00" if i % 4 else "3.00", "USD"]
        for i in range(60)
    ]  # fmt: skip
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=write(tmp_path / "dates.csv", rows)))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    client.force_login(user)
    page = client.get(reverse("upload-detail", args=[upload.pk]))
    groups = [(g["count"], g["message"], g["column"], g["example"]) for g in page.context["issue_groups"]]
    assert groups == [
        (40, "Date not recognised; stored empty.", "PO Date", "Date Not Captured"),
        (15, "Total price differs from quantity x unit price.", "Total Price", "3.00"),
    ]
    html = page.content.decode()
    assert "?message=Date%20not%20recognised%3B%20stored%20empty.&amp;column=PO%20Date#issues-heading" in html
    expanded = client.get(
        reverse("upload-detail", args=[upload.pk]),
        {"message": "Date not recognised; stored empty.", "column": "PO Date"},
    )
    assert expanded.context["issues"].paginator.count == 40
    assert [i.row_number for i in expanded.context["issues"]][:3] == [3, 4, 6]
    assert "message=Date+not+recognised%3B+stored+empty.&amp;column=PO+Date&amp;page=2" not in html  # one page only


def test_rejected_rows_download_in_the_files_own_columns_with_the_reason(user, client, tmp_path):
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=write(tmp_path / "d.csv", DEFECTS)))
    client.force_login(user)
    response = client.get(reverse("upload-rejected-csv", args=[upload.pk]))
    assert response["Content-Disposition"].startswith('attachment; filename="d-rejected.csv"')
    rows = list(csv.reader(b"".join(response.streaming_content).decode().splitlines()))
    assert rows == [
        [*HEADER, "Reason rejected"],
        [*DEFECTS[8], "Qty: Quantity must be above zero."],
    ]
    assert "rejected.csv" in client.get(reverse("upload-detail", args=[upload.pk])).content.decode()
