"""The analytics pages' and JSON endpoints' latency over a million lines, beside a plain
`SELECT count(*)` of the lines (the floor).

    .venv/bin/python bench/analytics.py [--lines 1000000] [--runs 20]

It needs PostgreSQL (`BENCH_DATABASE_URL`, else `DATABASE_URL`); the procurement tables of
that database are EMPTIED and filled with generated lines straight in SQL (200 suppliers,
5,000 materials, 100,000 purchase orders over two years, a tenth in EUR; prices spread a few
percent around each material's own). Every URL is asked `--runs` times in process (Django's
test client: the view, its SQL and the template, no network) after two warm-up requests;
the p50 and p95 are printed and kept in bench/analytics_results.json."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-secret")
if os.environ.get("BENCH_DATABASE_URL"):
    os.environ["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]

FILL = """
TRUNCATE ingestion_purchaseorderline, ingestion_purchaseorder, ingestion_material, ingestion_supplier
    RESTART IDENTITY CASCADE;
INSERT INTO ingestion_supplier (key, code, name, created_at)
    SELECT 'S' || g, 'S' || g, 'Supplier ' || g, now() FROM generate_series(1, 200) g;
INSERT INTO ingestion_material (key, code, description, category, unit_of_measure, created_at)
    SELECT 'M' || g, 'M' || g, 'Material ' || g, 'Category ' || (g % 40), 'EA', now() FROM generate_series(1, 5000) g;
INSERT INTO ingestion_purchaseorder (po_number, supplier_id, order_date, currency, created_at)
    SELECT 'PO' || g, 1 + (g * 7919) % 200, date '2024-01-01' + (g * 37) % 730,
           CASE WHEN g % 10 = 0 THEN 'EUR' ELSE 'USD' END, now()
    FROM generate_series(1, %(orders)s) g;
INSERT INTO ingestion_purchaseorderline
    (purchase_order_id, line_number, material_id, quantity, unit_price, total_price, currency, created_at, updated_at)
    SELECT po.id, l, m, q, p, q * p, po.currency, now(), now()
    FROM ingestion_purchaseorder po
    CROSS JOIN generate_series(1, 10) l
    CROSS JOIN LATERAL (SELECT 1 + ((po.id * 31 + l * 17) % 5000) AS m, 1 + (po.id + l) % 20 AS q) a
    CROSS JOIN LATERAL (SELECT round((5 + m % 97) * (1 + ((po.id * l) % 13 - 6) / 100.0), 2) AS p) b;
ANALYZE;
"""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="measure the lines already there")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    if connection.vendor != "postgresql":
        sys.exit("bench/analytics.py needs PostgreSQL (BENCH_DATABASE_URL or DATABASE_URL)")
    settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
    setup_test_environment()
    call_command("migrate", verbosity=0)
    from ingestion.models import Material, PurchaseOrderLine

    if not args.keep:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(FILL.replace("%(orders)s", str(args.lines // 10)))
        print(f"filled {PurchaseOrderLine.objects.count():,} lines in {time.perf_counter() - started:.1f} s")
    user, _ = get_user_model().objects.get_or_create(username="bench-analytics")
    client = Client()
    client.force_login(user)
    material = Material.objects.get(code="M1")
    urls = [
        "/analytics/",
        "/analytics/spend.json?by=supplier",
        "/analytics/spend.json?by=category",
        "/analytics/spend.json?by=month&from=2025-01-01&to=2025-06-30",
        f"/analytics/materials/{material.pk}/",
        f"/analytics/materials/{material.pk}/prices.json",
        f"/analytics/materials/{material.pk}/suppliers.json",
        "/analytics/outliers.json?page=1",
        "/analytics/outliers/",
        "/analytics/variance.json",
        "/analytics/variance/",
        "/browse/suppliers/",
        "/browse/materials/?q=M12",
        "/browse/lines/?supplier=7",
    ]

    def timed(call) -> list[float]:
        for _ in range(2):
            call()
        out = []
        for _ in range(args.runs):
            started = time.perf_counter()
            call()
            out.append((time.perf_counter() - started) * 1000)
        return out

    def count() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM ingestion_purchaseorderline")
            cursor.fetchone()

    results = {"SELECT count(*) of the lines": timed(count)}
    for url in urls:

        def get(url=url) -> None:
            response = client.get(url, secure=True)
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}")

        results[url] = timed(get)
    print(f"\n{'what':<62} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in results.items():
        print(f"{name:<62} {statistics.median(values):>8.1f} {p95(values):>8.1f}")
    out = ROOT / "bench" / "analytics_results.json"
    out.write_text(
        json.dumps(
            {
                "lines": PurchaseOrderLine.objects.count(),
                "runs": args.runs,
                "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "p50_ms": {k: round(statistics.median(v), 1) for k, v in results.items()},
                "p95_ms": {k: round(p95(v), 1) for k, v in results.items()},
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
