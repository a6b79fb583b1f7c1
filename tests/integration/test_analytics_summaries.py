"""The analytics summaries (analytics.summaries) answer exactly what the lines answer, for
every filter the pages take; and a load, a reload with changed prices and a revert keep them
so, refreshed by the real worker after `ingestion.signals.lines_changed` (sent here as the
load's runner and the revert send it)."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics import selectors, summaries
from analytics.filters import LineFilter
from analytics.models import LineOutlier, SummaryState
from ingestion import services
from ingestion.models import Material, Supplier, Upload
from ingestion.signals import lines_changed
from tests.helpers import create_lines, order_price, price_rows, wait_for_upload, write_changed_orders, write_orders

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the summaries exist on PostgreSQL only; SQLite reads the lines"
)


def every_answer(filters: list[LineFilter]) -> dict:
    """What the pages show for each filter: spend three ways, counts, currencies, outliers
    (all of them) and the variance (all rows)."""
    out = {}
    for f in filters:
        key = str(f)
        out[key] = {
            "spend": {by: selectors.spend(line_filter=f, by=by) for by in selectors.SPEND_GROUPS},
            "top2": selectors.spend(line_filter=f, by="supplier", top=2),
            "counts": selectors.overview_counts(line_filter=f),
            "currencies": selectors.currencies(line_filter=f),
            "outliers": selectors.outliers(line_filter=f, page=1, per_page=10_000),
            "outliers_page2": selectors.outliers(line_filter=f, page=2, per_page=2),
            "variance": selectors.variance(line_filter=f, page=1, per_page=10_000),
        }
    return out


def from_lines(filters: list[LineFilter]) -> dict:
    """The same answers with the summaries set aside (as before they are built)."""
    state = SummaryState.objects.get(pk=1)
    SummaryState.objects.filter(pk=1).update(built_at=None)
    try:
        assert selectors.freshness() == "lines"
        return every_answer(filters)
    finally:
        SummaryState.objects.filter(pk=1).update(built_at=state.built_at)


def some_filters() -> list[LineFilter]:
    s1 = Supplier.objects.get(code="S1").pk
    m1 = Material.objects.order_by("pk").first()
    return [
        LineFilter(),
        LineFilter(currency="USD"),
        LineFilter(currency="EUR"),
        LineFilter(supplier=s1),
        LineFilter(category="Fasteners"),
        LineFilter(category="Steel", currency="EUR"),
        LineFilter(category="Fasteners", supplier=s1),
        LineFilter(material=m1.pk if m1 else None),
        LineFilter(date_from=date(2024, 2, 1), date_to=date(2024, 4, 30)),
        LineFilter(date_from=date(2024, 2, 10)),  # not a whole month: read from the lines
        LineFilter(date_to=date(2024, 3, 31), currency="USD"),
        LineFilter(q="S1"),
    ]


@pytest.mark.django_db
def test_summaries_answer_exactly_what_the_lines_answer_for_every_filter():
    create_lines(price_rows())
    summaries.refresh()
    assert selectors.freshness() == "ready"
    filters = some_filters()
    with CaptureQueriesContext(connection) as queries:
        from_summaries = every_answer(filters[:1])
    # Unfiltered, the summaries answer it all: the lines are read only for one page of
    # outliers, by id.
    read_lines = [q["sql"] for q in queries.captured_queries if 'FROM "ingestion_purchaseorderline"' in q["sql"]]
    assert read_lines
    assert all('WHERE "ingestion_purchaseorderline"."id" IN (' in sql for sql in read_lines)
    assert from_summaries[str(filters[0])]["outliers"].total >= 3  # the planted prices
    assert from_summaries[str(filters[0])]["variance"]["total"] > 0
    assert every_answer(filters) == from_lines(filters)


@pytest.mark.django_db
def test_a_queued_refresh_sends_the_pages_to_the_lines_until_it_is_done(client, user):
    create_lines(price_rows())
    summaries.refresh()
    client.force_login(user)
    pages = [reverse(name) for name in ("analytics-overview", "analytics-outliers", "analytics-variance")]
    assert all('id="figures-updating"' not in client.get(url).content.decode() for url in pages)
    summaries.mark_pending()
    assert selectors.freshness() == "updating"
    with CaptureQueriesContext(connection) as queries:
        selectors.spend(line_filter=LineFilter(), by="supplier")
    assert [q for q in queries.captured_queries if 'FROM "ingestion_purchaseorderline"' in q["sql"]]
    assert all('id="figures-updating"' in client.get(url).content.decode() for url in pages)
    summaries.refresh(queued=True)
    assert selectors.freshness() == "ready"
    assert 'id="figures-updating"' not in client.get(pages[0]).content.decode()


def wait_until_refreshed(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = SummaryState.objects.filter(pk=1).first()
        if state and state.pending == 0 and state.built_at is not None:
            return
        time.sleep(0.2)
    raise AssertionError(f"the analytics refresh did not finish: {SummaryState.objects.filter(pk=1).first()}")


def loaded(user, path) -> Upload:
    upload = wait_for_upload(services.create_upload_from_path(owner=user, path=path))
    assert upload.status == Upload.Status.COMPLETED, upload.error_message
    lines_changed.send(sender=Upload, upload=upload, kind="loaded")  # as the runner sends it
    wait_until_refreshed()
    return upload


def order_filters() -> list[LineFilter]:
    return [
        LineFilter(),
        LineFilter(supplier=Supplier.objects.order_by("pk").first().pk),
        LineFilter(material=Material.objects.order_by("pk").first().pk),
        LineFilter(date_from=date(2024, 3, 1), date_to=date(2024, 3, 31)),
    ]


@pytest.mark.usefixtures("live_worker")
def test_load_reload_and_revert_keep_the_summaries_equal_to_the_lines(user, tmp_path):
    loaded(user, write_orders(tmp_path / "a.csv", 400))
    assert selectors.freshness() == "ready"
    first = every_answer(order_filters())
    assert first == from_lines(order_filters())
    assert first[str(LineFilter())]["counts"]["lines"] == 400

    # A reload: a tenth of the prices changed, three of them far off their material's price,
    # and 30 new lines.
    changed = {i: f"{order_price(i) + 1}" for i in range(0, 400, 10)}
    changed.update({5: "900.25", 105: "900.25", 205: "900.25"})
    second = loaded(user, write_changed_orders(tmp_path / "b.csv", 430, prices=changed))
    after = every_answer(order_filters())
    assert after == from_lines(order_filters())
    assert after != first
    assert after[str(LineFilter())]["counts"]["lines"] == 430
    assert LineOutlier.objects.count() == after[str(LineFilter())]["outliers"].total >= 3

    # The material page lists the changes to its lines, newest first, with their new price.
    material = Material.objects.get(code="M00000")
    changes = selectors.material_changes(material=material)
    assert {(c["po_number"], c["line_number"], c["version"].unit_price) for c in changes} == {
        (f"PO-{i // 10:06d}", i % 10 + 1, Decimal(changed[i])) for i in changed if i % 50 == 0
    }
    client = Client()
    client.force_login(user)
    page = client.get(reverse("analytics-material", args=[material.pk])).content.decode()
    assert 'id="material-changes"' in page and page.count('class="version-row"') == len(changes) > 0

    # The revert: back to the first load's figures, exactly.
    services.revert_upload(upload=second, by=user)
    lines_changed.send(sender=Upload, upload=second, kind="reverted")  # as the revert sends it
    wait_until_refreshed()
    assert every_answer(order_filters()) == first


@pytest.mark.usefixtures("live_worker")
def test_the_refresh_is_scoped_to_what_the_upload_touched(user, tmp_path):
    loaded(user, write_orders(tmp_path / "a.csv", 200, suppliers=20, materials=50))
    # Two new purchase orders (a PO's first row names its supplier: S0000, then S0001).
    upload = loaded(user, write_orders(tmp_path / "b.csv", 20, suppliers=3, materials=3, prefix="PX"))
    scope = summaries.scope_of_upload(upload_id=upload.pk)
    assert sorted(scope.suppliers or []) == sorted(
        Supplier.objects.filter(code__in=["S0000", "S0001"]).values_list("pk", flat=True)
    )
    assert sorted(scope.materials or []) == sorted(
        Material.objects.filter(code__in=["M00000", "M00001", "M00002"]).values_list("pk", flat=True)
    )
    assert every_answer(order_filters()) == from_lines(order_filters())
