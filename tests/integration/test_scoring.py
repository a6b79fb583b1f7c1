"""The quality score's hand-over from ingestion to analytics, in this process (the pipeline
runs here through `runner.run_upload`, as the task calls it, and the price check through
`scoring.check_prices`, as its task calls it; real database and Redis): `lines_changed` is
sent once per completed load, before its row says completed, with what the load counted;
analytics' receiver stores the score at once, the card says "checking prices…" until the
price check adds the outliers, which are the analytics' own (the outliers page's rule),
across uploads."""

from __future__ import annotations

import csv

import pytest

from analytics import scoring, selectors
from analytics.filters import LineFilter
from analytics.models import UploadQuality
from ingestion import runner, services
from ingestion.cards import render_card
from ingestion.models import PurchaseOrderLine, RowIssue, Upload
from ingestion.quality import OUTLIER_MESSAGE, QualityCounter
from ingestion.signals import lines_changed
from scripts.processes import free_port
from tests.helpers import HEADER, celery_broker, order_rows

pytestmark = pytest.mark.django_db(transaction=True)


def write(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def with_outliers(count: int, *, prefix: str, every: int) -> list[list[str]]:
    """order_rows, with every `every`-th row's unit price (and total) a hundred times higher."""
    rows = []
    for i, row in enumerate(order_rows(count, prefix=prefix, materials=12)):
        if i % every == 3:
            price = float(row[8]) * 100
            row[8], row[9] = f"{price:.2f}", f"{price * int(row[7]):.2f}"
        rows.append(row)
    return rows


@pytest.fixture
def heard():
    calls = []

    def listen(sender, *, upload, kind, **kwargs):
        calls.append(
            {
                "kind": kind,
                "upload": upload.pk,
                "quality": kwargs.get("quality"),
                "row_status": Upload.objects.get(pk=upload.pk).status,
                "scored": UploadQuality.objects.filter(upload_id=upload.pk).exists(),
            }
        )

    lines_changed.connect(listen, dispatch_uid="test-heard")
    yield calls
    lines_changed.disconnect(dispatch_uid="test-heard")


def load(user, path, *, check_prices: bool = True) -> Upload:
    upload = services.create_upload_from_path(owner=user, path=path, enqueue=False)
    if check_prices:
        runner.run_upload(upload_id=upload.pk)
    else:
        # The price check's task goes to a broker no worker reads (none listens there), so
        # the score is seen as the load left it, whatever worker other tests started.
        with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):
            runner.run_upload(upload_id=upload.pk)
    if check_prices:
        scoring.check_prices(upload_id=upload.pk)
    upload.refresh_from_db()
    return upload


def test_a_load_is_announced_once_before_it_completes_and_analytics_stores_its_score(user, tmp_path, heard):
    upload = load(user, write(tmp_path / "a.csv", with_outliers(300, prefix="A", every=41)), check_prices=False)
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert len(heard) == 1
    call = heard[0]
    assert (call["kind"], call["upload"]) == ("loaded", upload.pk)
    assert isinstance(call["quality"], QualityCounter)
    assert call["row_status"] == Upload.Status.PROCESSING  # the final card comes after the score
    assert call["scored"]  # analytics' receiver (connected first, in ready()) had stored it

    # The completed card carries the score of what the load counted, prices still to check.
    first = UploadQuality.objects.get(upload=upload)
    assert not first.prices_checked and first.counts["price_outliers"] == [0, 0] and first.seconds > 0
    card = render_card(upload)
    assert f'data-score="{first.score}"' in card and "checking prices…" in card
    assert not RowIssue.objects.filter(upload=upload, message=OUTLIER_MESSAGE).exists()

    stored = scoring.check_prices(upload_id=upload.pk)  # what the task it sent does
    upload.refresh_from_db()
    rules = {r["rule"]: (r["measured"], r["failed"]) for r in stored.rules}
    outliers = RowIssue.objects.filter(upload=upload, message=OUTLIER_MESSAGE)
    assert outliers.count() > 0
    assert rules["price_outliers"] == (300, outliers.count())
    assert stored.prices_checked and stored.score < first.score and stored.price_check_seconds > 0
    assert "checking prices…" not in render_card(upload)
    # Counted on the upload's warnings (the row its card is drawn from).
    assert upload.warning_count == RowIssue.objects.filter(upload=upload, severity="warning").count()
    # A second delivery of the task changes nothing.
    scoring.check_prices(upload_id=upload.pk)
    assert RowIssue.objects.filter(upload=upload, message=OUTLIER_MESSAGE).count() == outliers.count()


def test_an_uploads_outliers_are_the_outliers_page_rule_over_every_uploads_lines(user, tmp_path):
    first = load(user, write(tmp_path / "a.csv", with_outliers(300, prefix="A", every=41)))
    # The same materials again, other purchase orders: the groups now mix both uploads.
    second = load(user, write(tmp_path / "b.csv", with_outliers(240, prefix="B", every=29)))
    assert (first.status, second.status) == (Upload.Status.COMPLETED, Upload.Status.COMPLETED)
    page = selectors.outliers(line_filter=LineFilter(), page=1, per_page=10_000)
    for upload in (first, second):
        mine = set(PurchaseOrderLine.objects.filter(upload=upload).values_list("id", flat=True))
        expected = sorted(
            (r["po_number"], r["line_number"], r["unit_price"], r["median"], r["z_score"])
            for r in page.results
            if r["id"] in mine
        )
        got = [
            (o["po_number"], o["line_number"], o["unit_price"], o["median"], o["z_score"])
            for o in scoring.upload_outliers(upload_id=upload.pk)
        ]
        assert got == expected and got
    # The second upload's score was taken over both uploads' lines, when it loaded.
    warnings = RowIssue.objects.filter(upload=second, message=OUTLIER_MESSAGE).count()
    assert warnings == len(scoring.upload_outliers(upload_id=second.pk))


def test_a_load_that_fails_is_not_announced(user, tmp_path, heard):
    upload = load(user, write(tmp_path / "empty.csv", []))
    assert upload.status == Upload.Status.FAILED
    assert heard == []
    assert not UploadQuality.objects.filter(upload=upload).exists()


def test_a_receiver_that_fails_never_fails_a_load_whose_lines_are_written(user, tmp_path, heard):
    def broken(sender, **kwargs):
        raise RuntimeError("a listener's bug")

    lines_changed.connect(broken, dispatch_uid="test-broken")
    try:
        upload = load(user, write(tmp_path / "a.csv", with_outliers(50, prefix="C", every=7)))
    finally:
        lines_changed.disconnect(dispatch_uid="test-broken")
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    assert UploadQuality.objects.filter(upload=upload).exists()
    assert len(heard) == 1
