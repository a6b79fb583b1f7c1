"""The loading pipeline: read a file in batches, validate each, write it, report progress.

It knows nothing of Celery, Channels or HTTP. Whoever runs it passes `on_progress`, called
with the upload after every batch (the task wires it to the database row and the live
page), and `should_stop`, polled between steps (the task wires it to the cancel flag)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty, Full, Queue

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import F

from . import dimensions, line_writers, po_changes, quality, repeats, review, spend_lines
from .mapping_step import constant_label, plan_upload, with_constants
from .models import RowIssue, Upload
from .outcomes import Cancelled, NeedsReview, PipelineError
from .reading import Batch, FileError, Table, open_table
from .validation import ERROR, WARNING, no_issues, validate_batch

MAX_STORED_ISSUES = 50_000
# The file's first batch is cut into pieces of these sizes first (and the rest of it): the
# line writer, which sets the pace of a load, starts on the first thousand rows instead of
# waiting for a whole batch to be validated and resolved.
RAMP_ROWS = (1_000, 3_000)
log = logging.getLogger(__name__)


ProgressCallback = Callable[[Upload, str], None]


def run_pipeline(
    *, upload: Upload, on_progress: ProgressCallback, should_stop: Callable[[], bool]
) -> quality.QualityCounter:
    """Load `upload`'s file. Counters on `upload` are updated in memory as it goes; the
    caller persists them. Returns what the quality rules counted in the batches (the
    caller hands it on with `signals.lines_changed`, once the lines are committed). Raises
    PipelineError (bad input) or Cancelled."""
    batch_rows = settings.INGEST_BATCH_ROWS
    try:
        table = open_table(Path(upload.file.path), name=upload.original_name, batch_rows=batch_rows)
        columns = plan_upload(upload=upload, table=table)  # or NeedsMapping: its owner chooses
        # The rest of a wide file is never parsed.
        table.use_columns(h for f, h in columns.items() if h != constant_label(f))
    except FileError as exc:
        raise PipelineError(str(exc)) from exc
    upload.resolved_field_to_header = columns
    upload.total_rows = table.estimated_rows
    on_progress(upload, f"Reading {table.description}")
    tally = _Tally()
    counter = quality.QualityCounter(columns=columns)  # counts rules as the batches pass
    if review.diffs(upload):
        review.start_pass(upload)
    with line_writers.open_line_writer(
        upload.pk, should_stop=should_stop, policy=upload.on_existing, dry_run=upload.dry_run
    ) as writer:
        _load_batches(
            upload, table, columns, writer, tally, should_stop=should_stop, on_progress=on_progress, counter=counter
        )
        upload.total_rows = upload.processed_rows
        counted = upload.imported_rows + upload.rejected_rows
        if counted == 0:
            raise PipelineError("The file has a header row but no data rows.")
        if upload.rejected_rows and upload.rejected_rows > settings.INGEST_MAX_REJECTED_SHARE * counted:
            raise PipelineError(
                f"{upload.rejected_rows} of {counted} rows were rejected (more than "
                f"{settings.INGEST_MAX_REJECTED_SHARE:.0%}); nothing was loaded. See the row issues."
            )
        if review.diffs(upload):
            _settle_review(upload, writer, tally)
        on_progress(upload, "Saving lines")

        def saving(done: int, total: int) -> None:
            upload.saving_percent = done * 100 // max(total, 1)
            on_progress(upload, f"Saving lines ({upload.saving_percent}%)")

        upload.created_lines, upload.updated_lines = writer.finish(on_saving=saving)
        if isinstance(writer, line_writers.DryRunWriter):
            upload.dry_run_orders = writer.orders()  # what the dry run reports of the orders
        upload.unchanged_lines = max(0, tally.lines - upload.created_lines - upload.updated_lines - upload.kept_lines)
    spend_lines.mark_written(upload=upload)
    return counter


class _Tally:
    """What the batches met, for the review's summary."""

    def __init__(self) -> None:
        self.lines = 0  # distinct lines of each batch
        self.existing = 0  # lines that exist already (diffed uploads only)
        self.conflicts = 0  # a line twice in a batch, with other values


def _settle_review(upload: Upload, writer: line_writers.LineWriter, tally: _Tally) -> None:
    """After the last batch of a diffed upload: under `review`, stop for its owner's
    decisions if any change has none (the line writer then rolls back: nothing written)."""
    existing, _ = writer.diff_rest(upload)
    tally.existing += existing
    outcome = review.end_pass(upload)
    upload.kept_lines = outcome.kept
    if upload.on_existing == Upload.OnExisting.REVIEW and outcome.pending:
        upload.review_summary = {
            "new": max(0, tally.lines - tally.existing),
            "changed": outcome.changed,
            "unchanged": max(0, tally.existing - outcome.changed),
            "rejected": upload.rejected_rows,
            "conflicts": tally.conflicts,
            "pending": outcome.pending,
        }
        raise NeedsReview()


def _load_batches(
    upload: Upload,
    table: Table,
    columns: dict[str, str],
    writer: line_writers.LineWriter,
    tally: _Tally,
    *,
    should_stop: Callable[[], bool],
    on_progress: ProgressCallback,
    counter: quality.QualityCounter,
) -> None:
    """Every batch: validate (a batch ahead, in a thread), resolve ids, hand the lines to the
    writer, store the row issues, count, report."""
    line_counters: dict[str, int] = {}
    ids = dimensions.IdCache(upload_id=upload.pk)
    suppliers = po_changes.SupplierCheck(ids.differs["purchase_order"])
    repeats_seen = repeats.RepeatedAcrossBatches()
    stored_issues = 0

    def validated_batches():
        for batch in ramped(table.batches):
            yield (
                batch,
                validate_batch(
                    with_constants(batch.frame, upload.constants, columns),
                    columns=columns,
                    day_first=upload.day_first,
                    decimal_comma=upload.decimal_comma,
                    default_currency=upload.default_currency,
                ),
            )

    try:
        for batch, validated in prefetch(validated_batches(), should_stop=should_stop):
            if should_stop():
                raise Cancelled()
            issues = validated.issues
            if batch.skipped:
                skipped = pd.DataFrame(
                    [(row, "", "", f"Row skipped: {reason}", ERROR) for row, reason in batch.skipped],
                    columns=["row", "column", "value", "message", "severity"],
                )
                issues = pd.concat([issues, skipped], ignore_index=True)
                validated.rejected += len(batch.skipped)
            if batch.warnings:  # values the reader had to clean (NUL bytes)
                cleaned = pd.DataFrame(batch.warnings, columns=["row", "column", "value", "message"])
                issues = pd.concat([issues, cleaned.assign(severity=WARNING)], ignore_index=True)
                validated.warnings += len(batch.warnings)
            if upload.strict and validated.rejected:
                first = issues[issues["severity"] == ERROR].iloc[0]
                _store_issues(upload, issues.head(MAX_STORED_ISSUES))
                raise PipelineError(
                    f"Strict upload: row {first['row']} was rejected ({first['column']}: {first['message']}); nothing was loaded."
                )
            lines = _number_lines(
                validated.lines, line_counters, numbered="line_number" in columns, po_numbers=validated.po_numbers
            )
            found = counter.add_batch(raw=batch.frame, lines=lines, issues=issues, rejected=validated.rejected)
            if len(found):
                issues = pd.concat([issues, found], ignore_index=True)
                validated.warnings += len(found)
            if should_stop():
                raise Cancelled()
            lines = _upsert_dimensions(upload, lines, ids)
            counter.add_keys(lines)
            lines, conflicting = suppliers.split(
                lines, supplier_header=columns.get("supplier_name") or columns.get("supplier_code", "")
            )
            if len(conflicting):  # a PO number with another supplier: warned, listed in the review
                issues = pd.concat([issues, conflicting], ignore_index=True)
                validated.warnings += len(conflicting)
                tally.conflicts += len(conflicting)
            written = repeats.last_of_each(lines)  # each PO line once: its last row, the one written
            repeated = _repeated_lines(lines, written)
            if len(repeated):
                issues = pd.concat([issues, repeated], ignore_index=True)
                validated.warnings += len(repeated)
                tally.conflicts += len(repeated)
            repeated = repeats_seen.check(written)  # the same line in an earlier batch, with other values
            if len(repeated):
                issues = pd.concat([issues, repeated], ignore_index=True)
                validated.warnings += len(repeated)
                tally.conflicts += len(repeated)
            tally.lines += len(written)
            if review.diffs(upload):
                tally.existing += writer.diff(upload, lines)[0]
            writer.write(lines)
            if stored_issues < MAX_STORED_ISSUES and len(issues):
                keep = issues.head(MAX_STORED_ISSUES - stored_issues)
                _store_issues(upload, keep)
                stored_issues += len(keep)

            upload.processed_rows += len(batch.frame) + len(batch.skipped)
            upload.imported_rows += len(lines)
            upload.rejected_rows += validated.rejected
            upload.warning_count += validated.warnings
            if upload.total_rows is not None and upload.processed_rows > upload.total_rows:
                upload.total_rows = upload.processed_rows
            on_progress(upload, "Loading")
    except FileError as exc:
        raise PipelineError(str(exc)) from exc


def ramped(batches: Iterator[Batch], sizes: tuple[int, ...] = RAMP_ROWS) -> Iterator[Batch]:
    """`batches`, the first of them cut into pieces of `sizes` rows and the rest of it. A
    piece keeps the rows the reader skipped and the values it cleaned that fall among its rows."""
    first = next(batches, None)
    if first is None:
        return
    for size in sizes:
        if len(first.frame) <= size:
            break
        piece, first = _cut(first, size)
        yield piece
    yield first
    yield from batches


def _cut(batch: Batch, rows: int) -> tuple[Batch, Batch]:
    """(the first `rows` rows of `batch`, the others). Skipped rows and cleaned values go
    with the rows they sit among (by row number; a skipped row without one goes first)."""
    split = int(batch.frame.index[rows])

    def divided(entries: list) -> tuple[list, list]:
        parts: tuple[list, list] = ([], [])
        for entry in entries:
            parts[entry[0] is not None and entry[0] >= split].append(entry)
        return parts

    skipped, later_skipped = divided(batch.skipped)
    warnings, later_warnings = divided(batch.warnings)
    return (
        Batch(frame=batch.frame.iloc[:rows], first_row=batch.first_row, skipped=skipped, warnings=warnings),
        Batch(frame=batch.frame.iloc[rows:], first_row=split, skipped=later_skipped, warnings=later_warnings),
    )


def prefetch(items: Iterator, *, should_stop: Callable[[], bool], depth: int = 2) -> Iterator:
    """Produce `items` in a second thread, up to `depth` ahead: the next batch is parsed and
    validated (pandas and Arrow, mostly outside the GIL) while this one is being written
    (mostly waiting on the database). Exceptions arrive in order, where they happened."""
    queue: Queue = Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def hand_over(entry: tuple) -> bool:
        """Put `entry` once there is room; False if the consumer stopped first (a put that
        waited for good would hold this thread past the join below)."""
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((item, None)) or should_stop():
                    return
            hand_over((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            hand_over((None, exc))

    thread = threading.Thread(target=produce, name="ingest-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item, error = queue.get(timeout=0.1)
            except Empty:
                if should_stop():
                    raise Cancelled() from None
                continue
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def _upsert_dimensions(upload: Upload, lines: pd.DataFrame, ids: dimensions.IdCache) -> pd.DataFrame:
    """Create the batch's missing suppliers, materials and purchase orders and count them on
    the upload's row in the same transaction. They are kept however the load ends (other
    uploads may use them at once), so the count must never miss a committed row: not when a
    cancel interrupts the batch halfway, not when the worker dies right after. A retry or a
    takeover then adds to this count, and the upload's card tells how many it created."""
    with transaction.atomic():
        lines, created = dimensions.upsert_dimensions(lines, ids)
        if created.suppliers or created.materials or created.purchase_orders:
            Upload.objects.filter(pk=upload.pk).update(
                created_suppliers=F("created_suppliers") + created.suppliers,
                created_materials=F("created_materials") + created.materials,
                created_purchase_orders=F("created_purchase_orders") + created.purchase_orders,
            )
    upload.created_suppliers += created.suppliers
    upload.created_materials += created.materials
    upload.created_purchase_orders += created.purchase_orders
    return lines


def _repeated_lines(lines: pd.DataFrame, written: pd.DataFrame) -> pd.DataFrame:
    """Row issues for a PO line a batch carries twice with other values: the last row is
    taken (`written`, the batch with each line once), and the issue on the earlier one names
    the row that was."""
    keys = ["purchase_order_id", "line_number"]
    values = [*keys, "material_id", "quantity", "unit_price", "total_price", "currency"]
    if len(written) == len(lines):
        return no_issues()
    twice = lines[lines.duplicated(keys, keep=False)]
    if twice.empty:
        return no_issues()
    distinct = twice.drop_duplicates(values)
    differing = distinct[distinct.duplicated(keys, keep=False)]
    if differing.empty:
        return no_issues()
    last = twice.groupby(keys, sort=False)["source_row"].transform("max")
    earlier = differing[differing["source_row"] < last.reindex(differing.index)]
    taken = last.reindex(earlier.index)
    return pd.DataFrame(
        {
            "row": earlier["source_row"].to_numpy(),
            "column": "",
            "value": earlier["unit_price"].astype(str).to_numpy(),
            "message": [
                f"PO {po} line {line} appears again in row {row} with other values; row {row} was taken "
                f"(unit price {price} here)."
                for po, line, row, price in zip(
                    earlier["po_number"], earlier["line_number"], taken, earlier["unit_price"], strict=True
                )
            ],
            "severity": WARNING,
        }
    )


def _number_lines(
    lines: pd.DataFrame, counters: dict[str, int], *, numbered: bool, po_numbers: pd.Series
) -> pd.DataFrame:
    """Without a line-number column, a line's number is its order of appearance within its
    purchase order in the file, so loading the same file again finds the same lines.
    Rejected rows count too: once their owner fixes them and loads the file again, the
    lines after them keep their numbers instead of being overwritten by their neighbours."""
    if numbered or lines.empty:
        return lines
    pos = po_numbers[po_numbers != ""]
    order = pos.groupby(pos, sort=False).cumcount().to_numpy() + 1
    offset = pos.map({po: counters.get(po, 0) for po in pos.unique()}).to_numpy(dtype=np.int64)
    numbers = pd.Series(order + offset, index=pos.index)
    counters.update(numbers.groupby(pos, sort=False).max().to_dict())
    return lines.assign(line_number=numbers.reindex(lines.index).to_numpy(dtype=np.int64))


def _store_issues(upload: Upload, issues: pd.DataFrame) -> None:
    RowIssue.objects.bulk_create(
        [
            RowIssue(
                upload=upload,
                row_number=int(row) if row == row and row is not None else None,
                column=str(column)[:255],
                value=str(value),
                message=message,
                severity=severity,
            )
            for row, column, value, message, severity in issues.itertuples(index=False, name=None)
        ],
        batch_size=2000,
    )
