"""Tables as downloads: CSV streamed row by row, .xlsx written row by row (openpyxl's
write-only mode keeps memory flat) to a temporary file that is then streamed. Both are
formula-safe: a text cell that a spreadsheet would run as a formula (CSV injection) is kept
as text."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

from django.http import FileResponse, StreamingHttpResponse

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_575  # a worksheet's rows, less the header


def neutralize(cell: object) -> object:
    """A CSV cell that starts like a formula gets a leading apostrophe."""
    if isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES):
        return "'" + cell
    return cell


class _Echo:
    def write(self, value: str) -> str:
        return value


def _safe_filename(name: str) -> str:
    return "".join(ch for ch in name if ch.isalnum() or ch in "-_.") or "table"


def csv_response(*, filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([neutralize(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_safe_filename(filename)}.csv"'
    return response


def _xlsx_value(value: object) -> object:
    if isinstance(value, Decimal):
        # Excel holds doubles; a string would stop it from summing the column.
        return float(value)
    if isinstance(value, date | datetime) or value is None or isinstance(value, int | float):
        return value
    return str(value)


def xlsx_response(*, filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> FileResponse:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Lines")
    sheet.append(list(header))
    for count, row in enumerate(rows):
        if count >= XLSX_MAX_ROWS:
            break
        cells = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=_xlsx_value(value))
            if cell.data_type == "f":  # text that looks like a formula stays text
                cell.data_type = "s"
            cells.append(cell)
        sheet.append(cells)
    handle = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 (FileResponse closes it)
    workbook.save(handle)
    handle.seek(0)
    return FileResponse(
        handle,
        as_attachment=True,
        filename=f"{_safe_filename(filename)}.xlsx",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
