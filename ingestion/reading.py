"""Reading uploaded files as tables of text, one batch of rows at a time.

CSV goes through pandas' C parser in chunks, so memory stays flat however large the file;
a header wider than INGEST_MAX_COLUMNS is refused before pandas sees it, and only the
columns the mapping uses become values. Workbooks are first checked by workbook_guard (zip
sizes, where a sheet's values lie, shared strings). Then calamine reads them, many times
fast but holding a whole sheet in memory, up to XLSX_STREAM_BYTES (10 MB); a larger .xlsx
streams through xlsx_stream, a block of rows at a time, so memory stays bounded (.xls and
.ods always go through calamine). Every cell arrives as a string, '' when blank, without
NUL bytes."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import workbook_guard, xlsx_stream
from .columns import looks_like_header

EXCEL_EXTENSIONS = (".xlsx", ".xls", ".ods")
MAX_HEADER_BYTES = 1 << 20  # a header line longer than 1 MB is not a table header
HEADER_SEARCH_ROWS = 20
DELIMITERS = ",;\t|"
# A CSV wider than this is parsed for its mapped columns only (see _open_csv).
WIDE_COLUMNS = 64
# A file whose first 64 KB hold more control bytes than this share is binary, not text.
BINARY_SHARE = 0.01
_CONTROL_BYTES = bytes(range(9)) + bytes(range(14, 32))


class FileError(ValueError):
    """The file cannot be read as a table; the message is for the person who uploaded it."""


@dataclass(frozen=True)
class ReadLimits:
    """What a file may cost before it is refused; from the settings (see README)."""

    max_columns: int = 500
    max_uncompressed_bytes: int = 2 << 30
    max_compression_ratio: float = 100.0
    max_sheet_cells: int = 10_000_000

    @classmethod
    def from_settings(cls) -> ReadLimits:
        from django.conf import settings

        default = cls()
        return cls(
            max_columns=getattr(settings, "INGEST_MAX_COLUMNS", default.max_columns),
            max_uncompressed_bytes=getattr(settings, "INGEST_MAX_UNCOMPRESSED_BYTES", default.max_uncompressed_bytes),
            max_compression_ratio=getattr(settings, "INGEST_MAX_COMPRESSION_RATIO", default.max_compression_ratio),
            max_sheet_cells=getattr(settings, "INGEST_MAX_SHEET_CELLS", default.max_sheet_cells),
        )

    def for_workbooks(self) -> workbook_guard.Limits:
        return workbook_guard.Limits(
            max_uncompressed_bytes=self.max_uncompressed_bytes,
            max_compression_ratio=self.max_compression_ratio,
            max_sheet_cells=self.max_sheet_cells,
        )


@dataclass
class Batch:
    frame: pd.DataFrame  # columns are the file's headers; every cell a string
    first_row: int  # spreadsheet row number of the frame's first row (header = row 1)
    skipped: list[tuple[int | None, str]] = field(default_factory=list)  # (row, reason) the parser dropped
    warnings: list[tuple[int, str, str, str]] = field(default_factory=list)  # (row, column, value, message)


# Reads the file's batches, given the positions of the columns to read (None: all of them).
BatchReader = Callable[[list[int] | None], Iterator[Batch]]


@dataclass
class Table:
    headers: list[str]
    estimated_rows: int | None
    read: BatchReader
    description: str  # e.g. "CSV, utf-8, ';'-separated"
    positions: list[int] | None = None  # the columns `batches` reads; None for all
    nul_free: bool = False  # the file holds no NUL byte: no value needs `_without_nul`

    def use_columns(self, headers: Iterable[str]) -> None:
        """Read only these columns (by header; the first of equal headers): the rest of a
        wide file is never turned into values. Call it before reading the batches."""
        wanted = list(dict.fromkeys(headers))
        missing = [h for h in wanted if h not in self.headers]
        if missing:
            raise ValueError(f"No such columns: {missing}")
        self.positions = sorted(self.headers.index(h) for h in wanted)

    @property
    def batches(self) -> Iterator[Batch]:
        """The batches from the first row, with the chosen columns, without NUL bytes."""
        batches = self.read(self.positions)
        return batches if self.nul_free else _without_nul(batches)


def _without_nul(batches: Iterator[Batch]) -> Iterator[Batch]:
    """NUL bytes removed from the values, each such value reported as a warning: PostgreSQL's
    text cannot hold one, and in an export it is debris, not data. The row itself loads (so
    the lines after it keep their numbers)."""
    for batch in batches:
        frame = batch.frame
        for column in frame.columns:
            found = frame[column].str.contains("\x00", regex=False).to_numpy(dtype=bool)
            if not found.any():
                continue
            cleaned = frame.loc[found, column].str.replace("\x00", "", regex=False)
            frame.loc[found, column] = cleaned
            batch.warnings.extend(
                (int(row), str(column), value, "A NUL byte (binary data) was removed from this value")
                for row, value in cleaned.items()
            )
        yield batch


def open_table(path: str | Path, *, name: str, batch_rows: int, limits: ReadLimits | None = None) -> Table:
    path = Path(path)
    limits = limits or ReadLimits.from_settings()
    ext = Path(name).suffix.lower()
    with path.open("rb") as handle:
        head = handle.read(65536)
    if not head.strip():
        raise FileError("The file is empty.")
    if ext in EXCEL_EXTENSIONS:
        return _open_excel(path, ext=ext, head=head, batch_rows=batch_rows, limits=limits)
    return _open_csv(path, head=head, batch_rows=batch_rows, limits=limits)


def _check_width(headers: list[str], *, limits: ReadLimits, where: str) -> None:
    if len(headers) > limits.max_columns:
        raise FileError(
            f"{where} has {len(headers):,} columns, more than the {limits.max_columns:,} allowed "
            "(INGEST_MAX_COLUMNS): keep the columns you load (supplier, material, PO, quantity, price, ...) "
            "and upload it again."
        )


# --- CSV ---------------------------------------------------------------------------------


@dataclass
class _Scan:
    lines: int  # line breaks: an estimate of the rows, exact unless quoted cells hold some
    utf8: bool  # the bytes decode as UTF-8
    nul: bool  # a NUL byte somewhere: its values are cleaned batch by batch (`_without_nul`)


def _scan(path: Path, encoding: str | None) -> _Scan:
    """One pass over the bytes: count line breaks, look for a NUL byte (most files have
    none, and then no batch is searched for one) and check whether the text decodes as
    UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")() if encoding is None else None
    lines = 0
    valid = True
    nul = False
    last = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            nul = nul or b"\x00" in chunk
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
    return _Scan(lines=lines, utf8=valid, nul=nul)


def _detect_encoding(path: Path, head: bytes) -> tuple[str, _Scan]:
    """The file's encoding, and what one pass over its bytes found (`_Scan`)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", _scan(path, "utf-8-sig")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export: UTF-16, tab-separated (half its bytes are NUL).
        size = path.stat().st_size
        lines = max(1, head.decode("utf-16", errors="replace").count("\n") * size // max(1, len(head)))
        return "utf-16", _Scan(lines=lines, utf8=False, nul=True)
    if head.startswith(b"PK\x03\x04"):
        raise FileError(
            "This file is a zip archive (an Excel .xlsx file?) but is named as CSV; upload it with its .xlsx name."
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileError("This file is an old Excel (.xls) workbook but is named as CSV; upload it with its .xls name.")
    control = sum(head.count(byte) for byte in _CONTROL_BYTES)
    if control > max(16, BINARY_SHARE * len(head)):
        offset = min(i for i in (head.find(bytes([b])) for b in _CONTROL_BYTES) if i >= 0)
        raise FileError(
            f"This is not a text file: it holds binary data ({control} control bytes in its first "
            f"{len(head):,}, the first at byte {offset}). Upload CSV or Excel files."
        )
    scan = _scan(path, None)
    if scan.utf8:
        return "utf-8", scan
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
    # Every encoding writes the NUL character with a NUL byte: none in the bytes, none in the text.
    return encoding, scan


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


def _header_fields(path: Path, *, encoding: str, delimiter: str, header_line: int) -> list[str]:
    """The header row's fields, read with the csv module: a header of 100,000 names costs
    kilobytes here, where a parser that pads every row to its width would cost gigabytes."""
    csv.field_size_limit(MAX_HEADER_BYTES)
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            for index, row in enumerate(reader):
                if index == header_line:
                    return row
        except csv.Error as exc:
            raise FileError(f"The header row cannot be read as CSV: {exc}") from exc
    return []


def _pandas_names(fields: list[str], delimiter: str) -> list[str]:
    """The names pandas gives these header fields (blank ones 'Unnamed: 3', repeats 'PO.1'),
    stripped: what the file's columns are called everywhere else."""
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter).writerow(fields)
    frame = pd.read_csv(io.StringIO(text.getvalue()), sep=delimiter, nrows=0, dtype=str, engine="c")
    return [str(name).strip().replace("\x00", "") for name in frame.columns]


def _open_csv(path: Path, *, head: bytes, batch_rows: int, limits: ReadLimits) -> Table:
    newline = head.find(b"\n")
    if newline < 0 and path.stat().st_size > MAX_HEADER_BYTES:
        with path.open("rb") as handle:
            if b"\n" not in handle.read(MAX_HEADER_BYTES):
                raise FileError(
                    f"The first line is longer than {MAX_HEADER_BYTES // 1_048_576} MB with no line break: "
                    "this is not a table with a header row."
                )
    encoding, scan = _detect_encoding(path, head)
    sample = head.decode(encoding, errors="replace")
    if len(head) == 65536:  # do not sniff a line cut in half
        sample = sample[: sample.rfind("\n") + 1] or sample
    lines = sample.splitlines()
    delimiter = _sniff_delimiter("\n".join(lines[:50]))
    header_line = _find_header_line(lines, delimiter)
    fields = _header_fields(path, encoding=encoding, delimiter=delimiter, header_line=header_line)
    if not fields:
        raise FileError("The file is empty.")
    _check_width(fields, limits=limits, where="The header row")
    try:
        headers = _pandas_names(fields, delimiter)
    except (pd.errors.ParserError, ValueError) as exc:
        raise FileError(f"The header row cannot be read as CSV: {exc}") from exc
    first_data_row = header_line + 2

    def read(positions: list[int] | None) -> Iterator[Batch]:
        width = len(headers)
        wanted = list(range(width)) if positions is None else positions
        # pandas counts each row's fields (a row with too many is skipped and reported) only
        # when it parses every column; a wide file is parsed for its wanted columns alone.
        only = wanted if width > WIDE_COLUMNS and len(wanted) < width else None
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
                usecols=only,
                chunksize=batch_rows,
                on_bad_lines="warn",
                engine="c",
            )
        except pd.errors.EmptyDataError:
            return
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise FileError(f"The file cannot be read as CSV: {exc}") from exc
        yield from _csv_batches(reader, first_data_row, positions=wanted, names=[headers[i] for i in wanted])

    estimate = max(0, scan.lines - header_line - 1)
    return Table(
        headers=headers,
        estimated_rows=estimate or None,
        read=read,
        description=f"CSV, {encoding}, {'TAB' if delimiter == chr(9) else repr(delimiter)}-separated",
        nul_free=not scan.nul,
    )


def _csv_batches(reader, first_data_row: int, *, positions: list[int], names: list[str]) -> Iterator[Batch]:
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
        if len(frame.columns) != len(positions):  # every column was parsed: keep the wanted ones
            frame = frame.iloc[:, positions]
        frame.columns = names
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
# peak (it holds the whole sheet); openpyxl's read-only mode streamed it in 18.7 s at 46 MB,
# xlsx_stream reads 100,000 rows in about 1.6 s of CPU. Calamine up to this size (about
# 150,000 rows), xlsx_stream beyond, so memory stays bounded up to Excel's own limit of
# 1,048,576 rows.
XLSX_STREAM_BYTES = 10 * 1024 * 1024

_TEXT = pd.StringDtype(na_value=float("nan"))  # what pd.DataFrame(..., dtype=str) makes

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


def _calamine(call: Callable, *, what: str):
    """Run a calamine call. Its Rust code can panic on a hostile file, and pyo3 raises the
    panic as PanicException, a BaseException that `except Exception` lets through: it is
    turned into the FileError every caller handles."""
    try:
        return call()
    except Exception as exc:  # calamine raises its own error types
        raise FileError(f"{what}: {exc}") from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise FileError(f"{what}: the reader failed on its content ({exc}); the file is damaged or hostile.") from exc


def _headers_of(row) -> list[str]:
    """A header row's names, without the blank cells after the last name."""
    headers = [_cell_text(c).strip().replace("\x00", "") for c in row]
    while headers and not headers[-1]:
        headers.pop()
    return headers


def _choose_header(rows: list[list]) -> int | None:
    """The row of recognizable headers among the first ones, else the first with anything."""
    texts = [[_cell_text(c) for c in r] for r in rows]
    found = next((i for i, r in enumerate(texts) if looks_like_header(r)), None)
    if found is not None:
        return found
    return next((i for i, r in enumerate(texts) if any(t.strip() for t in r)), None)


def _frame(rows: list, *, headers: list[str], positions: list[int], first_row: int) -> Batch:
    cells = [[_cell_text(r[i]) if i < len(r) else "" for i in positions] for r in rows]
    frame = pd.DataFrame(cells, columns=[headers[i] for i in positions], dtype=str)
    frame.index = range(first_row, first_row + len(frame))
    return Batch(frame=frame, first_row=first_row)


def _open_excel(path: Path, *, ext: str, head: bytes, batch_rows: int, limits: ReadLimits) -> Table:
    from python_calamine import CalamineWorkbook

    magic = _EXCEL_MAGIC[ext]
    if not head.startswith(magic) and not (ext == ".xls" and head.startswith(b"PK\x03\x04")):
        kind = "a zip archive" if ext != ".xls" else "an OLE2 workbook"
        looks_text = b"\x00" not in head[:4096]
        hint = " It looks like text: if it is CSV, name it .csv." if looks_text else ""
        raise FileError(f"This {ext} file is not a valid Excel workbook (it is not {kind}).{hint}")
    streamed = ext == ".xlsx" and path.stat().st_size > XLSX_STREAM_BYTES
    try:
        if ext == ".ods":
            workbook_guard.scan_ods(path, limits=limits.for_workbooks())
        elif head.startswith(b"PK\x03\x04"):  # .xlsx, or an .xlsx named .xls (calamine reads both)
            workbook_guard.check_xlsx(path, limits=limits.for_workbooks(), whole_sheet=not streamed)
    except workbook_guard.WorkbookRefused as exc:
        raise FileError(str(exc)) from exc
    if streamed:
        return _open_xlsx_streaming(path, batch_rows=batch_rows, limits=limits)
    opened = f"This {ext} workbook cannot be opened"
    workbook = _calamine(lambda: CalamineWorkbook.from_path(str(path)), what=opened)

    chosen = None
    for sheet_name in _calamine(lambda: workbook.sheet_names, what=opened):
        sheet = _calamine(
            lambda name=sheet_name: workbook.get_sheet_by_name(name), what=f"Sheet {sheet_name!r} cannot be read"
        )
        # The grid calamine holds (old .xls files cannot exceed 65,536 x 256); never turned into
        # Python objects beyond the limit.
        grid = workbook_guard.Extent(rows=sheet.height, columns=sheet.width)
        try:
            workbook_guard.check_extent(sheet_name, grid, limits=limits.for_workbooks(), whole_sheet=True)
        except workbook_guard.WorkbookRefused as exc:
            raise FileError(str(exc)) from exc
        rows = _calamine(
            lambda sheet=sheet: list(itertools.islice(sheet.iter_rows(), HEADER_SEARCH_ROWS)),
            what=f"Sheet {sheet_name!r} cannot be read",
        )
        index = _choose_header(rows)
        if index is None:
            continue
        candidate = (sheet_name, sheet, rows, index)
        if looks_like_header([_cell_text(c) for c in rows[index]]):
            chosen = candidate
            break
        chosen = chosen or candidate  # kept unless a later sheet has real headers
    if chosen is None:
        raise FileError("The workbook has no sheet with data.")
    sheet_name, sheet, rows, header_index = chosen
    headers = _headers_of(rows[header_index])
    _check_width(headers, limits=limits, where=f"Sheet {sheet_name!r}")
    first_data_row = header_index + 2  # iter_rows starts at row 1 whatever the grid's first row
    last_row = (sheet.start[0] if sheet.start else 0) + sheet.height

    def read(positions: list[int] | None) -> Iterator[Batch]:
        positions = list(range(len(headers))) if positions is None else positions
        source = _calamine(sheet.iter_rows, what=f"Sheet {sheet_name!r} cannot be read")
        data = itertools.islice(source, header_index + 1, None)
        row = first_data_row
        while True:
            chunk = _calamine(
                lambda: list(itertools.islice(data, batch_rows)), what=f"Sheet {sheet_name!r} cannot be read"
            )
            if not chunk:
                return
            yield _frame(chunk, headers=headers, positions=positions, first_row=row)
            row += len(chunk)

    return Table(
        headers=headers,
        estimated_rows=max(0, last_row - header_index - 1) or None,
        read=read,
        description=f"{ext} workbook, sheet {sheet_name!r}",
    )


def _open_xlsx_streaming(path: Path, *, batch_rows: int, limits: ReadLimits) -> Table:
    try:
        workbook = xlsx_stream.Workbook(path)
    except xlsx_stream.SheetError as exc:
        raise FileError(str(exc)) from exc
    converter = xlsx_stream.Converter(workbook, _cell_text)
    chosen = None
    try:
        for sheet_name, member in workbook.sheets:
            sheet = xlsx_stream.SheetStream(workbook, member, sheet_name, converter)
            # Only the first rows, whatever width the sheet declares (<dimension> may claim XFD).
            head = [
                cells
                for number, cells in itertools.takewhile(
                    lambda row: row[0] <= HEADER_SEARCH_ROWS, sheet.rows(columns=None)
                )
            ]
            index = _choose_header(head)
            if index is None:
                continue
            candidate = (sheet, head, index)
            if looks_like_header(head[index]):
                chosen = candidate
                break
            chosen = chosen or candidate  # kept unless a later sheet has real headers
    except xlsx_stream.SheetError as exc:
        workbook.close()
        raise FileError(str(exc)) from exc
    if chosen is None:
        workbook.close()
        raise FileError("The workbook has no sheet with data.")
    sheet, head, header_index = chosen
    headers = _headers_of(head[header_index])
    _check_width(headers, limits=limits, where=f"Sheet {sheet.name!r}")
    first_data_row = header_index + 2

    def read(positions: list[int] | None) -> Iterator[Batch]:
        positions = list(range(len(headers))) if positions is None else positions
        names = [headers[i] for i in positions]
        blocks = sheet.blocks(columns=positions, first_row=first_data_row)
        pending: list[list] = []  # blocks of columns not yet in a batch
        pending_rows = 0
        row = first_data_row

        def batch(columns: list, count: int) -> Batch:
            frame = pd.DataFrame({i: pd.Series(column, dtype=_TEXT) for i, column in enumerate(columns)})
            frame.columns = names
            frame.index = range(row, row + count)
            return Batch(frame=frame, first_row=row)

        finished = False
        try:
            while True:
                try:
                    _first, count, arrays = next(blocks, (0, 0, None))
                except xlsx_stream.SheetError as exc:
                    raise FileError(str(exc)) from exc
                if arrays is not None:
                    pending.append(arrays)
                    pending_rows += count
                while pending_rows >= batch_rows or (arrays is None and pending_rows):
                    columns = [xlsx_stream.concat([p[i] for p in pending]) for i in range(len(positions))]
                    size = min(batch_rows, pending_rows)
                    yield batch([c.slice(0, size) for c in columns], size)
                    pending = [[c.slice(size) for c in columns]]
                    pending_rows -= size
                    row += size
                if arrays is None:
                    finished = True
                    return
        finally:
            blocks.close()
            # A read left early (the mapping step's sample) leaves the workbook open for the
            # load's own read; the archive closes with the table otherwise.
            if finished:
                workbook.close()

    # The sheet's declared size: a guess for the progress bar, never trusted beyond the limit.
    estimate = min(sheet.declared_rows or 0, workbook_guard.MAX_SHEET_ROWS) - header_index - 1
    return Table(
        headers=headers,
        estimated_rows=estimate if estimate > 0 else None,
        read=read,
        description=f".xlsx workbook, sheet {sheet.name!r} (streamed)",
    )
