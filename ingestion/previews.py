"""The mapping form's preview: the first rows of a file as they would be stored under a
choice of columns and options, with the cells that would be rejected or warned. It reads
the rows the worker kept with the upload's plan, never the file, so it answers at once."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from django.conf import settings

from .mapping_step import constant_label, with_constants
from .suggestions import FIELD_LABELS, suggest
from .validation import ERROR, validate_batch

SHOWN = (
    "supplier_name",
    "supplier_code",
    "material_description",
    "material_code",
    "po_number",
    "order_date",
    "quantity",
    "unit_price",
    "total_price",
    "currency",
)


@dataclass
class Cell:
    value: str
    severity: str = ""  # "error", "warning" or ""
    reason: str = ""


@dataclass
class Preview:
    columns: list[str] = field(default_factory=list)  # field labels
    rows: list[tuple[int, list[Cell]]] = field(default_factory=list)
    message: str = ""  # what the choice still lacks
    rejected: int = 0
    warned: int = 0


def preview(
    *, plan: dict, mapping: dict[str, str], day_first: bool, decimal_comma: bool, currency: str, constants: dict
) -> Preview:
    headers = plan.get("headers", [])
    constants = {k: v for k, v in constants.items() if str(v).strip()}
    checked = suggest(headers, None, explicit={h: f for h, f in mapping.items() if h in headers}, constants=constants)
    result = Preview()
    if not checked.ready:
        result.message = checked.message().replace(" Choose the columns below.", "")
        return result
    columns = dict(checked.field_to_header)
    for name in constants:
        columns.setdefault(name, constant_label(name))
    rows = plan.get("rows", [])
    frame = pd.DataFrame([values for _, values in rows], columns=headers, index=[row for row, _ in rows], dtype=object)
    validated = validate_batch(
        with_constants(frame, constants, columns),
        columns=columns,
        day_first=day_first,
        decimal_comma=decimal_comma,
        default_currency=currency or settings.INGEST_DEFAULT_CURRENCY,
    )
    shown = [f for f in SHOWN if f in columns or f in ("currency",)]
    result.columns = [FIELD_LABELS[f] for f in shown]
    issues: dict[tuple[int, str], tuple[str, str]] = {}
    field_of_header = {h: f for f, h in columns.items()}
    for row, column, _value, message, severity in validated.issues.itertuples(index=False, name=None):
        for part in str(column).split(" / "):
            name = field_of_header.get(part)
            if not name:
                continue
            if (int(row), name) not in issues or severity == ERROR:
                issues[(int(row), name)] = (severity, message)
    # Plain dicts: reading 200 cells one by one through pandas costs more than the validation.
    lines = validated.lines[[f for f in shown if f in validated.lines.columns]].to_dict("index")
    raw = frame.to_dict("index")
    for row in frame.index:
        cells = []
        accepted = lines.get(row)
        for name in shown:
            if accepted is not None:
                value = accepted.get(name, "")
            else:
                value = raw[row].get(columns[name], "") if name in columns else ""
            text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
            severity, reason = issues.get((int(row), name), ("", ""))
            cells.append(Cell(text, severity, reason))
        result.rows.append((int(row), cells))
    result.rejected = validated.rejected
    result.warned = validated.warnings
    return result
