"""Cheap checks of a workbook's zip and XML before a reader is let loose on it.

Calamine fills a sheet's whole bounding box in memory (a lone cell at XFD1048576 asks for
17 billion cells and aborts the process), believes a shared-strings count it is given (10^18
raises a Rust panic), and both readers inflate whatever the zip holds. So before reading,
the zip's declared sizes are compared with the limits (the zip directory says them; Python's
zipfile never inflates a member beyond its declared size and fails its checksum when the
data is longer), and each sheet's XML is streamed once to find where its cells with values
really lie. The structural parts (workbook, relationships, the start of shared strings) are
parsed with defusedxml; the cell scan is a byte-pattern search (about 50 MB of XML a second
here, a fraction of what reading the sheet costs), which is all it needs. The .ods scan
expects the usual `table:` prefix that LibreOffice, Excel and Google Sheets all write."""

from __future__ import annotations

import itertools
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree

# A worksheet's own limits (Excel's and LibreOffice's alike).
MAX_SHEET_ROWS = 1_048_576
MAX_SHEET_COLUMNS = 16_384
# Structural parts (workbook.xml, relationships) are kilobytes; one far larger is not parsed.
MAX_STRUCTURE_BYTES = 16 * 1024 * 1024
# Below this a member's compression ratio is not checked: tiny parts compress a lot.
RATIO_FLOOR_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024


class WorkbookRefused(ValueError):
    """The workbook would cost more than the limits allow; the message says why, for the uploader."""


@dataclass(frozen=True)
class Limits:
    max_uncompressed_bytes: int
    max_compression_ratio: float
    max_sheet_cells: int


@dataclass(frozen=True)
class Extent:
    """Where a sheet's cells with values lie: rows and columns counted from 1."""

    rows: int = 0
    columns: int = 0

    @property
    def cells(self) -> int:
        return self.rows * self.columns


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_number(letters: bytes | str) -> int:
    number = 0
    for ch in letters if isinstance(letters, str) else letters.decode():
        number = number * 26 + ord(ch) - 64
    return number


# --- the zip --------------------------------------------------------------------------------


def check_zip(archive: zipfile.ZipFile, *, limits: Limits, kind: str) -> None:
    """Refuse a workbook whose parts declare more than the limits: known before any inflating."""
    members = archive.infolist()
    total = sum(member.file_size for member in members)
    if total > limits.max_uncompressed_bytes:
        raise WorkbookRefused(
            f"This {kind} workbook unpacks to {_size(total)} of data, more than the {_size(limits.max_uncompressed_bytes)} "
            f"allowed (INGEST_MAX_UNCOMPRESSED_BYTES): it is not read. Split it, or save it as CSV."
        )
    for member in members:
        if member.file_size < RATIO_FLOOR_BYTES:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > limits.max_compression_ratio:
            raise WorkbookRefused(
                f"This {kind} workbook's part {member.filename} unpacks {ratio:,.0f} times its size "
                f"({_size(member.compress_size)} to {_size(member.file_size)}), more than the "
                f"{limits.max_compression_ratio:,.0f} times allowed (INGEST_MAX_COMPRESSION_RATIO): "
                "this is how zip bombs look, so it is not read."
            )


def _size(number: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if number >= scale:
            return f"{number / scale:,.1f} {unit}"
    return f"{number} bytes"


def _chunks(archive: zipfile.ZipFile, name: str, *, kind: str) -> Iterator[bytes]:
    """The member's bytes; never more than it declares (zipfile stops there and checks the CRC)."""
    try:
        with archive.open(name) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise WorkbookRefused(
            f"This {kind} workbook is damaged: its part {name} does not match its declared size or checksum ({exc})."
        ) from exc


def _parse_small(archive: zipfile.ZipFile, name: str, *, kind: str):
    info = archive.getinfo(name)
    if info.file_size > MAX_STRUCTURE_BYTES:
        raise WorkbookRefused(f"This {kind} workbook's part {name} is {_size(info.file_size)}: too large to be real.")
    try:
        return ElementTree.fromstring(b"".join(_chunks(archive, name, kind=kind)))
    except ElementTree.ParseError as exc:
        raise WorkbookRefused(f"This {kind} workbook is damaged: {name} is not valid XML ({exc}).") from exc
    except ValueError as exc:  # defusedxml's refusals: DTDs, entities
        raise WorkbookRefused(
            f"This {kind} workbook's {name} holds XML constructs that are not allowed ({exc})."
        ) from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# --- .xlsx ----------------------------------------------------------------------------------

# A cell that is not self-closing (an empty styled cell is, and calamine ignores those), with
# its reference first, as every writer puts it. The pattern starts with a literal, which
# keeps the search fast (about 100 MB/s here); cells it misses are counted another way.
_CELL_RE = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,9})"[^>/]*>')
_PREFIXED_CELL_RE = re.compile(rb'<\w+:c r="([A-Z]{1,3})([0-9]{1,9})"[^>/]*>')
_ROW_RE = re.compile(rb"<(?:\w+:)?row\b")


def xlsx_sheets(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(sheet name, zip member) of every worksheet, in the workbook's order."""
    workbook = (
        _parse_small(archive, "xl/workbook.xml", kind=".xlsx") if "xl/workbook.xml" in archive.NameToInfo else None
    )
    rels_name = "xl/_rels/workbook.xml.rels"
    if workbook is None or rels_name not in archive.NameToInfo:
        return [
            (name, name) for name in archive.namelist() if name.startswith("xl/worksheets/") and name.endswith(".xml")
        ]
    targets = {}
    for rel in _parse_small(archive, rels_name, kind=".xlsx"):
        target = rel.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        targets[rel.get("Id")] = path
    sheets = []
    for element in workbook.iter():
        if _local(element.tag) != "sheet":
            continue
        rid = next((v for k, v in element.attrib.items() if _local(k) == "id"), None)
        member = targets.get(rid)
        if member and member in archive.NameToInfo:
            sheets.append((element.get("name", member), member))
    return sheets


def _by_magnitude(text: bytes) -> tuple[int, bytes]:
    return len(text), text  # 'AA' after 'Z', '10' after '9'


def scan_xlsx_sheet(archive: zipfile.ZipFile, member: str) -> Extent:
    """Stream the sheet's XML once: the farthest row and column of a cell with a value.
    A cell without a reference follows the previous one (as readers place it): for such
    sheets the bound is taken from the count of cells per row and of rows."""
    rows = columns = rows_seen = 0
    pending = b""
    for chunk in itertools.chain(_chunks(archive, member, kind=".xlsx"), [b""]):  # b"": the end
        data = pending + chunk
        cut = data.rfind(b"</row>")
        if chunk and cut < 0 and len(data) < 16 * CHUNK_BYTES:
            pending = data
            continue
        cut = len(data) if not chunk or cut < 0 else cut + 6
        block, pending = data[:cut], data[cut:]
        rows_seen += block.count(b"</row>") + block.count(b":row>")
        refs = _CELL_RE.findall(block)
        if b':c r="' in block:
            refs += _PREFIXED_CELL_RE.findall(block)
        if refs:
            widest = max({letters for letters, _ in refs}, key=_by_magnitude)
            deepest = max({number for _, number in refs}, key=_by_magnitude)
            columns = max(columns, column_number(widest))
            rows = max(rows, int(deepest))
        # Values (<v>, inline strings <is>) beyond the cells found: cells without a reference,
        # which follow the previous one; bound them by the cells per row and the rows.
        values = block.count(b"<v>") + block.count(b"<is>")
        if values > len(refs):
            per_row = max(part.count(b"<c") + part.count(b":c ") for part in _ROW_RE.split(block))
            columns = max(columns, columns + per_row if refs else per_row)
            rows = max(rows, rows_seen)
    return Extent(rows=rows, columns=columns)


def check_shared_strings(archive: zipfile.ZipFile) -> None:
    """The shared-strings table's declared counts, against what its size can hold: a reader
    reserves room for the count before reading a string."""
    name = next((n for n in archive.namelist() if n.lower() == "xl/sharedstrings.xml"), None)
    if name is None:
        return
    size = archive.getinfo(name).file_size
    root = _first_element(archive, name, kind=".xlsx")
    if root is None:
        return
    most = size // 5 + 1  # '<si/>' is the shortest string there is
    value = root.get("uniqueCount", "")  # what calamine reserves room for ('count' it ignores)
    if value.isdigit() and int(value) > most:
        raise WorkbookRefused(
            f"This .xlsx workbook is damaged: its shared-strings table says it holds {value} strings "
            f"but has room for at most {most:,}."
        )


def _first_element(archive: zipfile.ZipFile, name: str, *, kind: str):
    """The root element with its attributes, parsing no further than its start tag."""
    with archive.open(name) as stream:
        try:
            for _event, element in ElementTree.iterparse(stream, events=("start",)):
                return element
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise WorkbookRefused(
                f"This {kind} workbook is damaged: its part {name} cannot be unpacked ({exc})."
            ) from exc
        except ElementTree.ParseError as exc:
            raise WorkbookRefused(f"This {kind} workbook is damaged: {name} is not valid XML ({exc}).") from exc
        except ValueError as exc:
            raise WorkbookRefused(
                f"This {kind} workbook's {name} holds XML constructs that are not allowed ({exc})."
            ) from exc
    return None


def check_xlsx(path: Path, *, limits: Limits, whole_sheet: bool) -> dict[str, Extent]:
    """Refuse what would blow a reader up; return each sheet's extent. `whole_sheet` is true
    when the reader holds a whole sheet in memory (calamine): then each sheet is scanned and
    its grid capped. A streaming reader (openpyxl) needs only the zip checked: it is read no
    wider than its header, and no longer than a sheet can be."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WorkbookRefused(f"This .xlsx workbook cannot be opened: {exc}") from exc
    with archive:
        check_zip(archive, limits=limits, kind=".xlsx")
        check_shared_strings(archive)
        extents: dict[str, Extent] = {}
        if not whole_sheet:
            return extents
        for sheet, member in xlsx_sheets(archive):
            extent = scan_xlsx_sheet(archive, member)
            check_extent(sheet, extent, limits=limits, whole_sheet=whole_sheet)
            extents[sheet] = extent
        return extents


def check_extent(sheet: str, extent: Extent, *, limits: Limits, whole_sheet: bool) -> None:
    where = f"{column_letters(extent.columns)}{extent.rows}"
    if extent.rows > MAX_SHEET_ROWS or extent.columns > MAX_SHEET_COLUMNS:
        raise WorkbookRefused(
            f"Sheet {sheet!r} has {extent.rows:,} rows and {extent.columns:,} columns, more than a worksheet can hold "
            f"({MAX_SHEET_ROWS:,} x {MAX_SHEET_COLUMNS:,}): the file is not a real workbook."
        )
    if whole_sheet and extent.cells > limits.max_sheet_cells:
        raise WorkbookRefused(
            f"Sheet {sheet!r} has values as far as column {column_letters(extent.columns)} and row {extent.rows:,} "
            f"(cell {where}), so reading it means a grid of {extent.rows:,} rows x {extent.columns:,} columns "
            f"({extent.cells:,} cells, more than the {limits.max_sheet_cells:,} allowed: INGEST_MAX_SHEET_CELLS). Delete what lies beyond your table (or move the table to a sheet of its own) "
            "and upload it again."
        )


# --- .ods -----------------------------------------------------------------------------------

_ODS_TAG_RE = re.compile(
    rb"<(/?)table:(table-row|table-cell|covered-table-cell|table)(?=[\s/>])([^>]*?)(/?)>",
)
_ROWS_REPEATED_RE = re.compile(rb'table:number-rows-repeated="([0-9]+)"')
_COLUMNS_REPEATED_RE = re.compile(rb'table:number-columns-repeated="([0-9]+)"')
_TABLE_NAME_RE = re.compile(rb'table:name="([^"]*)"')


def scan_ods(path: Path, *, limits: Limits) -> dict[str, Extent]:
    """Every table's extent in content.xml, counting repeated rows and cells as what they
    stand for. Empty cells and rows (even repeated a million times, as LibreOffice writes
    the rest of a sheet) do not count; a repeated cell with a value does."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WorkbookRefused(f"This .ods workbook cannot be opened: {exc}") from exc
    with archive:
        check_zip(archive, limits=limits, kind=".ods")
        if "content.xml" not in archive.NameToInfo:
            raise WorkbookRefused("This .ods workbook is damaged: it has no content.xml.")
        extents: dict[str, Extent] = {}
        name = ""
        row = 0  # rows before the current one
        row_repeat = 1
        column = 0
        row_width = 0  # columns up to the last cell with a value, in the current row
        rows = columns = 0
        pending = b""
        for chunk in _chunks(archive, "content.xml", kind=".ods"):
            data = pending + chunk
            cut = data.rfind(b">") + 1
            block, pending = data[:cut], data[cut:]
            for match in _ODS_TAG_RE.finditer(block):
                closing, tag, attrs, empty = match.groups()
                if tag == b"table":
                    if closing:
                        extents[name] = Extent(rows=rows, columns=columns)
                    else:
                        found = _TABLE_NAME_RE.search(attrs)
                        name = found.group(1).decode(errors="replace") if found else f"Sheet{len(extents) + 1}"
                        row = rows = columns = 0
                elif tag == b"table-row":
                    if not closing:
                        found = _ROWS_REPEATED_RE.search(attrs)
                        row_repeat = int(found.group(1)) if found else 1
                        column = row_width = 0
                    if closing or empty:
                        if row_width:
                            rows = row + row_repeat
                            columns = max(columns, row_width)
                        row += row_repeat
                elif not closing:
                    found = _COLUMNS_REPEATED_RE.search(attrs)
                    repeat = int(found.group(1)) if found else 1
                    column += repeat
                    if b"value-type=" in attrs:
                        row_width = column
                if rows * max(columns, 1) > limits.max_sheet_cells or columns > MAX_SHEET_COLUMNS:
                    extent = Extent(rows=rows, columns=columns)
                    check_extent(name, extent, limits=limits, whole_sheet=True)
        for sheet, extent in extents.items():
            check_extent(sheet, extent, limits=limits, whole_sheet=True)
        return extents
