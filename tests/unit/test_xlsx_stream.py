"""The streaming .xlsx reader (ingestion/xlsx_stream.py) against openpyxl's read-only reader,
the path it replaces: the same workbook gives the same rows of text, cell kind by cell kind,
whether a block of rows is read by the fast path or parsed whole."""

from __future__ import annotations

import datetime as dt
import zipfile

import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from ingestion import reading, xlsx_stream
from ingestion.reading import FileError, open_table

HEADER = ["Supplier", "SKU", "PO Number", "Qty", "Unit Price", "PO Date", "Note"]


def streamed(path, *, batch_rows=4, columns=None):
    table = open_table(path, name=path.name, batch_rows=batch_rows)
    assert "streamed" in table.description
    if columns is not None:
        table.use_columns(columns)
    batches = list(table.batches)
    return table, pd.concat([b.frame for b in batches]), batches


def openpyxl_rows(path, *, header_row=1):
    """What the former streaming path made of the sheet: openpyxl's read-only values, as text."""
    workbook = load_workbook(path, read_only=True, data_only=True)
    sheet = workbook.worksheets[0]
    rows = [[reading._cell_text(v) for v in row] for row in sheet.iter_rows(min_row=header_row, values_only=True)]
    workbook.close()
    while rows and not any(rows[-1]):
        rows.pop()  # rows with nothing but formatting, at the end
    return rows


def assert_same_as_openpyxl(path, *, header_row=1):
    expected = openpyxl_rows(path, header_row=header_row)
    table, frame, _ = streamed(path)
    headers = expected[0]
    while headers and not headers[-1]:
        headers = headers[:-1]
    assert table.headers == headers
    width = len(headers)
    rows = [(row + [""] * width)[:width] for row in expected[1:]]
    assert frame.to_numpy().tolist() == rows
    assert frame.index.tolist() == list(range(header_row + 1, header_row + 1 + len(rows)))
    return frame


@pytest.fixture(autouse=True)
def stream_everything(monkeypatch):
    monkeypatch.setattr(reading, "XLSX_STREAM_BYTES", 0)  # every .xlsx through the streaming reader


VALUES = [
    ["Acme & Sons <Ltd>", "A-1", "PO-1", 4, 436.55, dt.datetime(2014, 1, 2), 'say "hi"'],
    ["Beta\nline two", "B-2", "PO-2", 1.5, 0.1, dt.datetime(2014, 1, 2, 13, 45, 30), "it's"],
    ["Gamma", None, "PO-3", 12345678901234567890, 1e20, dt.date(1900, 2, 28), None],
    [None, None, None, None, None, None, None],
    ["Delta", "D-4", 4500000001, -0.00001, 2.5e-7, dt.time(8, 30), True],
    ["Epsilon", "E-5", "PO-5", 1746.2, 1234567.125, dt.datetime(1999, 12, 31, 23, 59, 59, 500000), False],
    ["Zeta", "Z-6", "PO-6", 3.0, 100, dt.datetime(9999, 12, 31), "=SUM(D2:D3)"],
]


@pytest.mark.parametrize("write_only", [False, True], ids=["shared-strings", "inline-strings"])
@pytest.mark.parametrize("date_format", ["yyyy-mm-dd", "d/m/yy", "mm/dd/yyyy hh:mm", "h:mm"])
def test_every_cell_kind_reads_as_openpyxl_reads_it(tmp_path, write_only, date_format):
    path = tmp_path / "kinds.xlsx"
    workbook = Workbook(write_only=write_only)
    sheet = workbook.create_sheet("Orders") if write_only else workbook.active
    sheet.append(HEADER)
    for row in VALUES:
        sheet.append(row)
    if not write_only:
        sheet.cell(row=12, column=3, value="PO-after-a-gap")  # rows 9 to 11 missing
        for row in sheet.iter_rows(min_row=2, min_col=6, max_col=6):
            row[0].number_format = date_format
    workbook.save(path)
    frame = assert_same_as_openpyxl(path)
    assert frame.loc[2].tolist() == [
        "Acme & Sons <Ltd>",
        "A-1",
        "PO-1",
        "4",
        "436.55",
        frame.loc[2, "PO Date"],
        'say "hi"',
    ]
    assert frame.loc[3, "Supplier"] == "Beta\nline two"
    assert frame.loc[4, "Qty"] == "1.234567890123457e+19"  # as the writer stored it: a float
    assert frame.loc[6, "Note"] == "TRUE" and frame.loc[7, "Note"] == "FALSE"
    if date_format == "yyyy-mm-dd":
        assert frame["PO Date"].tolist()[:3] == ["2014-01-02", "2014-01-02 13:45:30", "1900-02-28"]


def test_a_large_sheet_reads_block_by_block_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx_stream, "BLOCK_BYTES", 2000)  # many blocks of a few rows
    path = tmp_path / "many.xlsx"
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Orders")
    sheet.append(HEADER)
    for i in range(500):
        sheet.append(
            [f"S{i % 7}", f"M{i}", f"PO-{i // 3}", i % 9 + 1, i / 8, dt.date(2020, 1, 1) + dt.timedelta(i), ""]
        )
    workbook.save(path)
    frame = assert_same_as_openpyxl(path)
    assert frame["Qty"].tolist()[:4] == ["1", "2", "3", "4"]
    assert len(frame) == 500


# --- hand-written XML: what other writers produce -----------------------------------------------

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
STYLES = (
    f'<styleSheet xmlns="{MAIN}"><numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy"/></numFmts>'
    '<cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="14"/><xf numFmtId="46"/></cellXfs>'
    "</styleSheet>"
)


def handmade(path, sheet_data: str, *, strings: str = "", prefix: str = "", date1904: bool = False):
    p = f"{prefix}:" if prefix else ""
    ns = f'xmlns:{prefix}="{MAIN}"' if prefix else f'xmlns="{MAIN}"'
    workbook_pr = '<workbookPr date1904="1"/>' if date1904 else ""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/xl/sharedStrings.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
            "</Types>",
        )
        archive.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="{RELS}">{workbook_pr}'
            '<sheets><sheet name="Orders" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{RELS}/styles" Target="styles.xml"/>'
            f'<Relationship Id="rId3" Type="{RELS}/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>",
        )
        archive.writestr("xl/styles.xml", STYLES)
        archive.writestr("xl/sharedStrings.xml", f'<sst xmlns="{MAIN}">{strings}</sst>')
        archive.writestr(
            "xl/worksheets/sheet1.xml",
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<{p}worksheet {ns}>'
            f'<{p}dimension ref="A1:E9"/><{p}sheetData>{sheet_data}</{p}sheetData></{p}worksheet>',
        )
    return path


HEAD_ROW = (
    '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c>'
    '<c r="D1" t="s"><v>3</v></c><c r="E1" t="s"><v>4</v></c></row>'
)
STRINGS = (
    "<si><t>Supplier</t></si><si><t>SKU</t></si><si><t>PO Number</t></si><si><t>Qty</t></si><si><t>PO Date</t></si>"
    '<si><r><rPr><b/></rPr><t>Rich </t></r><r><t xml:space="preserve">text </t></r><rPh sb="0" eb="1"><t>ignored</t></rPh></si>'
    "<si><t>Tom &amp; Jerry&#10;second line</t></si>"
    "<si><t>carriage_x000D_return</t></si>"
)
COMMON_ROWS = (
    '<row r="2" spans="1:5"><c r="A2" t="s"><v>5</v></c><c r="B2" t="s"><v>6</v></c><c r="C2" t="str">'
    '<f>"PO-"&amp;1</f><v>PO-1</v></c><c r="D2"><v>4</v></c><c r="E2" s="1"><v>41641</v></c></row>'
    '<row r="4"><c r="A4" t="s"><v>7</v></c><c r="B4" t="b"><v>1</v></c><c r="C4" t="e"><v>#N/A</v></c>'
    '<c r="D4" s="2"><v>41641.75</v></c><c r="E4" s="3"><v>1.5</v></c></row>'
    '<row r="5"><c r="A5" t="inlineStr"><is><t xml:space="preserve"> padded &lt;x&gt; </t></is></c>'
    '<c r="B5" s="1"/><c r="C5"><f t="shared" ref="C5:C6" si="0">D5*2</f><v>8</v></c><c r="D5"><v>1E-3</v></c>'
    '<c r="E5" s="1"><v>59</v></c></row>'
    '<row r="6"><c r="E6" s="3"/></row>'
)


def test_common_cells_of_other_writers_read_as_openpyxl_reads_them(tmp_path):
    path = handmade(tmp_path / "common.xlsx", HEAD_ROW + COMMON_ROWS, strings=STRINGS)
    frame = assert_same_as_openpyxl(path)
    assert frame.loc[2].tolist() == ["Rich text ", "Tom & Jerry\nsecond line", "PO-1", "4", "2014-01-02"]
    assert frame.loc[3].tolist() == ["", "", "", "", ""]  # the missing row 3, as a spreadsheet shows it
    assert frame.loc[4].tolist() == ["carriage_x000D_return", "TRUE", "#N/A", "2014-01-02 18:00:00", "1 day, 12:00:00"]
    assert frame.loc[5].tolist() == [" padded <x> ", "", "8", "0.001", "1900-02-28"]
    assert list(frame.index) == [2, 3, 4, 5]  # row 6 holds only formatting


@pytest.mark.parametrize(
    "variant",
    [
        "no-references",  # cells and rows without r=, as some writers leave them
        "prefixed",  # x:c, x:row: the OpenXML SDK's way
        "pretty",  # indented XML
        "attribute-order",  # t= before r=
        "rich-inline",  # inline strings with runs
    ],
)
def test_uncommon_xml_is_parsed_whole_and_reads_as_openpyxl_reads_it(tmp_path, variant):
    rows = HEAD_ROW + (
        '<row r="2"><c r="A2" t="s"><v>5</v></c><c r="B2" t="inlineStr"><is><t>M-1</t></is></c>'
        '<c r="C2" t="str"><v>PO-1</v></c><c r="D2"><v>2.5</v></c><c r="E2" s="1"><v>41642</v></c></row>'
        '<row r="3"><c r="A3" t="s"><v>6</v></c><c r="C3"><v>17</v></c><c r="D3" t="e"><v>#DIV/0!</v></c></row>'
    )
    prefix = ""
    if variant == "no-references":
        rows = rows.replace(' r="A1"', "").replace(' r="B1"', "").replace(' r="2"', "")
        rows = rows.replace(' r="A2"', "").replace(' r="B2"', "").replace(' r="C2"', "").replace(' r="D2"', "")
        rows = rows.replace(' r="E2"', "")
    elif variant == "prefixed":
        prefix = "x"
        for tag in ("row", "c", "v", "is", "t", "f"):
            rows = rows.replace(f"<{tag}>", f"<x:{tag}>").replace(f"<{tag} ", f"<x:{tag} ")
            rows = rows.replace(f"</{tag}>", f"</x:{tag}>")
    elif variant == "pretty":
        rows = rows.replace("<row", "\n  <row").replace("<c ", "\n    <c ").replace("</row>", "\n  </row>")
    elif variant == "attribute-order":
        rows = rows.replace('<c r="D2">', '<c s="0" r="D2">')
    elif variant == "rich-inline":
        rows = rows.replace("<is><t>M-1</t></is>", "<is><r><t>M-</t></r><r><rPr><i/></rPr><t>1</t></r></is>")
    path = handmade(tmp_path / f"{variant}.xlsx", rows, strings=STRINGS, prefix=prefix)
    frame = assert_same_as_openpyxl(path)
    assert frame.loc[2].tolist() == ["Rich text ", "M-1", "PO-1", "2.5", "2014-01-03"]
    assert frame.loc[3].tolist() == ["Tom & Jerry\nsecond line", "", "17", "#DIV/0!", ""]


def test_the_1904_date_system(tmp_path):
    rows = (
        HEAD_ROW
        + '<row r="2"><c r="A2" t="s"><v>5</v></c><c r="C2"><v>1</v></c><c r="D2"><v>1</v></c><c r="E2" s="1"><v>40179</v></c></row>'
    )
    path = handmade(tmp_path / "mac.xlsx", rows, strings=STRINGS, date1904=True)
    frame = assert_same_as_openpyxl(path)
    assert frame.loc[2, "PO Date"] == "2014-01-02"


def test_only_the_columns_asked_for_are_read(tmp_path):
    path = handmade(tmp_path / "common.xlsx", HEAD_ROW + COMMON_ROWS, strings=STRINGS)
    _, frame, batches = streamed(path, columns=["PO Date", "SKU"], batch_rows=3)
    assert list(frame.columns) == ["SKU", "PO Date"]
    assert frame.to_numpy().tolist() == [
        ["Tom & Jerry\nsecond line", "2014-01-02"],
        ["", ""],
        ["TRUE", "1 day, 12:00:00"],
        ["", "1900-02-28"],
    ]
    assert [b.first_row for b in batches] == [2, 5]


def test_rows_out_of_order_are_refused_naming_the_sheet(tmp_path):
    rows = HEAD_ROW + '<row r="3"><c r="C3"><v>1</v></c></row><row r="2"><c r="C2"><v>2</v></c></row>'
    path = handmade(tmp_path / "order.xlsx", rows, strings=STRINGS)
    with pytest.raises(FileError, match=r"Sheet 'Orders' is damaged: its row 2 comes after row 3"):
        streamed(path)


def test_a_shared_string_the_workbook_does_not_hold_is_refused(tmp_path):
    rows = HEAD_ROW + '<row r="2"><c r="A2" t="s"><v>99</v></c></row>'
    path = handmade(tmp_path / "sst.xlsx", rows, strings=STRINGS)
    with pytest.raises(
        FileError, match=r"Sheet 'Orders', cell A2, refers to shared string 99, which the workbook does not hold"
    ):
        streamed(path)


def test_a_row_beyond_the_last_a_sheet_holds_is_refused_while_streaming(tmp_path):
    rows = HEAD_ROW + "".join(f'<row r="{n}"><c r="C{n}"><v>{n}</v></c></row>' for n in range(2, 2000))
    rows += '<row r="1048577"><c r="C1048577"><v>1</v></c></row>'
    path = handmade(tmp_path / "deep.xlsx", rows, strings=STRINGS)
    table = open_table(path, name=path.name, batch_rows=1000)
    with pytest.raises(FileError, match=r"Sheet 'Orders' has more than 1,048,576 rows, more than a worksheet can hold"):
        list(table.batches)


def test_a_sample_read_first_leaves_the_workbook_for_the_loads_own_read(tmp_path):
    """The mapping step reads a sample (one batch, then stops) before the load reads the
    sheet again: the first read must not close the workbook under the second."""
    path = handmade(tmp_path / "common.xlsx", HEAD_ROW + COMMON_ROWS, strings=STRINGS)
    table = open_table(path, name="common.xlsx", batch_rows=2)
    sample = next(iter(table.read(None)))
    assert len(sample.frame) == 2
    frame = pd.concat([batch.frame for batch in table.read(None)])
    _, whole, _ = streamed(path)
    assert len(frame) > len(sample.frame)
    pd.testing.assert_frame_equal(frame, whole)


# --- the fast path's pieces -------------------------------------------------------------------


def references(*refs: str):
    """`xlsx_stream._references` over cell references as they stand in a block: r="A1"."""
    blob = b"".join(b'r="' + r.encode() + b'"' for r in refs) + b"\x00" * 8
    a = np.frombuffer(blob, dtype=np.uint8)
    starts, ends, at = [], [], 0
    for r in refs:
        starts.append(at + 3)
        ends.append(at + 3 + len(r))
        at += len(r) + 4
    return xlsx_stream._references(a, np.array(starts), np.array(ends))


def test_cell_references_give_their_column_and_row_numbers():
    columns, rows = references("A1", "Z9", "AA10", "AZ100", "XFD1048576", "ZZZ9999999", "B007")
    assert columns.tolist() == [1, 26, 27, 52, 16384, 18278, 2]
    assert rows.tolist() == [1, 9, 10, 100, 1048576, 9999999, 7]


@pytest.mark.parametrize("bad", ["a1", "AAAA1", "A12345678", "A", "1A", "A1B", "A-1", "A 1", "Ä1"])
def test_a_block_with_anything_but_a_reference_leaves_the_fast_path(bad):
    assert references("A1", bad, "B2") == (None, None)


@pytest.mark.parametrize(
    ("block", "fast"),
    [
        (b'<row r="2"><c r="A2"><v>1</v></c><c r="B2" t="s"><v>0</v></c></row>', True),
        (b'<row><c r="A2"><v>1</v></c></row>', True),
        (b'<rows r="2"><c r="A2"><v>1</v></c></rows>', False),  # not a row
        (b'<row\tr="2"><c r="A2"><v>1</v></c></row>', False),  # a tab after 'row': parsed whole
        (b'<row r="2"><c r="A2"><x>1</x></c></row>', False),  # an unknown tag
        (b'<row r="2"><c r="A2"><v>1</v></c></rowx>', False),
    ],
)
def test_the_fast_path_reads_only_blocks_made_of_the_tags_it_knows(block, fast):
    assert (xlsx_stream._fast_cells(block) is not None) is fast
