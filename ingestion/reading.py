"""Reading uploaded files as tables of text, one batch of rows at a time.

CSV goes through pandas' C parser in chunks, so memory stays flat however large the file.
Excel files go through calamine, which is many times faster than openpyxl but holds a
whole sheet in memory, up to XLSX_STREAM_BYTES (10 MB); a larger .xlsx streams through
openpyxl's read-only mode, so memory stays bounded. (.xls and .ods always go through
calamine; Excel caps a sheet at about a million rows.) Every cell arrives as a string, ''
when blank."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .columns import looks_like_header

EXCEL_EXTENSIONS = (".xlsx", ".xls", ".ods")
MAX_HEADER_BYTES = 1 << 20  # a header line longer than 1 MB is not a table header
HEADER_SEARCH_ROWS = 20
DELIMITERS = ",;\t|"


class FileError(ValueError):
    """The file cannot be read as a table; the message is for the person who uploaded it."""


@dataclass
class Batch:
    frame: pd.DataFrame  # columns are the file's headers; every cell a string
    first_row: int  # spreadsheet row number of the frame's first row (header = row 1)
    skipped: list[tuple[int | None, str]] = field(default_factory=list)  # (row, reason) the parser dropped


@dataclass
class Table:
    headers: list[str]
    estimated_rows: int | None
    batches: Iterator[Batch]
    description: str  # e.g. "CSV, utf-8, ';'-separated"


def open_table(path: str | Path, *, name: str, batch_rows: int) -> Table:
    path = Path(path)
    ext = Path(name).suffix.lower()
    with path.open("rb") as handle:
        head = handle.read(65536)
    if not head.strip():
        raise FileError("The file is empty.")
    if ext in EXCEL_EXTENSIONS:
        return _open_excel(path, ext=ext, head=head, batch_rows=batch_rows)
    return _open_csv(path, head=head, batch_rows=batch_rows)


# --- CSV ---------------------------------------------------------------------------------


def _scan(path: Path, encoding: str | None) -> tuple[int, bool]:
    """One pass over the bytes: count line breaks (an estimate of the rows, exact unless
    quoted cells hold line breaks) and check whether the text decodes as UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")() if encoding is None else None
    lines = 0
    valid = True
    last = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk
            if decoder is not None and valid:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    valid = False
    if decoder is not None and valid:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            valid = False
    if last and not last.endswith(b"\n"):
        lines += 1
    return lines, valid


def _detect_encoding(path: Path, head: bytes) -> tuple[str, int]:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", _scan(path, "utf-8-sig")[0]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export: UTF-16, tab-separated.
        size = path.stat().st_size
        return "utf-16", max(1, head.decode("utf-16", errors="replace").count("\n") * size // max(1, len(head)))
    if head.startswith(b"PK\x03\x04"):
        raise FileError(
            "This file is a zip archive (an Excel .xlsx file?) but is named as CSV; upload it with its .xlsx name."
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileError("This file is an old Excel (.xls) workbook but is named as CSV; upload it with its .xls name.")
    if b"\x00" in head:
        offset = head.index(b"\x00")
        raise FileError(
            f"This is not a text file: it holds binary data (a NUL byte at byte {offset}). Upload CSV or Excel files."
        )
    lines, is_utf8 = _scan(path, None)
    if is_utf8:
        return "utf-8", lines
    from charset_normalizer import from_path

    results = from_path(path, steps=8, chunk_size=4096)
    best = results.best()
    encoding = best.encoding if best is not None else "cp1252"
    if best is not None:
        # On short samples cp1250, cp1252 and cp1257 often tie; spreadsheet exports are
        # overwhelmingly Windows-1252, so a tie goes to it.
        for match in results:
            ties = (
                match.percent_chaos <= best.percent_chaos + 0.5
                and match.percent_coherence >= best.percent_coherence - 5
            )
            if ties and "cp1252" in match.could_be_from_charset:
                encoding = "cp1252"
                break
    if encoding.lower().replace("-", "_") in {"ascii", "utf_8"}:
        encoding = "cp1252"
    return encoding, lines


def _find_header_line(text_lines: list[str], delimiter: str) -> int:
    """Index of the header line: the first that names three known fields, else line 0
    (exports often carry a title or a date line above the table)."""
    for index, line in enumerate(text_lines[:HEADER_SEARCH_ROWS]):
        cells = next(csv.reader([line], delimiter=delimiter), [])
        if looks_like_header(cells):
            return index
    return 0


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _open_csv(path: Path, *, head: bytes, batch_rows: int) -> Table:
    newline = head.find(b"\n")
    if newline < 0 and path.stat().st_size > MAX_HEADER_BYTES:
        with path.open("rb") as handle:
            if b"\n" not in handle.read(MAX_HEADER_BYTES):
                raise FileError(
                    f"The first line is longer than {MAX_HEADER_BYTES // 1_048_576} MB with no line break: "
                    "this is not a table with a header row."
                )
    encoding, line_count = _detect_encoding(path, head)
    sample = head.decode(encoding, errors="replace")
    if len(head) == 65536:  # do not sniff a line cut in half
        sample = sample[: sample.rfind("\n") + 1] or sample
    lines = sample.splitlines()
    delimiter = _sniff_delimiter("\n".join(lines[:50]))
    header_line = _find_header_line(lines, delimiter)

    try:
        reader = pd.read_csv(
            path,
            sep=delimiter,
            encoding=encoding,
            encoding_errors="replace",
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            skiprows=header_line,
            chunksize=batch_rows,
            on_bad_lines="warn",
            engine="c",
        )
        headers = [str(h).strip() for h in reader.orig_names] if hasattr(reader, "orig_names") else None
    except pd.errors.EmptyDataError as exc:
        raise FileError("The file is empty.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise FileError(f"The file cannot be read as CSV: {exc}") from exc

    first_data_row = header_line + 2
    chunks = _csv_batches(reader, first_data_row)
    try:
        first = next(chunks)
    except StopIteration:
        first = None
    if headers is None:
        headers = [str(h).strip() for h in first.frame.columns] if first is not None else []
    if first is None or first.frame.empty:
        raise FileError("The file has a header row but no data rows.")

    def batches() -> Iterator[Batch]:
        yield first
        yield from chunks

    estimate = max(0, line_count - header_line - 1)
    return Table(
        headers=headers,
        estimated_rows=estimate or None,
        batches=batches(),
        description=f"CSV, {encoding}, {'TAB' if delimiter == chr(9) else repr(delimiter)}-separated",
    )


def _csv_batches(reader, first_data_row: int) -> Iterator[Batch]:
    row = first_data_row
    while True:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            try:
                frame = next(reader)
            except StopIteration:
                reader.close()
                return
            except pd.errors.ParserError as exc:
                reader.close()
                raise FileError(f"The file cannot be read as CSV near row {row}: {exc}") from exc
        frame.columns = [str(c).strip() for c in frame.columns]
        skipped = []
        for warning in caught:
            for message in str(warning.message).splitlines():
                if message.startswith("Skipping line"):
                    # "Skipping line 7: expected 10 fields, saw 12" (a file line number)
                    number = message.split()[2].rstrip(":")
                    skipped.append((int(number) if number.isdigit() else None, message.split(": ", 1)[-1]))
        frame.index = range(row, row + len(frame))
        yield Batch(frame=frame, first_row=row, skipped=skipped)
        row += len(frame)


# --- Excel -------------------------------------------------------------------------------

# Measured on a 100,000-row .xlsx (6.7 MB) here: calamine reads it in 1.1 s at a 160 MB
# peak (it holds the whole sheet); openpyxl's read-only mode streams it in 18.7 s at 46 MB.
# Calamine up to this size (about 150,000 rows), openpyxl beyond, so memory stays bounded
# up to Excel's own limit of 1,048,576 rows.
XLSX_STREAM_BYTES = 10 * 1024 * 1024

_EXCEL_MAGIC = {".xlsx": b"PK\x03\x04", ".ods": b"PK\x03\x04", ".xls": b"\xd0\xcf\x11\xe0"}


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _open_excel(path: Path, *, ext: str, head: bytes, batch_rows: int) -> Table:
    from python_calamine import CalamineWorkbook

    magic = _EXCEL_MAGIC[ext]
    if not head.startswith(magic) and not (ext == ".xls" and head.startswith(b"PK\x03\x04")):
        kind = "a zip archive" if ext != ".xls" else "an OLE2 workbook"
        looks_text = b"\x00" not in head[:4096]
        hint = " It looks like text: if it is CSV, name it .csv." if looks_text else ""
        raise FileError(f"This {ext} file is not a valid Excel workbook (it is not {kind}).{hint}")
    if ext == ".xlsx" and path.stat().st_size > XLSX_STREAM_BYTES:
        return _open_xlsx_streaming(path, batch_rows=batch_rows)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types
        raise FileError(f"This {ext} workbook cannot be opened: {exc}") from exc

    chosen: tuple[str, list, int | None] | None = None
    for sheet_name in workbook.sheet_names:
        try:
            rows = workbook.get_sheet_by_name(sheet_name).to_python(skip_empty_area=False)
        except Exception as exc:
            raise FileError(f"Sheet {sheet_name!r} cannot be read: {exc}") from exc
        for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
            if looks_like_header([_cell_text(c) for c in row]):
                chosen = (sheet_name, rows, index)
                break
        if chosen:
            break
        if chosen is None and rows and any(any(_cell_text(c).strip() for c in r) for r in rows):
            chosen = chosen or (sheet_name, rows, None)
    if chosen is None:
        raise FileError("The workbook has no sheet with data.")
    sheet_name, rows, header_index = chosen
    if header_index is None:  # no sheet had recognizable headers: use the first non-empty row
        header_index = next(i for i, r in enumerate(rows) if any(_cell_text(c).strip() for c in r))
    headers = [_cell_text(c).strip() for c in rows[header_index]]
    width = len(headers)
    data = rows[header_index + 1 :]
    while data and not any(_cell_text(c).strip() for c in data[-1]):
        data.pop()
    if not data:
        raise FileError(f"Sheet {sheet_name!r} has a header row but no data rows.")
    first_data_row = header_index + 2

    def batches() -> Iterator[Batch]:
        for start in range(0, len(data), batch_rows):
            chunk = data[start : start + batch_rows]
            cells = [[_cell_text(c) for c in (list(r) + [None] * width)[:width]] for r in chunk]
            frame = pd.DataFrame(cells, columns=headers, dtype=str)
            row = first_data_row + start
            frame.index = range(row, row + len(frame))
            yield Batch(frame=frame, first_row=row)

    return Table(
        headers=headers,
        estimated_rows=len(data),
        batches=batches(),
        description=f"{ext} workbook, sheet {sheet_name!r}",
    )


def _open_xlsx_streaming(path: Path, *, batch_rows: int) -> Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl errors alike
        raise FileError(f"This .xlsx workbook cannot be opened: {exc}") from exc
    chosen = None
    for sheet in workbook.worksheets:
        rows = sheet.iter_rows(values_only=True)
        head = [list(r) for _, r in zip(range(HEADER_SEARCH_ROWS), rows)]
        index = next((i for i, r in enumerate(head) if looks_like_header([_cell_text(c) for c in r])), None)
        if index is not None:
            chosen = (sheet, head, index, rows)
            break
        if chosen is None and any(any(_cell_text(c).strip() for c in r) for r in head):
            first = next(i for i, r in enumerate(head) if any(_cell_text(c).strip() for c in r))
            chosen = (sheet, head, first, rows)  # kept unless a later sheet has real headers
    if chosen is None:
        raise FileError("The workbook has no sheet with data.")
    sheet, head, header_index, rows = chosen
    headers = [_cell_text(c).strip() for c in head[header_index]]
    width = len(headers)
    first_data_row = header_index + 2

    def batches() -> Iterator[Batch]:
        row = first_data_row
        pending = head[header_index + 1 :]
        source = iter(rows)
        while True:
            while len(pending) < batch_rows:
                try:
                    pending.append(list(next(source)))
                except StopIteration:
                    break
            if not pending:
                workbook.close()
                return
            chunk, pending = pending[:batch_rows], pending[batch_rows:]
            cells = [[_cell_text(c) for c in (r + [None] * width)[:width]] for r in chunk]
            frame = pd.DataFrame(cells, columns=headers, dtype=str)
            frame.index = range(row, row + len(frame))
            yield Batch(frame=frame, first_row=row)
            row += len(frame)

    estimate = (sheet.max_row - header_index - 1) if sheet.max_row else None
    return Table(
        headers=headers,
        estimated_rows=estimate,
        batches=batches(),
        description=f".xlsx workbook, sheet {sheet.title!r} (streamed)",
    )
