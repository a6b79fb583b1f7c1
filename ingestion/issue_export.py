"""issues.csv: every row issue of an upload with what a buyer needs to act on it: the row's
purchase order, supplier and material (read back from the stored file, batch by batch,
only as far as the last row with an issue) and, for a total that disagrees, the expected
total (quantity x unit price, as the file gives them)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd
from django.conf import settings

from . import parsing
from .models import RowIssue, Upload
from .reading import FileError, open_table

HEADER: list[object] = [
    "row",
    "column",
    "value",
    "message",
    "severity",
    "po_number",
    "supplier",
    "material",
    "expected",
]
CONTEXT_FIELDS = ("po_number", "supplier_code", "supplier_name", "material_code", "material_description")
TOTAL_MESSAGE = "Total price differs from quantity x unit price."


def _number(text: str, *, decimal_comma: bool) -> Decimal | None:
    if decimal_comma:
        text = text.replace(".", "").replace(",", ".")
    parsed, _ = parsing.parse_decimal(pd.Series([text], dtype=object))
    try:
        return Decimal(parsed.iloc[0]) if parsed.iloc[0] is not None else None
    except (InvalidOperation, TypeError):
        return None


def _row_context(upload: Upload, cells: dict[str, str]) -> dict[str, object]:
    """The row's purchase order, supplier, material and its expected total."""
    quantity = _number(cells.get("quantity", ""), decimal_comma=upload.decimal_comma)
    unit_price = _number(cells.get("unit_price", ""), decimal_comma=upload.decimal_comma)
    return {
        "po_number": cells.get("po_number", ""),
        "supplier": " ".join(filter(None, (cells.get("supplier_code", ""), cells.get("supplier_name", "")))),
        "material": " ".join(filter(None, (cells.get("material_code", ""), cells.get("material_description", "")))),
        "expected": (quantity * unit_price).normalize() if quantity is not None and unit_price is not None else "",
    }


def _file_rows(upload: Upload) -> Iterator[tuple[int, dict[str, str]]]:
    """(spreadsheet row number, {field: raw cell}) for every row of the stored file."""
    wanted = {*CONTEXT_FIELDS, "quantity", "unit_price"}
    headers = {f: h for f, h in (upload.resolved_field_to_header or {}).items() if f in wanted and h}
    try:
        table = open_table(Path(upload.file.path), name=upload.original_name, batch_rows=settings.INGEST_BATCH_ROWS)
    except (FileError, OSError, ValueError, NotImplementedError):
        return
    for batch in table.batches:
        frame = batch.frame.fillna("")
        present = {f: h for f, h in headers.items() if h in frame.columns}
        columns = {f: frame[h].astype(str).tolist() for f, h in present.items()}
        for position, row_number in enumerate(frame.index):
            yield int(row_number), {f: values[position] for f, values in columns.items()}


def issue_rows(*, upload: Upload) -> Iterator[list[object]]:
    """The header, then every issue (file-wide ones first, then by row) with its row's
    context; rows the stored file no longer has (deleted) keep their context blank."""
    yield HEADER
    issues = (
        RowIssue.objects.filter(upload=upload)
        .order_by("row_number", "id")
        .values_list("row_number", "column", "value", "message", "severity")
    )
    rows = _file_rows(upload)
    current: tuple[int, dict[str, str]] | None = None
    for row_number, column, value, message, severity in issues.iterator(chunk_size=2000):
        context: dict[str, object] = {"po_number": "", "supplier": "", "material": "", "expected": ""}
        if row_number is not None:
            while current is None or current[0] < row_number:
                current = next(rows, None)
                if current is None:
                    rows = iter(())
                    current = (1 << 62, {})
                    break
            if current[0] == row_number:
                context = _row_context(upload, current[1])
        expected = context["expected"] if message == TOTAL_MESSAGE else ""
        yield [
            row_number,
            column,
            value,
            message,
            severity,
            context["po_number"],
            context["supplier"],
            context["material"],
            expected,
        ]
