"""The sample generator: deterministic, the promised shape, and honest about its mess."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest
from django.core.management import call_command

from ingestion.sample import HEADER, INVALID_KINDS, iter_chunks, write_sample


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_rows(path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize("messy", [False, True])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, messy):
    a = write_sample(tmp_path / "a.csv", rows=3000, seed=7, messy=messy)
    b = write_sample(tmp_path / "b.csv", rows=3000, seed=7, messy=messy)
    write_sample(tmp_path / "c.csv", rows=3000, seed=8, messy=messy)
    assert digest(tmp_path / "a.csv") == digest(tmp_path / "b.csv")
    assert digest(tmp_path / "a.csv") != digest(tmp_path / "c.csv")
    assert a == b


def test_chunks_keep_purchase_orders_whole():
    pieces = list(iter_chunks(rows=2500, seed=3, chunk_rows=500))
    assert [len(p) for p in pieces] == [500] * 5
    # PO numbers and line numbers follow the row position, however the rows are chunked.
    whole = [row for chunk in iter_chunks(rows=2500, seed=3, chunk_rows=10_000) for row in chunk]
    flat = [row for chunk in pieces for row in chunk]
    assert [r[6:8] for r in flat] == [r[6:8] for r in whole]
    assert all(chunk[0][7] == "1" for chunk in pieces)


@pytest.mark.parametrize("rows", [0, 1, 9, 10, 11, 1234])
def test_row_count_and_header(tmp_path, rows):
    stats = write_sample(tmp_path / "s.csv", rows=rows, seed=1)
    data = read_rows(tmp_path / "s.csv")
    assert data[0] == HEADER
    assert len(data) == rows + 1
    assert stats.rows == stats.lines == rows and stats.invalid_rows == 0


def test_clean_shape_suppliers_materials_and_purchase_orders(tmp_path):
    stats = write_sample(tmp_path / "s.csv", rows=20_000, seed=2)
    rows = read_rows(tmp_path / "s.csv")[1:]
    suppliers = {r[0] for r in rows}
    materials = {r[2] for r in rows}
    pos = {r[6] for r in rows}
    assert len(pos) == stats.purchase_orders == 2000  # ten lines each
    assert 0.8 * 100 <= len(suppliers) == stats.suppliers <= 100  # about one per 200 rows
    assert 0.8 * 1000 <= len(materials) == stats.materials <= 1000  # about one per 20 rows
    lines = {}
    for r in rows:
        lines.setdefault(r[6], []).append(int(r[7]))
        # A purchase order has one supplier; totals are quantity x unit price to the cent.
        from decimal import Decimal

        assert abs(Decimal(r[9]) * Decimal(r[10]) - Decimal(r[11])) <= Decimal("0.005")
    assert all(sorted(numbers) == list(range(1, 11)) for numbers in lines.values())
    po_suppliers = {}
    for r in rows:
        po_suppliers.setdefault(r[6], set()).add(r[0])
    assert all(len(s) == 1 for s in po_suppliers.values())


def test_messy_has_about_one_percent_invalid_rows_of_every_kind(tmp_path):
    stats = write_sample(tmp_path / "m.csv", rows=50_000, seed=4, messy=True)
    assert 0.007 <= stats.invalid_rows / stats.rows <= 0.013
    assert set(stats.invalid_by_kind) == set(INVALID_KINDS)
    assert sum(stats.invalid_by_kind.values()) == stats.invalid_rows
    assert stats.lines == stats.valid_rows == stats.rows - stats.invalid_rows
    assert stats.warnings == sum(stats.warnings_by_kind.values()) > 0
    rows = read_rows(tmp_path / "m.csv")[1:]
    assert sum(1 for r in rows if r[6] == "") == stats.invalid_by_kind["missing_po_number"]
    assert sum(1 for r in rows if r[9] == "0") == stats.invalid_by_kind["zero_quantity"]
    assert sum(1 for r in rows if r[11].startswith("(")) == stats.warnings_by_kind["negative_total"]


def test_messy_carries_the_usual_mess(tmp_path):
    write_sample(tmp_path / "m.csv", rows=5000, seed=5, messy=True)
    text = (tmp_path / "m.csv").read_bytes()
    rows = read_rows(tmp_path / "m.csv")[1:]
    prices = [r[10] for r in rows] + [r[11] for r in rows]
    dates = [r[8] for r in rows]
    assert any(p.startswith("$") and "," in p for p in prices)  # $1,234.56
    assert any(p.startswith("USD ") for p in prices)
    assert any(p.startswith("(") and p.endswith(")") for p in prices)
    assert any("/" in d for d in dates) and any(d.isdigit() for d in dates)  # 9/11/2014, Excel serial
    assert any(len(d.split("-")) == 3 and d.split("-")[1].isalpha() for d in dates)  # 2-Jun-06
    assert any(d == "" for d in dates) and any(r[12] == "" for r in rows)  # blank optional cells
    assert any(r[0].endswith(" ") or r[1].startswith(" ") for r in rows)  # stray spaces
    assert b"\r\n" in text  # Windows line ends, as Excel writes them


def test_xlsx_streams_and_matches_csv_values(tmp_path):
    from openpyxl import load_workbook

    stats = write_sample(tmp_path / "s.xlsx", rows=300, seed=6)
    write_sample(tmp_path / "s.csv", rows=300, seed=6)
    sheet = load_workbook(tmp_path / "s.xlsx", read_only=True).active
    cells = list(sheet.iter_rows(values_only=True))
    assert list(cells[0]) == HEADER and len(cells) == 301 == stats.rows + 1
    csv_rows = read_rows(tmp_path / "s.csv")
    assert cells[1][6] == csv_rows[1][6] and cells[1][8].date().isoformat() == csv_rows[1][8]


def test_bad_extension_is_refused(tmp_path):
    with pytest.raises(ValueError):
        write_sample(tmp_path / "s.json", rows=10)


def test_make_sample_command_prints_expected_counts(tmp_path):
    out = io.StringIO()
    call_command(
        "make_sample",
        "--rows",
        "2000",
        "--out",
        str(tmp_path / "x.csv"),
        "--seed",
        "3",
        "--messy",
        "--json",
        stdout=out,
    )
    import json

    reported = json.loads(out.getvalue())
    again = write_sample(tmp_path / "y.csv", rows=2000, seed=3, messy=True)
    assert reported["invalid_rows"] == again.invalid_rows and reported["rows"] == 2000
    assert digest(tmp_path / "x.csv") == digest(tmp_path / "y.csv")


def test_make_sample_command_refuses_bad_arguments(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="csv or .xlsx"):
        call_command("make_sample", "--rows", "10", "--out", str(tmp_path / "x.txt"))
    with pytest.raises(CommandError, match="no such directory"):
        call_command("make_sample", "--rows", "10", "--out", str(tmp_path / "nope" / "x.csv"))
