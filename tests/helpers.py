"""What tests share: waiting for an upload, the real public files, small purchase-order
files made on the spot, and where the browser is. Tests import from here, never from
conftest.py (pytest loads conftest files itself; importing them again makes a second copy)."""

from __future__ import annotations

import csv
import os
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# --- the real public files ------------------------------------------------------------------

# shared/ lies beside the repository in CI; anyone else points INTAKE_REAL_DATA at the folder.
REAL_DATA = Path(os.environ.get("INTAKE_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
REQUIRE_REAL_DATA = os.environ.get("INTAKE_REQUIRE_REAL_DATA") == "1"


def real_file(name: str) -> Path:
    """A real public file, or a skip that says where to put it. CI sets
    INTAKE_REQUIRE_REAL_DATA=1, under which a missing file fails instead: CI never skips."""
    path = REAL_DATA / name
    if not path.is_file():
        reason = (
            f"the real public file {name} is not in {REAL_DATA}: put the shared data folder beside "
            "the repository (../shared/data/real/) or set INTAKE_REAL_DATA to the folder that holds it"
        )
        if REQUIRE_REAL_DATA:
            pytest.fail(reason + " (INTAKE_REQUIRE_REAL_DATA=1 forbids skipping)")
        pytest.skip(reason)
    return path


# --- the browser ----------------------------------------------------------------------------

CHROMIUM = os.environ.get("INTAKE_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("INTAKE_REQUIRE_BROWSER") == "1"


def chromium_or_skip() -> str:
    """The Chromium the browser tests drive, or a skip that says how to get one. CI sets
    INTAKE_REQUIRE_BROWSER=1 (and installs Debian's chromium), under which it fails instead."""
    if not Path(CHROMIUM).exists():
        reason = (
            f"no Chromium at {CHROMIUM}: install Debian's package (`apt-get install chromium`) or point "
            "INTAKE_CHROMIUM at a Chromium binary (for example one from `playwright install chromium`)"
        )
        if REQUIRE_BROWSER:
            pytest.fail(reason + " (INTAKE_REQUIRE_BROWSER=1 forbids skipping)")
        pytest.skip(reason)
    return CHROMIUM


def drop_files(page, files: dict[str, str | int]) -> None:
    """A real drop on the dashboard: a DataTransfer holding File objects, dispatched on the
    drop zone. A str value is the file's text; an int is a size, for that many zero bytes."""
    page.evaluate(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, content] of Object.entries(files)) {
                const body = typeof content === 'number' ? new Uint8Array(content) : content;
                transfer.items.add(new File([body], name, {type: name.endsWith('.csv') ? 'text/csv' : 'application/octet-stream'}));
            }
            const zone = document.getElementById('drop-zone');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        files,
    )


def card_locator(page, upload_id=None, *, name=None):
    """An upload card on a browser page, by upload id or by file name."""
    if upload_id:
        return page.locator(f'.upload-card[data-upload-id="{upload_id}"]')
    return page.locator(".upload-card", has=page.locator(".file-name", has_text=name))


# --- uploads --------------------------------------------------------------------------------


def wait_for_upload(upload, *, timeout: float = 120, statuses=None):
    """Wait until an upload reaches a finished state or waits for its owner (or one of
    `statuses`); return it fresh. A time-out here is a hang, not a speed check."""
    from ingestion.models import Upload

    statuses = set(statuses or Upload.FINISHED_STATUSES + Upload.WAITING_STATUSES)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        upload.refresh_from_db()
        if upload.status in statuses:
            return upload
        time.sleep(0.05)
    raise AssertionError(f"upload {upload.pk} stuck in {upload.status} ({upload.processed_rows}/{upload.total_rows})")


def wait_for_score(upload, *, timeout: float = 120):
    """Wait until a completed upload's quality score is final (its price outliers checked,
    by the task the load sends); return the UploadQuality. A time-out here is a hang."""
    from analytics.models import UploadQuality

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = UploadQuality.objects.filter(upload_id=upload.pk, prices_checked=True).first()
        if found is not None:
            upload.refresh_from_db()
            return found
        time.sleep(0.05)
    raise AssertionError(f"upload {upload.pk}: its price outliers were never checked")


def database_url_for(settings_dict: dict) -> str:
    """The URL of the database the tests run on, for processes the tests start."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


# --- small purchase-order files -------------------------------------------------------------

HEADER = [
    "Supplier Code",
    "Supplier Name",
    "Material Number",
    "Item Description",
    "UOM",
    "PO Number",
    "PO Date",
    "Qty",
    "Unit Price",
    "Total Price",
    "Currency",
]


def order_rows(rows: int, *, price_factor: int = 1, suppliers: int = 20, materials: int = 50, prefix: str = "PO"):
    for i in range(rows):
        quantity = i % 7 + 1
        price = (i % 13 + 1) * price_factor
        yield [
            f"S{i % suppliers:04d}",
            f"Supplier {i % suppliers}",
            f"M{i % materials:05d}",
            f"Material {i % materials}",
            "EA",
            f"{prefix}-{i // 10:06d}",
            "2024-03-15",
            str(quantity),
            f"{price}.25",
            f"{quantity * price + quantity * 0.25:.2f}",
            "USD",
        ]


def orders_csv_text(rows: int, **options) -> str:
    lines = [",".join(HEADER)] + [",".join(row) for row in order_rows(rows, **options)]
    return "\n".join(lines) + "\n"


def write_orders(path: Path, rows: int, **options) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(order_rows(rows, **options))
    return path


# --- loaded data made directly (analytics and browse tests) ---------------------------------


def price_rows(*, seed: int = 7, count: int = 240) -> list[dict]:
    """Purchase-order lines with known shapes: three suppliers, four materials (one bought
    in two currencies), six months of order dates, a few prices far from their material's
    usual one, a material whose prices never vary, and lines without an order date."""
    import random
    from datetime import date
    from decimal import Decimal

    rng = random.Random(seed)
    base = {"M1": Decimal("10.00"), "M2": Decimal("250.00"), "M3": Decimal("3.50"), "M4": Decimal("42.00")}
    rows = []
    for i in range(count):
        material = ["M1", "M2", "M3", "M4"][i % 4]
        supplier = ["S1", "S2", "S3"][(i // 4) % 3]
        currency = "EUR" if material == "M2" and i % 3 == 0 else "USD"
        month = 1 + (i * 7) % 6
        day = 1 + (i * 11) % 28
        order_date = None if i % 37 == 5 else date(2024, month, day)
        if material == "M4":
            unit_price = base["M4"]  # no spread: never an outlier
        else:
            factor = Decimal(100 + rng.randint(-8, 8) + (month - 1) * 2) / 100
            unit_price = (base[material] * factor).quantize(Decimal("0.01"))
            if i in (17, 101, 202):
                unit_price = (unit_price * 6).quantize(Decimal("0.01"))  # far above
        quantity = Decimal(rng.randint(1, 40))
        rows.append(
            {
                "po_number": f"PO-{i // 3:04d}",
                "line_number": i % 3 + 1,
                "supplier": supplier,
                "material": material,
                "currency": currency,
                "order_date": order_date,
                "quantity": quantity,
                "unit_price": unit_price,
            }
        )
    # A purchase order has one supplier and one order date: the first row of each PO decides.
    first: dict[str, dict] = {}
    for row in rows:
        head = first.setdefault(row["po_number"], row)
        row["supplier"], row["order_date"] = head["supplier"], head["order_date"]
    return rows


CATEGORIES = {"M1": "Fasteners", "M2": "Steel", "M3": "Fasteners", "M4": ""}
UNITS = {"M1": "EA", "M2": "KG", "M3": "BOX", "M4": "EA"}


def create_lines(rows: list[dict], *, upload=None) -> None:
    """Write rows of price_rows() shape straight into the procurement tables."""
    from ingestion.models import Material, PurchaseOrder, PurchaseOrderLine, Supplier

    suppliers = {
        code: Supplier.objects.get_or_create(key=code, defaults={"code": code, "name": f"Supplier {code}"})[0]
        for code in sorted({r["supplier"] for r in rows})
    }
    materials = {
        code: Material.objects.get_or_create(
            key=code,
            defaults={
                "code": code,
                "description": f"Material {code}",
                "category": CATEGORIES.get(code, ""),
                "unit_of_measure": UNITS.get(code, "EA"),
            },
        )[0]
        for code in sorted({r["material"] for r in rows})
    }
    orders: dict[str, PurchaseOrder] = {}
    for row in rows:
        if row["po_number"] not in orders:
            orders[row["po_number"]] = PurchaseOrder.objects.get_or_create(
                po_number=row["po_number"],
                defaults={
                    "supplier": suppliers[row["supplier"]],
                    "order_date": row["order_date"],
                    "currency": row["currency"],
                },
            )[0]
    PurchaseOrderLine.objects.bulk_create(
        [
            PurchaseOrderLine(
                purchase_order=orders[row["po_number"]],
                line_number=row["line_number"],
                material=materials[row["material"]],
                quantity=row["quantity"],
                unit_price=row["unit_price"],
                total_price=row["quantity"] * row["unit_price"],
                currency=row["currency"],
                upload=upload,
            )
            for row in rows
        ]
    )


def write_changed_orders(
    path: Path, rows: int, *, prices: dict[int, str], dates: dict[int, str] | None = None, **options
) -> Path:
    """`write_orders`' file with the unit price of the rows in `prices` (index: new price)
    changed, and their total with it, so the change is the price alone; and the PO date of
    the rows in `dates`."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i, row in enumerate(order_rows(rows, **options)):
            if i in prices:
                row[8] = prices[i]
                row[9] = str(Decimal(row[7]) * Decimal(prices[i]))
            if dates and i in dates:
                row[6] = dates[i]
            writer.writerow(row)
    return path


def order_price(index: int) -> Decimal:
    """The unit price `order_rows` gives row `index` (price_factor 1)."""
    return Decimal(f"{index % 13 + 1}.25")


# --- the real SCMS file's mapping (its headers are not an ERP's usual ones) -------------------

SCMS = "Supply_Chain_Shipment_Pricing_Data.csv"
SCMS_MAPPING = {
    "vendor": "supplier_name",
    "item description": "material_description",
    "po / so #": "po_number",
    "line item quantity": "quantity",
    "pack price": "unit_price",
    "line item value": "total_price",
    "po sent to vendor date": "order_date",
}


# --- browser pages under the strict Content-Security-Policy ---------------------------------

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
RECORD_CSP_VIOLATIONS = """
(() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) =>
    window.__csp.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sample || ''}`));
})();
"""


def enforce_csp(context, seen: list[str]) -> None:
    """Every page the browser loads carries the strict policy (the server's own, if it sends
    one, is kept), whatever the server's settings."""

    def handle(route):
        if route.request.resource_type != "document":
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        headers = dict(response.headers)
        headers.setdefault("content-security-policy", STRICT_CSP)
        seen.append(headers["content-security-policy"])
        route.fulfill(response=response, headers=headers)

    context.route("**/*", handle)


def reset_broker_pools(app) -> None:
    app._pool = None  # kombu keeps one pool per broker URL: the next send takes the right one
    app.amqp._producer_pool = None


@contextmanager
def celery_broker(url: str):
    """Point this process's Celery app (what create_upload sends through) at another broker."""
    from config.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = url
    reset_broker_pools(app)
    try:
        yield app
    finally:
        app.conf.broker_url = previous
        reset_broker_pools(app)


# --- the session's worker -------------------------------------------------------------------


def wait_until_worker_idle(worker, *, timeout: float = 30) -> bool:
    """Drop the tasks still queued and wait until `worker` runs and holds none; False if it
    is still busy after `timeout` or does not answer.

    A completed load sends the worker more work (its price check, the analytics figures);
    a test's database must not be flushed under that work, or the flush can deadlock with it
    and the next test starts on this one's rows. What is still queued belongs to a test
    that has ended: it is purged, not waited for."""
    from config.celery import app

    app.control.purge()
    inspect = app.control.inspect(destination=[worker.name], timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = [inspect.active(), inspect.reserved()]
        if any(reply is None for reply in held):
            return False  # the worker does not answer (a test stopped or killed it)
        if not any(tasks for reply in held for tasks in reply.values()):
            return True
        time.sleep(0.05)
    return False
