"""The rows an upload rejected, read back from its stored file in the file's own columns,
with the reasons beside them: ready to fix and upload again. Read batch by batch (memory
stays flat), and only as far as the last rejected row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from .models import RowIssue, Upload
from .reading import FileError, open_table

REASON_HEADER = "Reason rejected"


def rejected_reasons(*, upload: Upload) -> dict[int, str]:
    """{spreadsheet row number: its errors, joined}."""
    reasons: dict[int, list[str]] = {}
    errors = (
        RowIssue.objects.filter(upload=upload, severity=RowIssue.Severity.ERROR, row_number__isnull=False)
        .order_by("row_number", "id")
        .values_list("row_number", "column", "message")
    )
    for row, column, message in errors.iterator(chunk_size=5000):
        if row is None:
            continue
        reasons.setdefault(row, []).append(f"{column}: {message}" if column else message)
    return {row: "; ".join(found) for row, found in reasons.items()}


def rejected_rows(*, upload: Upload) -> Iterator[list[str]]:
    """The header (the file's, plus the reason), then each rejected row as the file has it."""
    reasons = rejected_reasons(upload=upload)
    try:
        table = open_table(Path(upload.file.path), name=upload.original_name, batch_rows=settings.INGEST_BATCH_ROWS)
    except (FileError, OSError, ValueError):
        return
    yield [*table.headers, REASON_HEADER]
    if not reasons:
        return
    last = max(reasons)
    for batch in table.batches:
        frame = batch.frame.fillna("")
        hit = frame.index.isin(list(reasons))
        for row_number, values in zip(frame.index[hit], frame[hit].itertuples(index=False, name=None)):
            yield [*values, reasons[int(row_number)]]
        if len(frame.index) and frame.index.max() >= last:
            return
