"""The analytics pages' and JSON endpoints' latency over a million lines, beside a plain
`SELECT count(*)` of the lines (the floor), after a first load and after a reload that
changes a tenth of the prices.

    BENCH_DATABASE_URL=postgres://... .venv/bin/python bench/analytics.py [--lines 1000000] [--runs 20] [--keep]

It needs PostgreSQL (`BENCH_DATABASE_URL`, else `DATABASE_URL`); the procurement tables of
that database are EMPTIED and filled with generated lines straight in SQL (200 suppliers,
5,000 materials, 100,000 purchase orders over two years, a tenth in EUR; prices spread a few
percent around each material's own). Then, as a fresh install does, `refresh_analytics`
builds the summaries (timed). Every URL is asked `--runs` times in process (Django's test
client: the view, its SQL and the template, no network) after two warm-up requests.

The reload: one upload rewrites a tenth of the lines with new prices (+10%; one in a
thousand of them eight times the price, outliers), recorded as line versions, in SQL as the
line writers do; the analytics refresh that `lines_changed` queues for it is run and timed
(analytics.summaries.refresh for that upload, what the worker's task runs), and every URL
is measured again. p50 and p95 per URL and phase are printed and appended to
bench/analytics_results.json."""

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


RELOAD = """
WITH old AS (
    SELECT l.id, l.purchase_order_id, l.line_number, l.material_id, l.quantity, l.unit_price, l.total_price,
           l.currency, l.updated_at, l.upload_id
    FROM ingestion_purchaseorderline l WHERE l.id %% 10 = 0
), changed AS (
    UPDATE ingestion_purchaseorderline l
    SET unit_price = CASE WHEN l.id %% 1000 = 0 THEN l.unit_price * 8 ELSE round(l.unit_price * 1.1, 2) END,
        total_price = l.quantity * CASE WHEN l.id %% 1000 = 0 THEN l.unit_price * 8 ELSE round(l.unit_price * 1.1, 2) END,
        upload_id = %(upload)s, updated_at = now()
    WHERE l.id %% 10 = 0
    RETURNING l.id, l.purchase_order_id, l.line_number, l.material_id, l.quantity, l.unit_price, l.total_price,
              l.currency
)
-- As the line writers record a line's first change: the state it replaced, then the new one.
INSERT INTO ingestion_lineversion
    (line_id, purchase_order_id, line_number, material_id, quantity, unit_price, total_price, currency,
     order_date, kind, valid_from, valid_to, upload_id)
SELECT o.id, o.purchase_order_id, o.line_number, o.material_id, o.quantity, o.unit_price, o.total_price,
       o.currency, po.order_date, 'created', o.updated_at, now(), o.upload_id
FROM old o JOIN ingestion_purchaseorder po ON po.id = o.purchase_order_id
UNION ALL
SELECT c.id, c.purchase_order_id, c.line_number, c.material_id, c.quantity, c.unit_price, c.total_price,
       c.currency, po.order_date, 'updated', now(), NULL, %(upload)s
FROM changed c JOIN ingestion_purchaseorder po ON po.id = c.purchase_order_id
"""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="measure the lines already there (no fill, no rebuild)")
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
    from analytics import summaries
    from ingestion.models import Material, PurchaseOrderLine, Upload

    figures: dict[str, float] = {}
    if not args.keep:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(FILL.replace("%(orders)s", str(args.lines // 10)))
        print(f"filled {PurchaseOrderLine.objects.count():,} lines in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        call_command("refresh_analytics", verbosity=0)
        figures["refresh_analytics_s"] = round(time.perf_counter() - started, 1)
        print(f"refresh_analytics (every summary) in {figures['refresh_analytics_s']} s")
    user, _ = get_user_model().objects.get_or_create(username="bench-analytics")
    client = Client()
    client.force_login(user)
    material = Material.objects.get(code="M1")
    urls = [
        "/analytics/",
        "/analytics/spend.json?by=supplier",
        "/analytics/spend.json?by=category",
        "/analytics/spend.json?by=month",
        "/analytics/spend.json?by=month&from=2025-01-01&to=2025-06-30",
        "/analytics/spend.json?by=supplier&currency=EUR&category=Category%207",
        f"/analytics/materials/{material.pk}/",
        f"/analytics/materials/{material.pk}/prices.json",
        f"/analytics/materials/{material.pk}/suppliers.json",
        "/analytics/outliers/",
        "/analytics/outliers.json?page=1",
        "/analytics/outliers.json?page=2&supplier=7",
        "/analytics/variance/",
        "/analytics/variance.json",
        "/analytics/variance.json?supplier=7",
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

    def measure() -> dict[str, list[float]]:
        assert summaries.available()
        results = {"SELECT count(*) of the lines": timed(count)}
        for url in urls:

            def get(url=url) -> None:
                response = client.get(url, secure=True)
                if response.status_code != 200:
                    raise SystemExit(f"{url} answered {response.status_code}")

            results[url] = timed(get)
        return results

    phases = {"first load": measure()}
    upload = Upload.objects.create(
        owner=user, original_name="reload-10pct.csv", file="uploads/reload-10pct.csv", status="completed"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(RELOAD, {"upload": upload.pk})
        cursor.execute("ANALYZE ingestion_purchaseorderline")
    print(
        f"reload: {PurchaseOrderLine.objects.filter(upload=upload).count():,} lines changed in "
        f"{time.perf_counter() - started:.1f} s"
    )
    summaries.mark_pending()
    started = time.perf_counter()
    summaries.refresh(upload_id=upload.pk, queued=True)
    figures["reload_refresh_s"] = round(time.perf_counter() - started, 1)
    print(f"the reload's analytics refresh in {figures['reload_refresh_s']} s")
    phases["after the reload"] = measure()

    names = list(phases["first load"])
    print(f"\n{'what':<66} {'first load':>19} {'after reload':>19}")
    print(f"{'':<66} {'p50 ms':>9} {'p95 ms':>9} {'p50 ms':>9} {'p95 ms':>9}")
    for name in names:
        cells = []
        for phase in phases.values():
            cells += [f"{statistics.median(phase[name]):>9.1f}", f"{p95(phase[name]):>9.1f}"]
        print(f"{name:<66} {' '.join(cells)}")
    worst = max(p95(values) for phase in phases.values() for name, values in phase.items() if name.startswith("/"))
    print(f"\nworst p95 of a page or endpoint: {worst:.1f} ms (target: 200 ms)")
    out = ROOT / "bench" / "analytics_results.json"
    try:
        history = json.loads(out.read_text())
    except (OSError, ValueError):
        history = {}
    runs = history["runs"] if isinstance(history.get("runs"), list) else ([history] if history else [])
    runs.append(
        {
            "lines": PurchaseOrderLine.objects.count(),
            "runs": args.runs,
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "load_average": os.getloadavg(),
            **figures,
            "phases": {
                phase: {
                    "p50_ms": {k: round(statistics.median(v), 1) for k, v in results.items()},
                    "p95_ms": {k: round(p95(v), 1) for k, v in results.items()},
                }
                for phase, results in phases.items()
            },
        }
    )
    out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
