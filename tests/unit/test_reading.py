"""Reading files into batches of text (no database needed)."""

import datetime as dt

import pandas as pd
import pytest
from openpyxl import Workbook

from ingestion.reading import FileError, open_table


def read_all(path, name=None, batch_rows=2):
    table = open_table(path, name=name or path.name, batch_rows=batch_rows)
    batches = list(table.batches)
    return table, pd.concat([b.frame for b in batches]), batches


def test_xlsx_finds_the_header_below_a_title_on_a_later_sheet(tmp_path):
    workbook = Workbook()
    notes = workbook.active
    notes.title = "Notes"
    notes.append(["Exported from ERP"])
    sheet = workbook.create_sheet("Lines")
    sheet.append(["Purchase order lines, March"])
    sheet.append([])
    sheet.append(["Vendor", "SKU", "PO Number", "Qty", "Unit Price", "PO Date"])
    sheet.append(["Acme", "M-1", 4500012345, 3.0, 2.5, dt.datetime(2024, 3, 5)])
    sheet.append(["Acme", "M-2", 4500012345, 1, 10, dt.date(2024, 3, 6)])
    sheet.append(["Beta", "M-3", "PO-7", 2, 0.1, "7/3/2024"])
    path = tmp_path / "orders.xlsx"
    workbook.save(path)
    table, frame, batches = read_all(path)
    assert table.headers == ["Vendor", "SKU", "PO Number", "Qty", "Unit Price", "PO Date"]
    assert "Lines" in table.description
    assert list(frame["PO Number"]) == ["4500012345", "4500012345", "PO-7"]
    assert list(frame["Qty"]) == ["3", "1", "2"]
    assert list(frame["Unit Price"]) == ["2.5", "10", "0.1"]
    assert list(frame["PO Date"])[:2] == ["2024-03-05", "2024-03-06"]
    assert batches[0].first_row == 4 and list(frame.index) == [4, 5, 6]


def test_ods_is_read(tmp_path):
    path = tmp_path / "orders.ods"
    pd.DataFrame({"Vendor": ["Acme"], "SKU": ["M-1"], "PO": ["P1"], "Qty": [2], "Price": [1.25]}).to_excel(
        path, engine="odf", index=False
    )
    table, frame, _ = read_all(path)
    assert table.headers == ["Vendor", "SKU", "PO", "Qty", "Price"]
    assert frame.iloc[0].tolist() == ["Acme", "M-1", "P1", "2", "1.25"]


def test_csv_delimiters_are_sniffed(tmp_path):
    for delimiter in [",", ";", "\t", "|"]:
        path = tmp_path / "d.csv"
        path.write_text(
            delimiter.join(["Vendor", "SKU", "PO", "Qty", "Price"])
            + "\n"
            + delimiter.join(["A", "B", "C", "1", "2"])
            + "\n"
        )
        table, frame, _ = read_all(path)
        assert table.headers == ["Vendor", "SKU", "PO", "Qty", "Price"], delimiter
        assert frame.iloc[0].tolist() == ["A", "B", "C", "1", "2"]


def test_csv_quoted_fields_with_commas_and_line_breaks_and_bom(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(
        '\ufeffVendor,Item Description,PO,Qty,Price\r\n"Acme, Inc.","Bolt\r\nM8, zinc",P1,1,2\r\nBeta,Nut,P2,3,4\r\n'.encode(
            "utf-8"
        )
    )
    table, frame, _ = read_all(path, batch_rows=10)
    assert table.headers[0] == "Vendor"
    assert frame.iloc[0]["Vendor"] == "Acme, Inc."
    assert frame.iloc[0]["Item Description"] == "Bolt\r\nM8, zinc"
    assert list(frame.index) == [2, 3]


def test_csv_with_a_title_line_above_the_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Report generated 2024-01-01\nVendor,SKU,PO,Qty,Price\nA,B,C,1,2\n")
    table, frame, batches = read_all(path)
    assert table.headers == ["Vendor", "SKU", "PO", "Qty", "Price"]
    assert batches[0].first_row == 3


def test_utf16_export_is_read(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes("Vendor\tSKU\tPO\tQty\tPrice\r\nZoë\tB\tC\t1\t2\r\n".encode("utf-16"))
    table, frame, _ = read_all(path)
    assert frame.iloc[0]["Vendor"] == "Zoë"


def test_rows_with_too_many_fields_are_skipped_and_reported(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Vendor,SKU,PO,Qty,Price\nA,B,C,1,2\nA,B,C,1,2,extra,more\nA,B,C,1,3\n")
    _, frame, batches = read_all(path, batch_rows=10)
    assert len(frame) == 2
    assert batches[0].skipped and batches[0].skipped[0][0] == 3


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.csv", b"", "empty"),
        ("x.xls", b"not an xls", "not a valid Excel workbook"),
        ("x.csv", b"\xd0\xcf\x11\xe0" + b"\x00" * 64, "old Excel"),
    ],
)
def test_unreadable_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileError, match=message):
        open_table(path, name=name, batch_rows=10)


def test_large_xlsx_is_streamed_with_the_same_result(tmp_path, monkeypatch):
    from ingestion import reading

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Report"])
    sheet.append(["Vendor", "SKU", "PO Number", "Qty", "Unit Price", "PO Date"])
    for i in range(25):
        sheet.append(["Acme", f"M-{i}", 4500000000 + i, i + 1, 2.5, dt.datetime(2024, 3, 5)])
    path = tmp_path / "big.xlsx"
    workbook.save(path)
    whole_table, whole, _ = read_all(path, batch_rows=10)
    monkeypatch.setattr(reading, "XLSX_STREAM_BYTES", 0)
    streamed_table, streamed, batches = read_all(path, batch_rows=10)
    assert "streamed" in streamed_table.description and "streamed" not in whole_table.description
    assert streamed_table.headers == whole_table.headers
    assert streamed.equals(whole)
    assert [b.first_row for b in batches] == [3, 13, 23]


def test_only_a_file_with_a_nul_byte_has_its_values_searched_for_one(tmp_path):
    clean = tmp_path / "clean.csv"
    clean.write_bytes(b"supplier,material,po_number,quantity,unit_price\nS,M,PO1,1,2.50\n")
    table = open_table(clean, name=clean.name, batch_rows=10)
    assert table.nul_free
    assert [b.warnings for b in table.batches] == [[]]

    dirty = tmp_path / "dirty.csv"
    dirty.write_bytes(b"supplier,material,po_number,quantity,unit_price\nS\x00,M,PO1,1,2.50\n")
    table = open_table(dirty, name=dirty.name, batch_rows=10)
    assert not table.nul_free
    (batch,) = table.batches
    assert batch.frame["supplier"].tolist() == ["S"]
    assert [w[1:] for w in batch.warnings] == [
        ("supplier", "S", "A NUL byte (binary data) was removed from this value")
    ]

    utf16 = tmp_path / "unicode.txt"
    utf16.write_bytes("supplier\tmaterial\tpo_number\tquantity\tunit_price\nS\tM\tPO1\t1\t2.50\n".encode("utf-16"))
    assert not open_table(utf16, name="unicode.csv", batch_rows=10).nul_free  # half its bytes are NUL
