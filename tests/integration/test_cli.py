"""`manage.py ingest` through a real Celery worker process and real Redis, on files from
the sample generator (which says what the pipeline must make of them)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ingestion.models import PurchaseOrderLine, Upload
from ingestion.sample import write_sample
from tests.helpers import ROOT, wait_for_upload

SUMMARY_KEYS = {
    "upload_id",
    "status",
    "total_rows",
    "imported_rows",
    "rejected_rows",
    "warnings",
    "created",
    "updated_lines",
    "error",
}


def price_outliers() -> int:
    import pandas as pd

    from ingestion.models import PurchaseOrderLine

    lines = pd.DataFrame(PurchaseOrderLine.objects.values("material_id", "currency", "unit_price"))
    lines["price"] = lines["unit_price"].astype(float)
    found = 0
    for _, group in lines.groupby(["material_id", "currency"]):
        median = group["price"].median()
        mad = (group["price"] - median).abs().median()
        if len(group) >= 5 and mad > 0:
            found += int(((0.6745 * (group["price"] - median) / mad).abs() > 3.5).sum())
    return found


def ingest_json(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("ingest", *args, "--json", stdout=out, stderr=io.StringIO())
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


@pytest.mark.usefixtures("live_worker")
def test_ingest_follows_a_messy_file_to_the_end_and_reports_json(user, tmp_path):
    path = tmp_path / "orders.csv"
    expected = write_sample(path, rows=3000, seed=11, messy=True)
    assert expected.invalid_rows > 0 and expected.warnings > 0

    [summary] = ingest_json(str(path), "--user", "alice")

    assert set(summary) >= SUMMARY_KEYS
    assert summary["status"] == "completed", summary["error"]
    assert summary["total_rows"] == 3000
    assert summary["imported_rows"] == expected.valid_rows
    assert summary["rejected_rows"] == expected.invalid_rows
    # The sample's own warnings, plus a warning for each unit price that is an outlier for
    # its material (modified z-score above 3.5), counted here with pandas over the lines.
    assert summary["warnings"] == expected.warnings + price_outliers()
    assert summary["created"] == {
        "suppliers": expected.suppliers,
        "materials": expected.materials,
        "purchase_orders": expected.purchase_orders,
        "lines": expected.lines,
    }
    assert summary["updated_lines"] == 0 and summary["error"] is None
    upload = Upload.objects.get(pk=summary["upload_id"])
    assert upload.owner == user and upload.original_name == "orders.csv" and upload.sha256
    assert PurchaseOrderLine.objects.filter(upload=upload).count() == expected.lines


@pytest.mark.usefixtures("live_worker")
def test_ingest_several_files_one_json_object_each_in_order(user, tmp_path):
    csv_path = write_sample_path(tmp_path / "a.csv", rows=500, seed=1)
    xlsx_path = write_sample_path(tmp_path / "b.xlsx", rows=200, seed=2)
    summaries = ingest_json(str(csv_path), str(xlsx_path), "--user", "alice", "--strict")
    assert [s["file"] for s in summaries] == ["a.csv", "b.xlsx"]
    assert all(s["status"] == "completed" for s in summaries), summaries
    assert summaries[0]["imported_rows"] == 500 and summaries[1]["imported_rows"] == 200
    assert Upload.objects.filter(strict=True).count() == 2


@pytest.mark.usefixtures("live_worker")
def test_loading_the_same_file_twice_creates_nothing_new(user, tmp_path):
    path = write_sample_path(tmp_path / "again.csv", rows=400, seed=3)
    [first] = ingest_json(str(path), "--user", "alice")
    [second] = ingest_json(str(path), "--user", "alice")
    assert first["created"]["lines"] == 400
    assert second["status"] == "completed"
    assert second["created"] == {"suppliers": 0, "materials": 0, "purchase_orders": 0, "lines": 0}
    assert PurchaseOrderLine.objects.count() == 400


@pytest.mark.usefixtures("live_worker")
def test_a_file_with_missing_columns_waits_for_its_mapping_and_the_command_exits_non_zero(user, tmp_path):
    path = tmp_path / "payments.csv"
    path.write_text("Supplier Name,Amount,Date\nACME,12.50,2024-01-02\n", encoding="utf-8")
    out = io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("ingest", str(path), "--user", "alice", "--json", stdout=out, stderr=io.StringIO())
    assert failure.value.returncode == 1
    assert "did not complete" in str(failure.value) and "payments.csv: needs_mapping" in str(failure.value)
    [summary] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert summary["status"] == "needs_mapping"
    assert summary["missing"] == ["material_code or material_description", "po_number", "quantity"]
    assert summary["ambiguous"] == {}
    assert summary["profile"] is None
    assert "the file has no PO number column" in summary["error"]


@pytest.mark.usefixtures("live_worker")
def test_ingest_with_a_named_profile_uses_its_columns(user, tmp_path):
    from ingestion.models import MappingProfile

    path = tmp_path / "de.csv"
    path.write_text("Lieferant,Artikel,Bestellung,Menge,Preis\nAcme,Bolt,B-1,10,0.25\n", encoding="utf-8")
    MappingProfile.objects.create(
        name="Lieferanten",
        signature="not-this-file",
        headers=["other"],
        mapping={
            "lieferant": "supplier_name",
            "artikel": "material_description",
            "bestellung": "po_number",
            "menge": "quantity",
            "preis": "unit_price",
        },
        currency="EUR",
    )
    out = io.StringIO()
    call_command(
        "ingest", str(path), "--user", "alice", "--profile", "Lieferanten", "--json", stdout=out, stderr=io.StringIO()
    )
    [summary] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (summary["status"], summary["imported_rows"], summary["profile"]) == ("completed", 1, "Lieferanten")
    assert PurchaseOrderLine.objects.get().currency == "EUR"
    with pytest.raises(CommandError, match="No mapping profile named 'Nope'"):
        call_command(
            "ingest", str(path), "--user", "alice", "--profile", "Nope", stdout=io.StringIO(), stderr=io.StringIO()
        )


@pytest.mark.usefixtures("live_worker")
def test_no_wait_returns_once_queued(user, tmp_path):
    path = write_sample_path(tmp_path / "queued.csv", rows=300, seed=4)
    [summary] = ingest_json(str(path), "--user", "alice", "--no-wait")
    assert summary["status"] == "queued"
    upload = Upload.objects.get(pk=summary["upload_id"])
    assert upload.task_id  # handed to Celery
    upload = wait_for_upload(upload)  # the worker takes it from there
    assert upload.status == Upload.Status.COMPLETED and upload.imported_rows == 300


@pytest.mark.usefixtures("live_worker")
def test_mapping_and_day_first_are_passed_to_the_upload(user, tmp_path):
    path = tmp_path / "vendor.csv"
    path.write_text("Vendor,Thing,Order Ref,How Many,Each,When\nACME,Bolt,PO-1,3,1.50,11/09/2014\n", encoding="utf-8")
    mapping = {
        "Thing": "material_description",
        "Order Ref": "po_number",
        "How Many": "quantity",
        "Each": "unit_price",
        "When": "order_date",
    }
    [summary] = ingest_json(str(path), "--user", "alice", "--mapping", json.dumps(mapping), "--day-first")
    assert summary["status"] == "completed", summary["error"]
    upload = Upload.objects.get(pk=summary["upload_id"])
    assert upload.explicit_header_to_field == mapping and upload.day_first is True
    line = PurchaseOrderLine.objects.select_related("purchase_order").get(upload=upload)
    assert line.purchase_order.order_date.isoformat() == "2014-09-11"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody"], "No user named 'nobody'"),
        (["--user", "alice", "--mapping", "{not json"], "--mapping is not valid JSON"),
        (["--user", "alice", "--mapping", "[1, 2]"], "must be a JSON object"),
        (["--user", "alice", "--mapping", '{"Vendor": "vendor"}'], "Unknown field 'vendor'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_queued(user, tmp_path, args, message):
    path = write_sample_path(tmp_path / "ok.csv", rows=10, seed=1)
    with pytest.raises(CommandError, match=message.replace("[", r"\[")):
        call_command("ingest", str(path), *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert Upload.objects.count() == 0


@pytest.mark.django_db
def test_missing_and_refused_files_are_refused_before_anything_is_queued(user, tmp_path):
    good = write_sample_path(tmp_path / "ok.csv", rows=10, seed=1)
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "data.json").write_text("{}")
    cases = [
        (tmp_path / "missing.csv", "no such file"),
        (tmp_path / "empty.csv", "the file is empty"),
        (tmp_path / "data.json", ".json files are not supported"),
        (tmp_path, "not a file"),
    ]
    for path, message in cases:
        with pytest.raises(CommandError, match=message):
            call_command("ingest", str(good), str(path), "--user", "alice", stdout=io.StringIO(), stderr=io.StringIO())
    assert Upload.objects.count() == 0


# --- the real command line, in its own process ------------------------------------------------


def manage(service_env, *args: str) -> subprocess.Popen:
    """`manage.py ingest` as a shell would run it in the foreground: SIGINT is Ctrl-C (a
    shell's background job, as CI's may be, starts with SIGINT ignored, and so would it)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "ingest", *args],
        cwd=ROOT,
        env=service_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.usefixtures("live_worker")
def test_exit_codes_of_the_real_command(user, tmp_path, service_env):
    good = write_sample_path(tmp_path / "good.csv", rows=200, seed=5)
    process = manage(service_env, str(good), "--user", "alice", "--json")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert json.loads(out)["status"] == "completed"
    assert "good.csv: done, 200 rows" in err

    bad = tmp_path / "bad.csv"
    bad.write_text("Vendor,SKU,PO,Qty,Price\n", encoding="utf-8")
    process = manage(service_env, str(bad), "--user", "alice")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "failed" in out and "CommandError" in err and "no data rows" in err


@pytest.mark.usefixtures("live_worker")
def test_ctrl_c_cancels_the_uploads_it_started_and_exits_130(user, tmp_path, service_env):
    path = write_sample_path(tmp_path / "big.csv", rows=150_000, seed=6)
    process = manage(service_env, str(path), "--user", "alice", "--json")
    deadline = time.monotonic() + 120
    upload = None
    while time.monotonic() < deadline:  # interrupt once the worker is into the file
        upload = Upload.objects.filter(original_name="big.csv").first()
        if upload and upload.status == Upload.Status.PROCESSING and upload.processed_rows > 0:
            break
        time.sleep(0.05)
    assert upload is not None and upload.status == Upload.Status.PROCESSING, "the load never started"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Interrupted: cancelling" in err
    upload = wait_for_upload(upload)
    assert upload.status == Upload.Status.CANCELLED
    assert json.loads(out)["status"] == "cancelled"
    assert PurchaseOrderLine.objects.filter(upload=upload).count() == 0


def write_sample_path(path: Path, **options) -> Path:
    write_sample(path, **options)
    return path
