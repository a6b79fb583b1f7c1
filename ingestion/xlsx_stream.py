"""An .xlsx worksheet streamed as rows of text, a block of rows at a time, in bounded memory.

openpyxl's read-only mode streams a sheet too, but builds a Python object per cell and per XML
element (about 1,000 rows a second on a busy machine); calamine is fast but holds the whole
sheet. Here the sheet's XML is inflated a few megabytes at a time and cut after a row's end.
A block whose every tag is one the cells of every writer use (Excel, openpyxl, LibreOffice:
`<c r="B2" s="1" t="s"><v>7</v></c>`, inline strings, formulas with their cached value, empty
styled cells) is read from the positions of its tags alone, in numpy and Arrow
(`_fast_cells`); else one regular expression that recognizes those cells reads it cell by
cell. A block holding anything else (another attribute order, namespace prefixes, rich
inline text, comments, cells without a reference) is parsed whole with defusedxml instead,
so every block is read exactly; only the common one is read fast. Values become text
exactly as openpyxl's reader and reading._cell_text make them (its own helpers convert
dates, times, durations, rich text and shared strings), so both readers give the same rows.

Rows come numbered as a spreadsheet shows them: a gap in the row numbers is filled with
blank rows, trailing rows without values (formatted only) are not produced at all."""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from defusedxml import ElementTree

from . import workbook_guard

CHUNK_BYTES = 1 << 20
# Rows are read this much XML at a time (about 1,600 rows of a 12-column export).
BLOCK_BYTES = 1 << 20
# The rows read cell by cell (the header search) are read this much XML at a time.
PIECE_BYTES = 64 << 10
# A row whose XML runs longer than this without ending is not a real row.
MAX_ROW_BYTES = 64 << 20
# Where a sheet's rows begin must be found within this much of its XML.
MAX_PROLOGUE_BYTES = 32 << 20

_CELL_RE = re.compile(
    r"<(?:"
    r'c r="([A-Z]{1,3})([0-9]{1,7})"(?: s="([0-9]{1,9})")?(?: t="([a-zA-Z]{1,9})")?'
    r"(?:/>|>(?:<f>[^<]*</f>|<f [^>]*/>|<f [^>]*>[^<]*</f>)?"
    r'(?:<v>([^<]*)</v>|<is><t(?: xml:space="preserve")?>([^<]*)</t></is>)?</c>)'
    r"|row[ >/]|/row>|(.))",
    re.S,
)
_ROOT_RE = re.compile(rb"<([A-Za-z_][\w.:-]*)[^>]*>")
_SHEET_DATA_RE = re.compile(rb"<((?:[\w.-]+:)?sheetData)(?:\s[^>]*)?(/?)>")
_DIMENSION_RE = re.compile(rb'<(?:[\w.-]+:)?dimension\s+ref="[A-Z]*([0-9]*)(?::[A-Z]*([0-9]*))?"')
_ENTITY_RE = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z]+);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


class SheetError(ValueError):
    """The sheet's XML cannot be read; the message says where, for the uploader."""


# One cell as the expression finds it: column letters, row number, style, type, value, inline text.
Cell = tuple[str, str, str, str, str, str]


def column_index(letters: str) -> int:
    """0-based column of 'A', 'B', ... 'XFD'."""
    return workbook_guard.column_number(letters) - 1


@dataclass
class Styles:
    date_formats: set[int]
    timedelta_formats: set[int]


class Workbook:
    """The parts every sheet needs: shared strings, which styles are dates, the date system."""

    def __init__(self, path: Path) -> None:
        try:
            self.archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise SheetError(f"This .xlsx workbook cannot be opened: {exc}") from exc
        try:
            self.sheets = workbook_guard.xlsx_sheets(self.archive)
            self.epoch = self._epoch()
            self.styles = self._styles()
            self.strings = self._strings()
        except workbook_guard.WorkbookRefused as exc:
            self.archive.close()
            raise SheetError(str(exc)) from exc
        except Exception as exc:  # a damaged part: zip, XML or openpyxl's reading of it
            self.archive.close()
            raise SheetError(f"This .xlsx workbook cannot be opened: {exc}") from exc

    def close(self) -> None:
        self.archive.close()

    def _member(self, name: str) -> str | None:
        return next((n for n in self.archive.namelist() if n.lower() == name.lower()), None)

    def _epoch(self):
        from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900

        if "xl/workbook.xml" not in self.archive.NameToInfo:
            return CALENDAR_WINDOWS_1900
        root = workbook_guard._parse_small(self.archive, "xl/workbook.xml", kind=".xlsx")
        for element in root.iter():
            local = workbook_guard._local(element.tag)
            if local == "workbookPr" and element.get("date1904", "").lower() in ("1", "true"):
                return CALENDAR_MAC_1904
        return CALENDAR_WINDOWS_1900

    def _styles(self) -> Styles:
        from openpyxl.styles.stylesheet import Stylesheet

        name = self._member("xl/styles.xml")
        if name is None:
            return Styles(set(), set())
        sheet = Stylesheet.from_tree(workbook_guard._parse_small(self.archive, name, kind=".xlsx"))
        return Styles(set(sheet.date_formats), set(sheet.timedelta_formats))

    def _strings(self) -> list[str]:
        from openpyxl.reader.strings import read_string_table

        name = self._member("xl/sharedStrings.xml")
        if name is None:
            return []
        with self.archive.open(name) as stream:
            return read_string_table(stream)


class Converter:
    """A cell's value as text, exactly as openpyxl's reader and reading._cell_text make it."""

    def __init__(self, workbook: Workbook, cell_text: Callable[[object], str]) -> None:
        self.workbook = workbook
        self.cell_text = cell_text
        self._numbers: dict[tuple[str, str], str] = {}

    def text(self, style: str, kind: str, value: str, inline: str) -> str:
        if kind == "inlineStr":
            return inline
        if not value:
            return ""
        if kind == "" or kind == "n":
            key = (style, value)
            found = self._numbers.get(key)
            if found is None:
                if len(self._numbers) > 200_000:
                    self._numbers.clear()
                found = self._numbers[key] = self._number(style, value)
            return found
        if kind == "s":
            try:
                return self.workbook.strings[int(value)]
            except (ValueError, IndexError) as exc:
                raise SheetError(f"refers to shared string {value}, which the workbook does not hold") from exc
        if kind == "b":
            return "TRUE" if int(value) else "FALSE"
        if kind == "d":
            from openpyxl.utils.datetime import from_ISO8601

            return self.cell_text(from_ISO8601(value))
        return value  # 'str' (a formula's text), 'e' (an error such as #N/A)

    def _number(self, style: str, value: str) -> str:
        number: float | int = float(value) if ("." in value or "E" in value or "e" in value) else int(value)
        styles = self.workbook.styles
        style_id = int(style) if style else 0
        if style_id in styles.date_formats:
            from openpyxl.utils.datetime import from_excel

            try:
                return self.cell_text(
                    from_excel(number, self.workbook.epoch, timedelta=style_id in styles.timedelta_formats)
                )
            except (OverflowError, ValueError):
                return "#VALUE!"
        return self.cell_text(number)


def _unescape(text: str) -> str:
    """XML's view of character data: entities and character references resolved, line ends as LF."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" not in text:
        return text

    def entity(match: re.Match) -> str:
        name = match.group(1)
        if name[0] == "#":
            return chr(int(name[2:], 16) if name[1] in "xX" else int(name[1:]))
        if name not in _ENTITIES:
            raise SheetError(f"holds an undefined XML entity &{name};")
        return _ENTITIES[name]

    return _ENTITY_RE.sub(entity, text)


class SheetStream:
    """One worksheet's rows: `rows(...)` yields (row number, cells) from the first row that
    has a value; cells are lists of text, one per column asked for."""

    def __init__(self, workbook: Workbook, member: str, name: str, converter: Converter) -> None:
        self.workbook = workbook
        self.member = member
        self.name = name
        self.converter = converter
        self.declared_rows: int | None = None

    # --- the XML, in blocks of whole rows ---

    def _chunks(self, size: int) -> Iterator[bytes]:
        try:
            with self.workbook.archive.open(self.member) as stream:
                while chunk := stream.read(size):
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise SheetError(
                f"This .xlsx workbook is damaged: its part {self.member} does not match its declared size "
                f"or checksum ({exc})."
            ) from exc

    def _blocks(self, block_bytes: int = 0) -> Iterator[tuple[tuple[str, str], bytes]]:
        """(wrapper, block) pairs: blocks of whole rows from <sheetData>, the wrapper being
        what a parser needs around a block to read it alone (the root and sheetData start
        tags, with their namespaces, and their end tags). A part without <sheetData> (a
        chart sheet) has no rows."""
        block_bytes = block_bytes or BLOCK_BYTES
        chunks = self._chunks(min(CHUNK_BYTES, block_bytes))
        pending = b""
        match = None
        for chunk in chunks:
            pending += chunk
            match = _SHEET_DATA_RE.search(pending)
            if match is not None or len(pending) > MAX_PROLOGUE_BYTES:
                break
        if match is None:
            return
        prologue = pending[: match.start()]
        if b"<!DOCTYPE" in prologue or b"<!ENTITY" in prologue:
            raise SheetError(f"Sheet {self.name!r} holds XML constructs that are not allowed (a DTD).")
        dimension = _DIMENSION_RE.search(prologue)
        if dimension is not None:
            last = dimension.group(2) or dimension.group(1)
            self.declared_rows = int(last) if last else None
        root = _ROOT_RE.search(prologue)
        if root is None:
            raise SheetError(f"Sheet {self.name!r} is not a worksheet.")
        sheet_data = match.group(1).decode()
        root_tag = root.group(0).decode("utf-8", errors="replace")
        wrapper = (f"{root_tag}<{sheet_data}>", f"</{sheet_data}></{root.group(1).decode()}>")
        if match.group(2):  # <sheetData/>: no rows
            return
        parts = [pending[match.end() :]]
        size = len(parts[0])
        for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size < block_bytes:
                continue
            pending = b"".join(parts)
            cut = _row_end(pending)
            if cut < 0:
                if size > MAX_ROW_BYTES:
                    raise SheetError(f"Sheet {self.name!r} has a row longer than {MAX_ROW_BYTES >> 20} MB of XML.")
                parts = [pending]
                continue
            yield wrapper, pending[:cut]
            parts = [pending[cut:]]
            size = len(parts[0])
        pending = b"".join(parts)
        end = pending.find(f"</{sheet_data}>".encode())
        if end >= 0:
            pending = pending[:end]
        if pending.strip():
            yield wrapper, pending

    # --- cells of a block ---

    def _cells(self, wrapper: tuple[str, str], data: bytes, *, last_row: int) -> list[Cell]:
        try:
            block = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SheetError(f"is not UTF-8 text ({exc})") from exc
        found = _CELL_RE.findall(block)
        if any(f[6] for f in found):
            return self._parsed_cells(wrapper, block, last_row=last_row)
        cells = [f[:6] for f in found if f[0]]
        if "&" in block or "\r" in block:
            cells = [(c, r, s, t, _unescape(v), _unescape(i)) for c, r, s, t, v, i in cells]
        return cells

    def _parsed_cells(self, wrapper: tuple[str, str], block: str, *, last_row: int) -> list[Cell]:
        """The block parsed whole: whatever form its XML takes, as a parser reads it (a row
        without a number follows `last_row`, a cell without a reference the previous cell)."""
        from openpyxl.cell.text import Text

        xml = f"{wrapper[0]}{block}{wrapper[1]}"
        try:
            root = ElementTree.fromstring(xml)
        except ElementTree.ParseError as exc:
            raise SheetError(f"is not valid XML ({exc})") from exc
        except ValueError as exc:  # defusedxml's refusals
            raise SheetError(f"holds XML constructs that are not allowed ({exc})") from exc
        sheet_data = root[0] if len(root) else root
        cells: list[Cell] = []
        row_number = last_row
        for row in sheet_data:
            if workbook_guard._local(row.tag) != "row":
                continue
            r = row.get("r")
            row_number = int(r) if r and r.isdigit() else row_number + 1
            column = 0
            for cell in row:
                if workbook_guard._local(cell.tag) != "c":
                    continue
                ref = cell.get("r")
                if ref:
                    letters = ref.rstrip("0123456789")
                    digits = ref[len(letters) :]
                    if not letters.isalpha() or not digits.isdigit():
                        raise SheetError(f"has a cell reference {ref!r} that is not a cell")
                    column = workbook_guard.column_number(letters.upper())
                    number = digits
                else:
                    column += 1
                    number = str(row_number)
                kind = cell.get("t", "")
                value = inline = ""
                for child in cell:
                    local = workbook_guard._local(child.tag)
                    if local == "v":
                        value = child.text or ""
                    elif local == "is" and kind == "inlineStr":
                        inline = Text.from_tree(_in_main_ns(child)).content
                cells.append(
                    (workbook_guard.column_letters(column), number, cell.get("s", ""), kind, value, inline or "")
                )
        return cells

    # --- batches of columns ---

    def blocks(self, *, columns: list[int], first_row: int) -> Generator[tuple[int, int, list[pa.Array]], None, None]:
        """(first row number, rows, one Arrow array of text per column asked for) for every block
        of rows from `first_row` up to the last row with a value in those columns; gaps in
        the row numbers are filled with blank rows, so blocks follow each other row for row."""
        slots = {workbook_guard.column_letters(c + 1): i for i, c in enumerate(columns)}
        slot_of = np.full(_MAX_LETTERS_COLUMN + 1, -1, dtype=np.int64)  # by column number
        for i, c in enumerate(columns):
            slot_of[c + 1] = i
        emitted = first_row - 1  # the last row produced
        seen = 0  # the last row met
        for wrapper, block in self._blocks():
            try:
                fast = _fast_cells(block)
                found = None if fast is None else self._convert(*fast, slot_of=slot_of)
                if found is None:
                    cells = self._cells(wrapper, block, last_row=seen)
                    found = _cells_as_arrays(cells, slots, self.converter.text)
            except SheetError as exc:
                raise SheetError(f"Sheet {self.name!r}, after row {seen}, {exc}.") from exc
            except (ValueError, TypeError, OverflowError, pa.ArrowInvalid) as exc:
                raise SheetError(
                    f"Sheet {self.name!r}, after row {seen}, holds a value not valid for its type ({exc})."
                ) from exc
            rows, slot, texts = found
            if not len(rows):
                continue
            if rows[0] < seen or (len(rows) > 1 and (np.diff(rows) < 0).any()):
                raise SheetError(f"Sheet {self.name!r} is damaged: its rows are not in order after row {seen}.")
            seen = int(rows[-1])
            if seen > workbook_guard.MAX_SHEET_ROWS:
                raise SheetError(
                    f"Sheet {self.name!r} has more than {workbook_guard.MAX_SHEET_ROWS:,} rows, more than a "
                    "worksheet can hold: the file is not a real workbook."
                )
            keep = (rows >= first_row) & (slot >= 0)
            keep &= pc.not_equal(texts, "").to_numpy(zero_copy_only=False)
            if not keep.any():
                continue
            index = np.flatnonzero(keep)
            rows, slot = rows[index], slot[index]
            last = int(rows[-1])
            count = last - emitted
            arrays = []
            for position in range(len(columns)):
                take = np.full(count, -1, dtype=np.int64)
                mine = slot == position
                take[rows[mine] - emitted - 1] = index[mine]
                picked = pc.take(texts, pa.array(take, mask=take < 0))
                arrays.append(pc.fill_null(picked, ""))
            _POOL.release_unused()  # mimalloc keeps freed blocks otherwise: tens of MB per worker
            yield emitted + 1, count, arrays
            emitted = last

    def _convert(
        self, numbers: np.ndarray, rows: np.ndarray, attrs: pa.Array, values: pa.Array, escaped: bool, *, slot_of
    ):
        """(row numbers, column slots, texts) of the cells, their values made text; None when
        a cell has attributes the fast path does not know."""
        if not len(rows):
            return rows, rows, values
        slot = slot_of[numbers]
        if escaped and pc.any(pc.match_substring_regex(values, r"[&\r]")).as_py():
            values = pa.array([_unescape(v) for v in values.to_pylist()], pa.string())
        encoded = pc.dictionary_encode(attrs)
        kinds, styles, types = [], [], []
        for text in encoded.dictionary.to_pylist():
            match = _ATTRS_RE.fullmatch(text)
            if match is None:
                return None
            style, kind = match.group(1) or "", match.group(2) or ""
            styles.append(style)
            types.append(kind)
            kinds.append(self._kind(style, kind))
        kind_of = np.array(kinds, dtype=np.int64)
        cell_kinds = kind_of[encoded.indices.to_numpy(zero_copy_only=False)]
        texts = values
        slow = np.zeros(len(values), dtype=bool)
        wanted = slot >= 0
        numeric = np.flatnonzero(wanted & (cell_kinds == _NUMBER))
        if len(numeric):
            number = pc.take(values, pa.array(numeric))
            plain = pc.or_(
                pc.match_substring_regex(number, _PLAIN_INTEGER),
                pc.and_(
                    pc.and_(
                        pc.match_substring_regex(number, _PLAIN_DECIMAL),
                        pc.invert(pc.match_substring_regex(number, _TINY_DECIMAL)),
                    ),
                    pc.less_equal(
                        pc.subtract(pc.utf8_length(number), pc.cast(pc.starts_with(number, "-"), pa.int32())), 16
                    ),
                ),
            ).to_numpy(zero_copy_only=False)
            slow[numeric[~plain]] = True
        dates = np.flatnonzero(wanted & (cell_kinds == _DATE))
        if len(dates):
            serial = pc.take(values, pa.array(dates))
            whole = pc.match_substring_regex(serial, _WHOLE_DAYS).to_numpy(zero_copy_only=False)
            serials = np.zeros(len(dates), dtype=np.int64)
            if whole.any():
                serials[whole] = pc.cast(pc.filter(serial, pa.array(whole)), pa.int64()).to_numpy()
            fast = whole & (serials >= _FIRST_PLAIN_SERIAL) & (serials <= _LAST_SERIAL)
            slow[dates[~fast]] = True
            if fast.any():
                distinct, back = np.unique(serials[fast], return_inverse=True)
                days = pa.array((_EXCEL_EPOCH + distinct.astype("timedelta64[D]")).astype(str))
                mask = np.zeros(len(values), dtype=bool)
                mask[dates[fast]] = True
                texts = pc.replace_with_mask(texts, pa.array(mask), pc.take(days, pa.array(back)))
        shared = wanted & (cell_kinds == _SHARED) & pc.not_equal(values, "").to_numpy(zero_copy_only=False)
        if shared.any():
            index = pc.cast(pc.filter(values, pa.array(shared)), pa.int64()).to_numpy()
            if len(index) and (index.min() < 0 or index.max() >= len(self.workbook.strings)):
                raise SheetError("refers to a shared string the workbook does not hold")
            picked = pc.take(self._strings(), pa.array(index))
            texts = pc.replace_with_mask(texts, pa.array(shared), picked)
        slow |= wanted & ((cell_kinds == _BOOL) | (cell_kinds == _OTHER))
        if slow.any():
            where = np.flatnonzero(slow)
            kinds_at = encoded.indices.to_numpy(zero_copy_only=False)[where]
            raw = pc.take(values, pa.array(where)).to_pylist()
            text = self.converter.text
            converted = [text(styles[k], types[k], v, "") for k, v in zip(kinds_at, raw, strict=True)]
            texts = pc.replace_with_mask(texts, pa.array(slow), pa.array(converted, pa.string()))
        return rows, slot, texts

    def _kind(self, style: str, kind: str) -> int:
        if kind in ("inlineStr", "str", "e"):
            return _AS_IS
        if kind in ("", "n"):
            style_id = int(style) if style else 0
            styles = self.workbook.styles
            if style_id not in styles.date_formats:
                return _NUMBER
            plain_dates = style_id not in styles.timedelta_formats and self.workbook.epoch.year == 1899
            return _DATE if plain_dates else _OTHER
        if kind == "s":
            return _SHARED
        if kind == "b":
            return _BOOL
        return _OTHER

    def _strings(self) -> pa.Array:
        if self._shared is None:
            self._shared = pa.array(self.workbook.strings, pa.string())
        return self._shared

    _shared: pa.Array | None = None

    # --- rows ---

    def rows(self, *, columns: list[int] | None, first_row: int = 1) -> Iterator[tuple[int, list[str]]]:
        """(row number, texts) of every row from `first_row` up to the last row with a value,
        gaps filled with blank rows. `columns`: the 0-based columns wanted (None: every column
        up to the row's last value)."""
        slots: dict[str, int] | None = None
        width = 0
        if columns is not None:
            slots = {workbook_guard.column_letters(c + 1): i for i, c in enumerate(columns)}
            width = len(columns)
        text = self.converter.text
        emitted = first_row - 1  # the last row produced
        current = 0
        values: list[str] | dict[int, str] = []
        for wrapper, block in _pieces(self._blocks()):
            try:
                cells = self._cells(wrapper, block, last_row=current)
            except SheetError as exc:
                raise SheetError(f"Sheet {self.name!r}, after row {max(emitted, current)}, {exc}.") from exc
            for letters, number, style, kind, value, inline in cells:
                if slots is None:
                    slot = column_index(letters)
                    if slot >= workbook_guard.MAX_SHEET_COLUMNS:
                        raise SheetError(
                            f"Sheet {self.name!r} has a cell in column {letters}, beyond the "
                            f"{workbook_guard.MAX_SHEET_COLUMNS:,} columns a worksheet holds."
                        )
                else:
                    found = slots.get(letters)
                    if found is None:
                        continue
                    slot = found
                row = int(number)
                if row != current:
                    if row < current:
                        raise SheetError(f"Sheet {self.name!r} is damaged: its row {row} comes after row {current}.")
                    if current > emitted and any(_as_list(values, width)):
                        yield from _fill(emitted, current, width, slots is None)
                        yield current, _as_list(values, width)
                        emitted = current
                    current = row
                    values = [""] * width if slots is not None else {}
                    if row > workbook_guard.MAX_SHEET_ROWS:
                        raise SheetError(
                            f"Sheet {self.name!r} has more than {workbook_guard.MAX_SHEET_ROWS:,} rows, more than a "
                            "worksheet can hold: the file is not a real workbook."
                        )
                if row < first_row:
                    continue
                try:
                    cell_text = text(style, kind, value, inline)
                except SheetError as exc:
                    raise SheetError(f"Sheet {self.name!r}, cell {letters}{number}, {exc}.") from exc
                except (ValueError, TypeError, OverflowError) as exc:
                    raise SheetError(
                        f"Sheet {self.name!r}, cell {letters}{number}: {value!r} is not a valid value of its type."
                    ) from exc
                if cell_text:
                    values[slot] = cell_text
        if current > emitted and current >= first_row and any(_as_list(values, width)):
            yield from _fill(emitted, current, width, slots is None)
            yield current, _as_list(values, width)


# --- the fast path: a block of common cells, read by Arrow and numpy --------------------------

# The tags of common cells, by the (up to four) bytes after their '<'; a block whose every
# '<' opens one of them, in the order common cells put them, is read from the tags'
# positions, without a parser.
_UNKNOWN, _C, _C_END, _V, _V_END, _IS, _IS_END, _T, _T_END, _F, _ROW, _ROW_END = range(12)
_TAGS = [
    (_C, b"c "),
    (_C_END, b"/c>"),
    (_V, b"v>"),
    (_V_END, b"/v>"),
    (_IS, b"is>"),
    (_IS_END, b"/is>"),
    (_T, b"t>"),
    (_T, b"t "),
    (_T_END, b"/t>"),
    (_F, b"f>"),
    (_F, b"f "),
    (_F, b"/f>"),
    (_ROW, b"row "),
    (_ROW, b"row>"),
    (_ROW_END, b"/row"),  # and '>' after it
]


def _key(pattern: bytes) -> tuple[int, int]:
    """The pattern as a little-endian integer of up to four bytes, and the mask of its length."""
    padded = pattern.ljust(4, b"\x00")
    return int.from_bytes(padded, "little"), int.from_bytes(
        b"\xff" * len(pattern) + b"\x00" * (4 - len(pattern)), "little"
    )


def _tag_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """By the two bytes after a '<' (a little-endian 16-bit number): the tag they can only
    begin, and the value and mask of its (up to four) bytes to confirm it. Both `row` tags
    begin with 'ro': the table confirms 'row', the byte after it is checked apart."""
    code = np.full(1 << 16, _UNKNOWN, dtype=np.int8)
    value = np.zeros(1 << 16, dtype=np.uint32)
    mask = np.zeros(1 << 16, dtype=np.uint32)
    for kind, pattern in _TAGS:
        known, known_mask = _key(pattern[:3] if kind == _ROW else pattern)
        slot = known & 0xFFFF
        assert code[slot] in (_UNKNOWN, kind), pattern  # two bytes name one tag
        code[slot], value[slot], mask[slot] = kind, known, known_mask
    return code, value, mask


_TAG_CODE, _TAG_VALUE, _TAG_MASK = _tag_table()
_POOL = pa.default_memory_pool()
_MAX_LETTERS_COLUMN = 26**3 + 26**2 + 26  # ZZZ
_ATTRS_RE = re.compile(r'(?: s="([0-9]{1,9})")?(?: t="([a-zA-Z]{1,9})")?')
# Numbers whose text openpyxl and reading._cell_text give back unchanged: integers, and
# decimals of at most 15 digits not below 0.0001 (repr writes those the same way).
_PLAIN_INTEGER = r"^(?:0|-?[1-9][0-9]*)$"
_PLAIN_DECIMAL = r"^-?(?:0|[1-9][0-9]{0,14})\.[0-9]{0,14}[1-9]$"
_TINY_DECIMAL = r"^-?0\.0000"
_WHOLE_DAYS = r"^[1-9][0-9]{1,6}$"
# Serials of whole days numpy turns into the dates openpyxl's from_excel gives (1900 system:
# from 1 March 1900, after Excel's phantom 29 February, to 31 December 9999).
_FIRST_PLAIN_SERIAL, _LAST_SERIAL = 61, 2_958_465
_EXCEL_EPOCH = np.datetime64("1899-12-30", "D")
# Kinds of cell, by their style and type attributes.
_AS_IS, _NUMBER, _DATE, _SHARED, _BOOL, _OTHER = range(6)


def _fast_cells(block: bytes):
    """(column numbers, row numbers, attribute strings, values) of a block's cells with a
    value: numpy arrays and Arrow arrays, found by the positions of the block's tags alone.
    None when the block holds anything but common cells (see _TAGS)."""
    if b"\x00" in block:
        return None
    a = np.frombuffer(block + b"\x00" * 8, dtype=np.uint8)
    lt = np.flatnonzero(a[: len(block)] == 60)
    if not len(lt):
        return None
    # The four bytes after each '<' as one number (a view of the bytes at every offset).
    quads = np.ndarray((len(a) - 3,), dtype="<u4", buffer=a, strides=(1,))
    key = quads[lt + 1]
    slot = key & np.uint32(0xFFFF)
    kind = _TAG_CODE[slot]
    kind[(key & _TAG_MASK[slot]) != _TAG_VALUE[slot]] = _UNKNOWN
    if (kind == _UNKNOWN).any() or (a[lt[kind == _ROW_END] + 5] != 62).any():
        return None
    row_next = a[lt[kind == _ROW] + 4]  # 'row' then a space or '>'
    if ((row_next != 32) & (row_next != 62)).any():
        return None
    padded = np.concatenate([kind, np.full(4, _UNKNOWN, dtype=np.int8)])
    v = np.flatnonzero(kind == _V)
    t = np.flatnonzero(kind == _T)
    if len(v) and not ((padded[v + 1] == _V_END) & (padded[v + 2] == _C_END)).all():
        return None
    if (
        len(t)
        and not (
            (kind[t - 1] == _IS) & (padded[t + 1] == _T_END) & (padded[t + 2] == _IS_END) & (padded[t + 3] == _C_END)
        ).all()
    ):
        return None
    tags = np.sort(np.concatenate([v, t]))  # the tag opening each value, in order
    cells = np.flatnonzero(kind == _C)
    if not len(tags):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), pa.array([], pa.string()), pa.array([], pa.string()), False
    which = np.searchsorted(cells, tags) - 1  # each value's cell: the last one opened before it
    if which[0] < 0 or (len(which) > 1 and (np.diff(which) <= 0).any()):
        return None
    owner = cells[which]
    closed = np.cumsum(kind == _C_END)
    if (closed[tags] != closed[owner]).any():  # a cell ended between its start and the value
        return None
    start = lt[owner]
    if not ((a[start + 3] == 114) & (a[start + 4] == 61) & (a[start + 5] == 34)).all():  # r="
        return None
    quotes = np.flatnonzero(a == 34)
    greater = np.flatnonzero(a == 62)
    ref_end = quotes[np.searchsorted(quotes, start + 6)]
    tag_end = greater[np.searchsorted(greater, start)]
    if (a[tag_end - 1] == 47).any() or (ref_end > tag_end).any():  # self-closing, or r= not closed in the tag
        return None
    numbers, rows = _references(a, start + 6, ref_end)
    if numbers is None:
        return None
    value_tag = lt[tags]
    value_start = greater[np.searchsorted(greater, value_tag)] + 1
    value_end = lt[tags + 1]
    attrs = _gather(a, ref_end + 1, tag_end)
    values = _gather(a, value_start, value_end)
    escaped = b"&" in block or b"\r" in block
    try:
        return numbers, rows, pc.cast(attrs, pa.string()), pc.cast(values, pa.string()), escaped
    except pa.ArrowInvalid as exc:
        raise SheetError(f"is not UTF-8 text ({exc})") from exc


def _references(a: np.ndarray, start: np.ndarray, end: np.ndarray):
    """Column and row numbers of cell references 'A1' to 'ZZZ9999999' (None if any is not
    one): one to three capitals, then one to seven digits. Read a character position at a
    time across all the references (`a` holds at least seven bytes after any reference's
    end), so the work is a few passes over one array per position."""
    length = end - start
    if (length < 2).any() or (length > 10).any():
        return None, None

    def capital(at: np.ndarray) -> np.ndarray:
        c = a[at]
        return (c >= 65) & (c <= 90)

    if not capital(start).all():
        return None, None
    second = capital(start + 1)
    third = second & capital(start + 2)
    if (third & capital(start + 3)).any():
        return None, None
    numbers = a[start].astype(np.int64) - 64
    numbers = np.where(second, numbers * 26 + a[start + 1] - 64, numbers)
    numbers = np.where(third, numbers * 26 + a[start + 2].astype(np.int64) - 64, numbers)
    first_digit = start + 1 + second + third
    digits = end - first_digit
    if (digits < 1).any() or (digits > 7).any():
        return None, None
    rows = np.zeros(len(start), dtype=np.int64)
    for k in range(int(digits.max())):
        active = k < digits
        digit = a[first_digit + k].astype(np.int64) - 48
        if (((digit < 0) | (digit > 9)) & active).any():
            return None, None
        rows = np.where(active, rows * 10 + digit, rows)
    return numbers, rows


def _gather(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The byte spans [start, end) of `a`, as one Arrow binary array (copied once, contiguously)."""
    lengths = (ends - starts).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    data = a[index]
    return pa.Array.from_buffers(pa.binary(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _cells_as_arrays(cells: list[Cell], slots: dict[str, int], text: Callable[[str, str, str, str], str]):
    """(row numbers, column slots, texts) of cells met one by one (a block the fast path could not read)."""
    rows, slot, texts = [], [], []
    for letters, number, style, kind, value, inline in cells:
        found = slots.get(letters)
        if found is None:
            continue
        rows.append(int(number))
        slot.append(found)
        texts.append(text(style, kind, value, inline))
    return np.array(rows, dtype=np.int64), np.array(slot, dtype=np.int64), pa.array(texts, pa.string())


def _pieces(blocks: Iterator[tuple[tuple[str, str], bytes]]) -> Iterator[tuple[tuple[str, str], bytes]]:
    """Blocks cut again at row ends into pieces of about PIECE_BYTES, read one by one: the
    rows met cell by cell (the header search) cost a few megabytes, not tens."""
    for wrapper, block in blocks:
        start = 0
        while start < len(block):
            cut = _row_end(block[start : start + PIECE_BYTES]) if len(block) - start > PIECE_BYTES else -1
            end = start + cut if cut > 0 else len(block)
            yield wrapper, block[start:end]
            start = end


def _in_main_ns(element):
    """An inline string's element tree with its tags in the main namespace, which openpyxl's
    Text expects (a strict-conformance workbook uses another)."""
    for node in element.iter():
        local = workbook_guard._local(node.tag)
        node.tag = f"{{{_MAIN_NS}}}{local}"
    return element


def _as_list(values: list[str] | dict[int, str], width: int) -> list[str]:
    if isinstance(values, list):
        return values
    if not values:
        return []
    cells = [""] * (max(values) + 1)
    for slot, text in values.items():
        cells[slot] = text
    return cells


def _fill(emitted: int, row: int, width: int, ragged: bool) -> Iterator[tuple[int, list[str]]]:
    for number in range(emitted + 1, row):
        yield number, [] if ragged else [""] * width


def _row_end(data: bytes) -> int:
    """Just after the last complete row end tag (</row>, or a prefixed one), else -1."""
    cut = data.rfind(b"</row>")
    if cut >= 0:
        return cut + 6
    index = len(data)
    while (index := data.rfind(b"row", 0, index)) >= 0:
        after = index + 3
        while after < len(data) and data[after] in b" \t\r\n":
            after += 1
        if after < len(data) and data[after] == ord(">"):
            lt = data.rfind(b"<", 0, index)
            if lt >= 0 and re.fullmatch(rb"</(?:[\w.-]+:)?", data[lt:index]):
                return after + 1
    return -1


def concat(arrays: list[pa.Array]) -> pa.Array:
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
