"""Hostile files through ingestion.reading: each is built on the spot (scripts/hostile_files.py)
and really read; what used to take gigabytes or abort the process is now a FileError that says
why and where, and ordinary files next to them still read."""

from __future__ import annotations

import struct
import zipfile

import pandas as pd
import pytest

from ingestion import reading, workbook_guard
from ingestion.reading import FileError, ReadLimits, open_table
from scripts import hostile_files as hostile


def read_all(path, *, limits=None, columns=None, batch_rows=1000):
    table = open_table(path, name=path.name, batch_rows=batch_rows, limits=limits)
    if columns is not None:
        table.use_columns(columns)
    batches = list(table.batches)
    return table, pd.concat([b.frame for b in batches]), batches


# --- 2. the .xlsx bomb --------------------------------------------------------------------


def test_a_workbook_that_unpacks_beyond_the_size_limit_is_refused_before_inflating(tmp_path):
    path = hostile.xlsx_bomb(tmp_path / "bomb.xlsx", rows=20_000)
    declared = sum(i.file_size for i in zipfile.ZipFile(path).infolist())
    limits = ReadLimits(max_uncompressed_bytes=1_000_000)
    with pytest.raises(FileError) as refused:
        open_table(path, name="bomb.xlsx", batch_rows=1000, limits=limits)
    assert str(refused.value).startswith(
        f"This .xlsx workbook unpacks to {workbook_guard._size(declared)} of data, more than the 976.6 KB allowed "
        "(INGEST_MAX_UNCOMPRESSED_BYTES)"
    )


def test_a_real_bomb_is_refused_by_its_ratio_at_the_default_settings(tmp_path):
    # 300,000 identical rows: 58 MB of XML in a zip of a quarter of a megabyte.
    path = hostile.xlsx_bomb(tmp_path / "bomb.xlsx", rows=300_000)
    sheet = zipfile.ZipFile(path).getinfo("xl/worksheets/sheet1.xml")
    ratio = sheet.file_size / sheet.compress_size
    assert ratio > 100 and sheet.file_size > workbook_guard.RATIO_FLOOR_BYTES
    with pytest.raises(FileError, match=r"part xl/worksheets/sheet1\.xml unpacks [0-9,]+ times its size") as refused:
        open_table(path, name="bomb.xlsx", batch_rows=1000)
    assert "more than the 100 times allowed (INGEST_MAX_COMPRESSION_RATIO)" in str(refused.value)


def test_more_rows_than_a_sheet_can_hold_are_refused(tmp_path):
    path = hostile.far_cell_xlsx(tmp_path / "deep.xlsx", ref="A1048577")
    with pytest.raises(
        FileError, match=r"Sheet 'Orders' has 1,048,577 rows and 5 columns, more than a worksheet can hold"
    ):
        open_table(path, name="deep.xlsx", batch_rows=1000, limits=ReadLimits(max_sheet_cells=10**12))


def test_a_sheet_longer_than_its_declared_size_is_refused_as_damaged(tmp_path):
    path = hostile.write_xlsx(tmp_path / "liar.xlsx", hostile.order_rows(50))
    _understate(path, "xl/worksheets/sheet1.xml", by=1000)
    with pytest.raises(
        FileError, match=r"damaged: its part xl/worksheets/sheet1\.xml does not match its declared size"
    ):
        open_table(path, name="liar.xlsx", batch_rows=1000)


def _understate(path, member, *, by):
    """Make the zip declare `member` `by` bytes smaller than it inflates to (local header and
    central directory alike), as a hostile zip would."""
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo(member)
    assert info.file_size < 0xFFFFFFFF and data[info.header_offset : info.header_offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, info.header_offset + 22, info.file_size - by)
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(member)] != member.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, info.file_size - by)
    path.write_bytes(bytes(data))


# --- 3. cells far away --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "rows", "cells"),
    [("XFD1048576", "1,048,576", "17,179,869,184"), ("XFD20000", "20,000", "327,680,000")],
)
def test_a_lone_far_cell_is_refused_naming_it(tmp_path, ref, rows, cells):
    path = hostile.far_cell_xlsx(tmp_path / "far.xlsx", ref=ref)
    assert path.stat().st_size < 3000
    with pytest.raises(FileError) as refused:
        open_table(path, name="far.xlsx", batch_rows=1000)
    assert str(refused.value) == (
        f"Sheet 'Orders' has values as far as column XFD and row {rows} (cell {ref}), so reading it means a grid "
        f"of {rows} rows x 16,384 columns ({cells} cells, more than the 10,000,000 allowed: INGEST_MAX_SHEET_CELLS). "
        "Delete what lies beyond your table (or move the table to a sheet of its own) and upload it again."
    )


def test_empty_formatted_cells_far_away_do_not_count(tmp_path):
    far = b'<row r="900000"><c r="XFD900000" s="0"/></row>'
    path = hostile.write_xlsx(tmp_path / "styled.xlsx", [*hostile.order_rows(2), far])
    table, frame, _ = read_all(path)
    assert table.headers == hostile.HEADER
    assert frame["PO Number"].tolist()[:2] == ["PO-0", "PO-0"]


def test_a_declared_dimension_of_the_whole_sheet_streams_only_the_used_columns(tmp_path, monkeypatch):
    path = hostile.declared_wide_xlsx(tmp_path / "wide.xlsx", rows=30)
    monkeypatch.setattr(reading, "XLSX_STREAM_BYTES", 0)  # the openpyxl path, as for files over 10 MB
    table, frame, batches = read_all(path, columns=["PO Number", "Qty"], batch_rows=10)
    assert "streamed" in table.description
    assert table.headers == hostile.HEADER
    assert table.estimated_rows == 1_048_575  # what the sheet declares: only a guess for the progress bar
    assert list(frame.columns) == ["PO Number", "Qty"]
    assert frame["Qty"].tolist() == [str(i % 9 + 1) for i in range(30)]
    assert [b.first_row for b in batches] == [2, 12, 22]


def test_a_shared_strings_count_beyond_its_size_is_refused(tmp_path):
    path = hostile.shared_strings_xlsx(tmp_path / "sst.xlsx")
    room = zipfile.ZipFile(path).getinfo("xl/sharedStrings.xml").file_size // 5 + 1  # '<si/>' is 5 bytes
    with pytest.raises(FileError) as refused:
        open_table(path, name="sst.xlsx", batch_rows=1000)
    assert str(refused.value) == (
        "This .xlsx workbook is damaged: its shared-strings table says it holds 1000000000000000000 strings "
        f"but has room for at most {room}."
    )


def test_a_panic_in_calamine_becomes_a_file_error(tmp_path, monkeypatch):
    # Without the guard's check, calamine itself reads the count and panics (a BaseException).
    path = hostile.shared_strings_xlsx(tmp_path / "sst.xlsx")
    monkeypatch.setattr(workbook_guard, "check_shared_strings", lambda archive: None)
    with pytest.raises(FileError) as refused:
        open_table(path, name="sst.xlsx", batch_rows=1000)
    assert str(refused.value) == (
        "This .xlsx workbook cannot be opened: the reader failed on its content (capacity overflow); "
        "the file is damaged or hostile."
    )
    assert type(refused.value.__cause__).__name__ == "PanicException"


def test_an_old_xls_with_a_value_at_its_last_cell_is_refused_before_its_grid_becomes_python(tmp_path):
    # The format caps a sheet at 65,536 x 256: calamine's grid of it is about 1 GB, once.
    path = hostile.far_cell_xls(tmp_path / "far.xls")
    with pytest.raises(FileError) as refused:
        open_table(path, name="far.xls", batch_rows=1000)
    assert str(refused.value).startswith(
        "Sheet 'Orders' has values as far as column IV and row 65,536 (cell IV65536), so reading it means a grid "
        "of 65,536 rows x 256 columns (16,777,216 cells"
    )


def test_an_old_xls_declaring_the_whole_sheet_reads_its_real_cells(tmp_path):
    # calamine sizes an .xls sheet by its cells, not by the DIMENSIONS record it declares.
    path = hostile.far_cell_xls(tmp_path / "declared.xls", row=0, column=0, declared=(65_536, 256))
    table, frame, _ = read_all(path)
    assert table.headers == hostile.HEADER
    assert frame.values.tolist() == [["Acme", "M-1", "P1", "2", "2.5"]]


def test_repeated_ods_cells_are_counted_as_what_they_stand_for(tmp_path):
    path = hostile.repeated_ods(tmp_path / "repeated.ods")
    assert path.stat().st_size < 1000
    with pytest.raises(FileError) as refused:
        open_table(path, name="repeated.ods", batch_rows=1000)
    assert str(refused.value).startswith(
        "Sheet 'Orders' has values as far as column XFD and row 5,001 (cell XFD5001), so reading it means a grid "
        "of 5,001 rows x 16,384 columns (81,936,384 cells"
    )


def test_ods_with_the_rest_of_the_sheet_as_empty_repeats_reads(tmp_path):
    # LibreOffice ends every row and the sheet with empty cells repeated to the sheet's edge.
    empty_cells = b'<table:table-cell table:number-columns-repeated="16379"/>'
    rows = [
        hostile.ods_row([*(hostile.ods_cell(h) for h in hostile.HEADER), empty_cells]),
        hostile.ods_row([*(hostile.ods_cell(v) for v in ["Acme", "M-1", "P1", 2, "2.50"]), empty_cells], repeat=3),
        b'<table:table-row table:number-rows-repeated="1048572"><table:table-cell '
        b'table:number-columns-repeated="16384"/></table:table-row>',
    ]
    path = hostile.write_ods(tmp_path / "libre.ods", rows)
    table, frame, _ = read_all(path)
    assert table.headers == hostile.HEADER
    assert frame.values.tolist() == [["Acme", "M-1", "P1", "2", "2.50"]] * 3
    assert list(frame.index) == [2, 3, 4]


# --- 4. wide CSV --------------------------------------------------------------------------


def test_a_csv_wider_than_the_column_limit_is_refused_before_parsing(tmp_path):
    path = hostile.wide_csv(tmp_path / "wide.csv", columns=20_000, rows=1_000)
    with pytest.raises(FileError) as refused:
        open_table(path, name="wide.csv", batch_rows=1000)
    assert str(refused.value) == (
        "The header row has 20,000 columns, more than the 500 allowed (INGEST_MAX_COLUMNS): keep the columns you "
        "load (supplier, material, PO, quantity, price, ...) and upload it again."
    )


def test_a_wide_csv_within_the_limit_is_read_for_the_chosen_columns_only(tmp_path):
    path = hostile.wide_csv(tmp_path / "wide.csv", columns=300, rows=25)
    table, frame, batches = read_all(path, columns=["Qty", "PO Number", "Qty"], batch_rows=10)
    assert len(table.headers) == 300
    assert list(frame.columns) == ["PO Number", "Qty"]
    assert frame.values.tolist() == [[f"PO-{i // 10}", str(i % 9 + 1)] for i in range(25)]
    assert [b.first_row for b in batches] == [2, 12, 22]


def test_a_wide_excel_header_is_refused(tmp_path):
    header = hostile.xml_row(1, [*hostile.HEADER, *(f"x{i}" for i in range(600))])
    path = hostile.write_xlsx(tmp_path / "wide.xlsx", [header, hostile.xml_row(2, hostile.order_values(0))])
    with pytest.raises(FileError, match=r"^Sheet 'Orders' has 605 columns, more than the 500 allowed"):
        open_table(path, name="wide.xlsx", batch_rows=1000)


# --- NUL bytes ----------------------------------------------------------------------------


def test_a_nul_byte_far_into_a_csv_is_removed_with_a_warning(tmp_path):
    path = hostile.nul_csv(tmp_path / "nul.csv", rows=20_000, nul_row=15_000)
    assert path.read_bytes().index(b"\x00") > 65536
    _, frame, batches = read_all(path, batch_rows=5000)
    assert [w for batch in batches for w in batch.warnings] == [
        (15_000, "Supplier", "Supplier", "A NUL byte (binary data) was removed from this value")
    ]
    assert [s for batch in batches for s in batch.skipped] == []
    assert len(frame) == 20_000
    assert not frame.map(lambda value: "\x00" in value).any().any()
    assert frame.loc[15_000].tolist() == ["Supplier", "M-48", "PO-1499", "5", "2.50"]


def test_a_nul_byte_in_an_unread_column_is_ignored(tmp_path):
    path = hostile.nul_csv(tmp_path / "nul.csv", rows=100, nul_row=50)
    _, frame, batches = read_all(path, columns=["PO Number", "Qty"], batch_rows=30)
    assert [w for batch in batches for w in batch.warnings] == []
    assert len(frame) == 100


def test_a_nul_byte_in_the_first_lines_is_removed_not_the_file_refused(tmp_path):
    path = tmp_path / "early.csv"
    path.write_bytes(b"Supplier,SKU,PO Number,Qty,Unit Price\nAc\x00me,M-1,P1,1,2\nBeta,M-2,P2,3,4\n")
    _, frame, batches = read_all(path)
    assert batches[0].warnings == [(2, "Supplier", "Acme", "A NUL byte (binary data) was removed from this value")]
    assert frame.values.tolist() == [["Acme", "M-1", "P1", "1", "2"], ["Beta", "M-2", "P2", "3", "4"]]
