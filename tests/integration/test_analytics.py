"""Price analytics against figures computed independently with pandas over the same rows:
spend, medians and quartiles, outliers (modified z-score), price variance; the JSON
contracts; sign-in required."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
from django.urls import reverse

from analytics import selectors, summaries
from analytics.filters import LineFilter
from ingestion.models import Material, Supplier
from tests.helpers import CATEGORIES, create_lines, price_rows

pytestmark = pytest.mark.django_db
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")


@pytest.fixture(params=["lines", "summaries"])
def rows(request):
    """Every figure is checked twice: read from the lines, and read from the summaries
    (analytics.summaries, rebuilt as `manage.py refresh_analytics` does)."""
    data = price_rows()
    create_lines(data)
    if request.param == "summaries":
        summaries.refresh()
        assert selectors.freshness() == ("ready" if summaries.available() else "lines")
    return data


@pytest.fixture
def frame(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["price"] = df["unit_price"].astype(float)
    df["spend"] = [q * p for q, p in zip(df["quantity"], df["unit_price"])]
    df["category"] = df["material"].map(CATEGORIES)
    return df


def money(value) -> str:
    return str(Decimal(value).quantize(CENT))


def micro(value) -> str:
    return str(Decimal(str(value)).quantize(MICRO))


def test_spend_by_supplier_category_and_month_match_pandas(frame):
    usd = frame[frame["currency"] == "USD"]
    by_supplier = selectors.spend(line_filter=LineFilter(), by="supplier")
    assert by_supplier["currency"] == "USD"  # most lines are in USD
    expected = usd.groupby("supplier")["spend"].sum().sort_values(ascending=False)
    assert [(r["label"], r["spend"]) for r in by_supplier["rows"]] == [
        (f"Supplier {code}", money(value)) for code, value in expected.items()
    ]
    assert by_supplier["total"] == money(usd["spend"].sum())
    assert by_supplier["lines"] == len(usd)
    assert by_supplier["other"] == {"spend": "0.00", "lines": 0}

    top_two = selectors.spend(line_filter=LineFilter(), by="supplier", top=2)
    assert top_two["other"] == {
        "spend": money(expected.iloc[2]),
        "lines": int((usd["supplier"] == expected.index[2]).sum()),
    }

    by_category = selectors.spend(line_filter=LineFilter(), by="category")
    expected_categories = usd.groupby("category")["spend"].sum().sort_values(ascending=False)
    assert [(r["key"], r["spend"]) for r in by_category["rows"]] == [
        (key, money(value)) for key, value in expected_categories.items()
    ]
    assert {r["key"]: r["label"] for r in by_category["rows"]}[""] == "(no category)"

    by_month = selectors.spend(line_filter=LineFilter(), by="month")
    dated = usd[usd["order_date"].notna()]
    months = dated.assign(month=[d.strftime("%Y-%m") for d in dated["order_date"]]).groupby("month")["spend"].sum()
    assert [(r["key"], r["spend"]) for r in by_month["rows"]] == [(m, money(v)) for m, v in months.items()]
    undated = usd[usd["order_date"].isna()]
    assert by_month["other"] == {"spend": money(undated["spend"].sum()), "lines": len(undated)}

    eur_q2 = selectors.spend(
        line_filter=LineFilter(currency="EUR", date_from=date(2024, 4, 1), date_to=date(2024, 6, 30)), by="supplier"
    )
    eur = frame[(frame["currency"] == "EUR") & frame["order_date"].notna()]
    eur = eur[[date(2024, 4, 1) <= d <= date(2024, 6, 30) for d in eur["order_date"]]]
    assert eur_q2["total"] == money(eur["spend"].sum())
    assert (eur_q2["currency"], eur_q2["from"], eur_q2["to"]) == ("EUR", "2024-04-01", "2024-06-30")


def test_material_prices_min_median_max_last_match_pandas(frame):
    material = Material.objects.get(code="M2")
    data = selectors.material_prices(material=material, line_filter=LineFilter())
    assert [g["currency"] for g in data["currencies"]] == ["USD", "EUR"]
    for group in data["currencies"]:
        part = frame[(frame["material"] == "M2") & (frame["currency"] == group["currency"])]
        assert group["lines"] == len(part)
        assert group["min"] == micro(part["unit_price"].min())
        assert group["max"] == micro(part["unit_price"].max())
        assert group["median"] == micro(part["price"].median())
        assert group["unit"] == "KG"
        dated = part[part["order_date"].notna()].reset_index()
        latest = dated.sort_values(["order_date", "index"]).iloc[-1]
        assert group["last"]["price"] == micro(latest["unit_price"])
        assert group["average"] == micro(part["spend"].sum() / part["quantity"].sum())
        # One series per supplier, its monthly average weighted by quantity.
        assert sorted(s["supplier"] for s in group["series"]) == sorted(
            f"Supplier {c}" for c in dated["supplier"].unique()
        )
        first = group["series"][0]
        code = first["supplier"].split()[-1]
        mine = dated[dated["supplier"] == code]
        monthly = mine.assign(month=[d.strftime("%Y-%m") for d in mine["order_date"]]).groupby("month")
        assert first["monthly"] == [[month, micro(g["spend"].sum() / g["quantity"].sum())] for month, g in monthly]


def test_supplier_comparison_quartiles_and_cheapest_match_pandas(frame, settings):
    settings.ANALYTICS_MIN_VOLUME_SHARE = 0.1
    material = Material.objects.get(code="M1")
    data = selectors.supplier_comparison(material=material, line_filter=LineFilter())
    part = frame[(frame["material"] == "M1") & (frame["currency"] == "USD")]
    assert data["currency"] == "USD"
    expected = []
    for code, g in part.groupby("supplier"):
        expected.append(
            {
                "supplier": f"Supplier {code}",
                "lines": len(g),
                "q1": micro(g["price"].quantile(0.25)),
                "median": micro(g["price"].quantile(0.5)),
                "q3": micro(g["price"].quantile(0.75)),
                "volume": str(g["quantity"].sum().normalize()),
                "average": micro(g["spend"].sum() / g["quantity"].sum()),
            }
        )
    assert [{k: s[k] for k in expected[0]} for s in data["suppliers"]] == expected
    cheapest = min(expected, key=lambda s: Decimal(s["average"]))
    assert data["cheapest"]["supplier"] == cheapest["supplier"]

    settings.ANALYTICS_MIN_VOLUME_SHARE = 0.99  # no supplier carries that much
    assert selectors.supplier_comparison(material=material, line_filter=LineFilter())["cheapest"] is None


def pandas_outliers(frame: pd.DataFrame) -> dict[tuple[str, int], float]:
    found = {}
    for (_, _), g in frame.groupby(["material", "currency"]):
        if len(g) < 5:
            continue
        median = g["price"].median()
        mad = (g["price"] - median).abs().median()
        if mad == 0:
            continue
        z = 0.6745 * (g["price"] - median) / mad
        for (po, line), score in zip(zip(g["po_number"], g["line_number"]), z):
            if abs(score) > 3.5:
                found[(po, line)] = round(score, 2)
    return found


def test_outliers_match_pandas_modified_z_score(frame):
    expected = pandas_outliers(frame)
    assert len(expected) >= 3  # the three planted prices at least; M4 (no spread) never
    page = selectors.outliers(line_filter=LineFilter(), page=1, per_page=1000)
    assert page.total == len(expected)
    assert {(r["po_number"], r["line_number"]): r["z_score"] for r in page.results} == expected
    assert all(r["material"] != "M4" for r in page.results)
    # Newest first; lines without an order date last.
    dates = [r["order_date"] for r in page.results]
    dated = [d for d in dates if d is not None]
    assert dates == sorted(dated, reverse=True) + [None] * (len(dates) - len(dated))
    # The material's median beside each one.
    first = page.results[0]
    group = frame[(frame["material"] == first["material"]) & (frame["currency"] == first["currency"])]
    assert first["median"] == micro(group["price"].median())
    # A supplier filter lists fewer, with the same statistics.
    only = selectors.outliers(
        line_filter=LineFilter(supplier=Supplier.objects.get(code="S1").pk), page=1, per_page=1000
    )
    s1 = {key for key in expected if frame[(frame["po_number"] == key[0])]["supplier"].iloc[0] == "S1"}
    assert {(r["po_number"], r["line_number"]) for r in only.results} == s1
    # Pages of two.
    second = selectors.outliers(line_filter=LineFilter(), page=2, per_page=2)
    assert [r["id"] for r in second.results] == [r["id"] for r in page.results[2:4]]


def test_price_variance_matches_pandas(frame):
    data = selectors.variance(
        line_filter=LineFilter(date_from=date(2024, 4, 1), date_to=date(2024, 6, 30)), per_page=1000
    )
    assert (data["from"], data["to"], data["previous_from"], data["previous_to"]) == (
        "2024-04-01",
        "2024-06-30",
        "2024-01-01",
        "2024-03-31",
    )
    dated = frame[frame["order_date"].notna()].copy()
    dated["period"] = ["current" if d >= date(2024, 4, 1) else "previous" for d in dated["order_date"]]
    dated = dated[[date(2024, 1, 1) <= d <= date(2024, 6, 30) for d in dated["order_date"]]]
    expected = {}
    for (supplier, material, currency), g in dated.groupby(["supplier", "material", "currency"]):
        cur, prev = g[g["period"] == "current"], g[g["period"] == "previous"]
        if cur.empty or prev.empty:
            continue
        prev_avg = prev["spend"].sum() / prev["quantity"].sum()
        amount = cur["spend"].sum() - cur["quantity"].sum() * prev_avg
        expected[(f"Supplier {supplier}", material, currency)] = (money(amount), micro(prev_avg))
    got = {
        (r["supplier"], r["material"], r["currency"]): (r["variance"], r["previous_average"]) for r in data["results"]
    }
    assert got == expected
    assert data["total"] == len(expected)
    # Largest effect first; positive means paid more than at the previous prices.
    sizes = [abs(Decimal(r["variance"])) for r in data["results"]]
    assert sizes == sorted(sizes, reverse=True)
    for r in data["results"]:
        assert (Decimal(r["variance"]) > 0) == (Decimal(r["average"]) > Decimal(r["previous_average"]))


def test_json_contracts_need_sign_in_and_answer_their_shape(client, user, rows):
    material = Material.objects.get(code="M1")
    urls = [
        reverse("analytics-spend-json") + "?by=category",
        reverse("analytics-prices-json", args=[material.pk]),
        reverse("analytics-suppliers-json", args=[material.pk]),
        reverse("analytics-outliers-json") + "?page=1",
        reverse("analytics-variance-json") + "?from=2024-04-01&to=2024-06-30",
        reverse("analytics-overview"),
        reverse("analytics-material", args=[material.pk]),
        reverse("analytics-outliers"),
        reverse("analytics-variance"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    client.force_login(user)
    spend = client.get(urls[0]).json()
    assert set(spend) == {"currency", "from", "to", "total", "lines", "rows", "other"}
    assert set(spend["rows"][0]) == {"key", "label", "spend", "lines"}
    assert all(isinstance(r["spend"], str) for r in spend["rows"])
    assert Decimal(spend["total"]) == sum(Decimal(r["spend"]) for r in spend["rows"]) + Decimal(spend["other"]["spend"])
    outliers = client.get(urls[3]).json()
    assert set(outliers) == {"total", "page", "results"}
    for url in urls[1:]:
        assert client.get(url).status_code == 200, url
    assert client.get(reverse("analytics-spend-json") + "?by=nothing").status_code == 404
    assert client.get(reverse("analytics-prices-json", args=[999999])).status_code == 404


def test_every_table_downloads_as_formula_safe_csv(client, user, rows):
    Supplier.objects.filter(code="S1").update(name="=HYPERLINK(1)")
    client.force_login(user)
    material = Material.objects.get(code="M1")
    response = client.get(reverse("analytics-spend-csv") + "?by=supplier")
    text = b"".join(response.streaming_content).decode()
    assert response["Content-Disposition"] == 'attachment; filename="spend-by-supplier-USD.csv"'
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text
    for url in [
        reverse("analytics-prices-csv", args=[material.pk]),
        reverse("analytics-suppliers-csv", args=[material.pk]),
        reverse("analytics-outliers-csv"),
        reverse("analytics-variance-csv") + "?from=2024-04-01&to=2024-06-30",
    ]:
        response = client.get(url)
        body = b"".join(response.streaming_content).decode()
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv"), url
        assert ",=HYPERLINK" not in body
    outliers_csv = b"".join(client.get(reverse("analytics-outliers-csv")).streaming_content).decode().splitlines()
    assert len(outliers_csv) - 1 == selectors.outliers(line_filter=LineFilter(), page=1).total
