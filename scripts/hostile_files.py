"""Small files that used to hurt a worker, built on the spot (never committed): the tests
send them, and `python scripts/hostile_files.py --measure` reads each one through
`ingestion.reading` in a child process under a memory cap and prints its time and peak RSS.

    python scripts/hostile_files.py --out /tmp/hostile            # write them
    python scripts/hostile_files.py --out /tmp/hostile --measure  # and measure each
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

HEADER = ["Supplier", "SKU", "PO Number", "Qty", "Unit Price"]

_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    b'<Override PartName="/xl/sharedStrings.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    b"</Types>"
)
_ROOT_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" '
    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    b'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    b'<sheets><sheet name="Orders" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" '
    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    b'Target="worksheets/sheet1.xml"/>'
    b'<Relationship Id="rId2" '
    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    b'Target="sharedStrings.xml"/></Relationships>'
)
_SHEET_OPEN = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _cell(ref: str, value: object) -> bytes:
    if isinstance(value, str):
        return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'.encode()
    return f'<c r="{ref}"><v>{value}</v></c>'.encode()


def xml_row(number: int, values: Iterable[object], *, first_column: int = 1) -> bytes:
    cells = b"".join(_cell(f"{column_letters(first_column + i)}{number}", v) for i, v in enumerate(values))
    return f'<row r="{number}">'.encode() + cells + b"</row>"


def order_values(index: int) -> list[object]:
    return [f"Supplier {index % 7}", f"M-{index % 50}", f"PO-{index // 10}", index % 9 + 1, "2.50"]


def write_xlsx(
    path: Path,
    rows: Iterable[bytes],
    *,
    dimension: str | None = None,
    shared_strings: bytes | None = None,
) -> Path:
    """A minimal, valid .xlsx whose one sheet ('Orders') holds `rows` (XML <row> elements),
    streamed into the zip so that a sheet of gigabytes costs no memory to build."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr(
            "xl/sharedStrings.xml",
            shared_strings
            or b'<?xml version="1.0" encoding="UTF-8"?>\n'
            b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="0" uniqueCount="0"/>',
        )
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(_SHEET_OPEN)
            if dimension:
                sheet.write(f'<dimension ref="{dimension}"/>'.encode())
            sheet.write(b"<sheetData>")
            buffer = bytearray()
            for row in rows:
                buffer += row
                if len(buffer) > 1 << 20:
                    sheet.write(bytes(buffer))
                    buffer.clear()
            sheet.write(bytes(buffer) + b"</sheetData></worksheet>")
    return path


def order_rows(count: int, *, start: int = 2) -> Iterator[bytes]:
    yield xml_row(1, HEADER)
    for i in range(count):
        yield xml_row(start + i, order_values(i))


# --- the hostile files --------------------------------------------------------------------


def xlsx_bomb(path: Path, *, rows: int = 10_000_000) -> Path:
    """A valid workbook whose one sheet inflates a hundredfold and more: the same order line
    `rows` times (10 million is more than a sheet can hold: gigabytes of XML). Cells may
    leave out their reference (`r`), which then follows on from the previous one, so every
    row is the same bytes and deflate packs them a thousandfold."""
    row = re.sub(rb' r="[A-Z]*[0-9]+"', b"", xml_row(2, order_values(0)))

    def rows_xml() -> Iterator[bytes]:
        yield xml_row(1, HEADER)
        for _ in range(rows):
            yield row

    return write_xlsx(path, rows_xml())


def far_cell_xlsx(path: Path, *, ref: str = "XFD1048576") -> Path:
    """Two small rows and one cell far away: a reader that fills the bounding box needs
    room for every cell between A1 and `ref`."""
    letters = "".join(ch for ch in ref if ch.isalpha())
    number = int("".join(ch for ch in ref if ch.isdigit()))
    far = f'<row r="{number}"><c r="{ref}"><v>1</v></c></row>'.encode()
    return write_xlsx(path, [*order_rows(1), far]) if letters else path


def declared_wide_xlsx(path: Path, *, rows: int = 100) -> Path:
    """Ordinary rows under a <dimension> that claims every cell of the sheet."""
    return write_xlsx(path, order_rows(rows), dimension="A1:XFD1048576")


def shared_strings_xlsx(path: Path, *, unique_count: int = 10**18) -> Path:
    """A shared-strings table that claims `unique_count` strings and holds one."""
    table = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        + f'count="{unique_count}" uniqueCount="{unique_count}"><si><t>Acme</t></si></sst>'.encode()
    )
    return write_xlsx(path, order_rows(3), shared_strings=table)


_ODS_MANIFEST = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
    b'<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
    b'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
    b"</manifest:manifest>"
)


def write_ods(path: Path, rows: Iterable[bytes]) -> Path:
    """A minimal .ods whose one table ('Orders') holds `rows` (<table:table-row> elements)."""
    content = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        b'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        b'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        b'<office:body><office:spreadsheet><table:table table:name="Orders">'
        + b"".join(rows)
        + b"</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", b"application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", _ODS_MANIFEST, zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return path


def ods_cell(value: object, *, repeat: int = 1) -> bytes:
    repeated = f' table:number-columns-repeated="{repeat}"' if repeat > 1 else ""
    if isinstance(value, str):
        return (
            f'<table:table-cell office:value-type="string"{repeated}><text:p>{value}</text:p></table:table-cell>'
        ).encode()
    return f'<table:table-cell office:value-type="float" office:value="{value}"{repeated}/>'.encode()


def ods_row(cells: Iterable[bytes], *, repeat: int = 1) -> bytes:
    repeated = f' table:number-rows-repeated="{repeat}"' if repeat > 1 else ""
    return f"<table:table-row{repeated}>".encode() + b"".join(cells) + b"</table:table-row>"


def repeated_ods(path: Path, *, columns: int = 16_384, rows: int = 5_000) -> Path:
    """Under a header, one row of a value repeated across `columns` columns, repeated down
    `rows` rows: well under a kilobyte that stands for `columns` x `rows` cells."""
    header = ods_row(ods_cell(h) for h in HEADER)
    body = ods_row([ods_cell("Acme"), ods_cell(7, repeat=columns - 1)], repeat=rows)
    return write_ods(path, [header, body])


def wide_csv(path: Path, *, columns: int = 20_000, rows: int = 1_000) -> Path:
    """A header of `columns` names over `rows` short rows: a parser pads every row to the
    header's width, so a file of a few hundred kilobytes stands for `columns` x `rows` cells."""
    with path.open("w", newline="") as handle:
        handle.write(",".join(HEADER + [f"x{i}" for i in range(columns - len(HEADER))]) + "\n")
        handle.writelines(",".join(str(v) for v in order_values(i)) + "\n" for i in range(rows))
    return path


def nul_csv(path: Path, *, rows: int = 20_000, nul_row: int = 15_000) -> Path:
    """An ordinary order file with a NUL byte inside one value far past the first 64 KB
    (`nul_row` is the spreadsheet row: the header is row 1)."""
    with path.open("wb") as handle:
        handle.write((",".join(HEADER) + "\n").encode())
        for i in range(rows):
            values = [str(v) for v in order_values(i)]
            if i + 2 == nul_row:
                values[0] = "Sup\x00plier"
            handle.write((",".join(values) + "\n").encode())
    return path


def far_cell_xls(path: Path, *, row: int = 65_535, column: int = 255, declared: tuple[int, int] | None = None) -> Path:
    """An old .xls (BIFF8, written by xlwt) with the order header, one line, and one value at
    (`row`, `column`), 0-based; `declared` rewrites the sheet's DIMENSIONS record to claim
    that many rows and columns instead."""
    import struct

    import xlwt

    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("Orders")
    for number, values in enumerate([HEADER, ["Acme", "M-1", "P1", 2, 2.5]]):
        for column_index, value in enumerate(values):
            sheet.write(number, column_index, value)
    if row or column:
        sheet.write(row, column, 1)
    workbook.save(str(path))
    if declared:
        data = bytearray(path.read_bytes())
        record = data.find(b"\x00\x02\x0e\x00")  # DIMENSIONS, 14 bytes
        struct.pack_into("<IIHH", data, record + 4, 0, declared[0], 0, declared[1])
        path.write_bytes(bytes(data))
    return path


BUILDERS = {
    "bomb.xlsx": xlsx_bomb,
    "far-XFD1048576.xlsx": far_cell_xlsx,
    "far-XFD20000.xlsx": lambda path: far_cell_xlsx(path, ref="XFD20000"),
    "declared-wide.xlsx": lambda path: declared_wide_xlsx(path, rows=1_000_000),
    "shared-strings.xlsx": shared_strings_xlsx,
    "repeated.ods": repeated_ods,
    "far-IV65536.xls": far_cell_xls,
    "declared-IV65536.xls": lambda path: far_cell_xls(path, row=0, column=0, declared=(65_536, 256)),
    "wide.csv": wide_csv,
    "nul.csv": nul_csv,
    "baseline.xlsx": lambda path: write_xlsx(path, order_rows(1_000)),
}

_MEASURE = """
import sys, time, resource, django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
django.setup()
from ingestion.reading import open_table
started = time.monotonic()
outcome = "read"
try:
    table = open_table(sys.argv[1], name=sys.argv[1], batch_rows=5000)
    rows = sum(len(batch.frame) for batch in table.batches)
    outcome = f"read {rows} rows"
except BaseException as exc:
    outcome = f"{type(exc).__name__}: {str(exc)[:300]}"
print(outcome)
print(f"{time.monotonic() - started:.2f}")
"""


def measure(path: Path, *, memory_cap: int, timeout: float) -> dict:
    """Read `path` in a child process limited to `memory_cap` bytes of address space."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    root = Path(__file__).resolve().parent.parent
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(path)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit,
        )
        lines = done.stdout.strip().splitlines()
        outcome = lines[0] if lines else f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
        reading = float(lines[1]) if len(lines) > 1 else None
    except subprocess.TimeoutExpired:
        outcome, reading = f"still reading after {timeout:.0f} s", None
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "file": path.name,
        "read_seconds": reading,  # open_table and every batch, without starting Python and Django
        "bytes": path.stat().st_size,
        "seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": round(peak / 1e6),
        "outcome": outcome,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", help="file names to build (default: all)")
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--memory-cap-gb", type=float, default=6)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or BUILDERS:
        path = args.out / name
        if not path.exists():
            BUILDERS[name](path)
        if args.measure:
            # Each in its own child: ru_maxrss of RUSAGE_CHILDREN is the largest child so far,
            # so measure from a fresh parent per file for an honest figure.
            report = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import json,sys; from scripts.hostile_files import measure; "
                    "from pathlib import Path; print(json.dumps(measure(Path(sys.argv[1]), "
                    "memory_cap=int(float(sys.argv[2])), timeout=float(sys.argv[3]))))",
                    str(path),
                    str(args.memory_cap_gb * 1e9),
                    str(args.timeout),
                ],
                cwd=Path(__file__).resolve().parent.parent,
                capture_output=True,
                text=True,
            )
            print(report.stdout.strip() or report.stderr.strip()[-500:], flush=True)
        else:
            print(json.dumps({"file": name, "bytes": path.stat().st_size}))


if __name__ == "__main__":
    main()
