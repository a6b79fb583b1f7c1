"""`manage.py ingest --dry-run`: what a load of a file would do, with nothing written.

The file goes through the real pipeline (the same reading, mapping, validation, dimensions
and the review's diff), in the command's own process, inside ONE transaction that is rolled
back at the end: the upload row, the suppliers, materials and purchase orders it would
create, the row issues and the proposed changes all vanish, and the stored copy of the file
is deleted. The line writer is `line_writers.DryRunWriter`, which writes no line. What is
reported is read inside the transaction, before the rollback. While it runs, the keys it
would create are held (a load creating the same suppliers waits for it)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Q

from . import po_changes, selectors
from .filenames import display_name, stored_name
from .models import ProposedChange, PurchaseOrder, RowIssue, Upload
from .outcomes import Cancelled, NeedsMapping, PipelineError

FIRST_CHANGES = 20


class _Rollback(Exception):
    pass


def dry_run(
    *,
    owner,
    path: Path,
    mapping: dict,
    day_first: bool | None = None,
    strict: bool = False,
    on_existing: str = Upload.OnExisting.UPDATE,
    profile=None,
    first: int = FIRST_CHANGES,
) -> dict:
    """Run the file's load without writing anything. Returns {file, status (would_load,
    would_fail, needs_mapping), error, lines {new, changed, unchanged, rejected}, created
    {suppliers, materials, purchase_orders}, conflicts, changes [the first `first` changes:
    po_number, line_number, field, old, new, change_percent], orders {filled, changed,
    changes [the first `first`: po_number, field, old, new], supplier_conflicts, conflicts
    [the first `first`: po_number, supplier, file_supplier, rows]}}."""
    from .pipeline import run_pipeline

    name = display_name(path.name)
    result: dict = {}
    upload = Upload(
        owner=owner,
        original_name=name,
        size=path.stat().st_size,
        explicit_header_to_field=mapping,
        day_first=settings.INGEST_DAY_FIRST if day_first is None else day_first,
        strict=strict,
        on_existing=on_existing,
        profile=profile,
    )
    with path.open("rb") as handle:
        upload.file.save(stored_name(name), File(handle, name=name), save=False)
    try:
        with transaction.atomic():
            upload.save()
            upload.dry_run = True
            # Its changes are reported, not decided: the diff records them all, undecided.
            upload.on_existing = Upload.OnExisting.UPDATE
            status, error = "would_load", ""
            try:
                run_pipeline(upload=upload, on_progress=lambda current, text: None, should_stop=lambda: False)
            except NeedsMapping as exc:
                status, error = "needs_mapping", str(exc)
            except (PipelineError, Cancelled) as exc:
                status, error = "would_fail", str(exc)
            result = _report(upload, status=status, error=error, on_existing=on_existing, first=first)
            raise _Rollback()
    except _Rollback:
        pass
    finally:
        upload.file.delete(save=False)
    return result


def _report(upload: Upload, *, status: str, error: str, on_existing: str, first: int) -> dict:
    changes = ProposedChange.objects.filter(upload=upload)
    listed = []
    for change in selectors.proposed_changes(upload=upload)[:first]:
        for field in selectors.field_changes(change):
            listed.append(
                {
                    "po_number": change.po_number,  # type: ignore[attr-defined]
                    "line_number": change.line_number,
                    "field": field["field"],
                    "old": None if field["old"] is None else str(field["old"]),
                    "new": None if field["new"] is None else str(field["new"]),
                    "change_percent": None if field["change_percent"] is None else str(field["change_percent"]),
                }
            )
    changed = changes.count() if status == "would_load" else 0
    return {
        "file": upload.original_name,
        "dry_run": True,
        "status": status,
        "error": error or None,
        "on_existing": on_existing,
        "rows": upload.processed_rows,
        "lines": {
            "new": upload.created_lines,
            "changed": changed,
            "unchanged": upload.unchanged_lines,
            "rejected": upload.rejected_rows,
        },
        "created": {
            "suppliers": upload.created_suppliers,
            "materials": upload.created_materials,
            "purchase_orders": upload.created_purchase_orders,
        },
        "warnings": upload.warning_count,
        "conflicts": RowIssue.objects.filter(
            Q(message__contains=" appears again in row ") | Q(message__contains=po_changes.SUPPLIER_CONFLICT),
            upload=upload,
        ).count(),
        "changes": listed,
        "orders": _orders(upload, on_existing=on_existing, first=first) if status == "would_load" else None,
    }


def _orders(upload: Upload, *, on_existing: str, first: int) -> dict:
    """The purchase orders whose date or currency the load would fill or change (under
    `review`, as if every change were taken: they are what its review would list), and the
    PO numbers that arrive with another supplier than their order's."""
    policy = Upload.OnExisting.KEEP if on_existing == Upload.OnExisting.KEEP else Upload.OnExisting.UPDATE
    planned = []
    if upload.dry_run_orders is not None and len(upload.dry_run_orders):
        planned = po_changes.plan(orders=upload.dry_run_orders, policy=policy, upload_id=upload.pk)
    planned.sort(key=lambda pair: pair[0].po_number)
    listed: list[dict] = []
    for order, change in planned:
        for field, old, new in (
            ("order_date", change.old_order_date, change.new_order_date),
            ("currency", change.old_currency, change.new_currency),
        ):
            if old != new and len(listed) < first:
                listed.append(
                    {
                        "po_number": order.po_number,
                        "field": field,
                        "old": None if old is None else str(old),
                        "new": None if new is None else str(new),
                    }
                )
    filled = sum(change.kind == change.Kind.FILLED for _, change in planned)
    # Every row of an order with another supplier carries the same message (`po_changes`).
    issues = RowIssue.objects.filter(upload=upload, message__contains=po_changes.SUPPLIER_CONFLICT)
    by_order: dict[str, dict] = {}
    for message, value in issues.order_by("row_number").values_list("message", "value"):
        po_number = message.split(f" {po_changes.SUPPLIER_CONFLICT} ", 1)[0].removeprefix("PO ")
        if po_number in by_order:
            by_order[po_number]["rows"] += 1
        else:
            by_order[po_number] = {"po_number": po_number, "supplier": None, "file_supplier": value, "rows": 1}
    shown = sorted(by_order)[:first]
    suppliers = dict(PurchaseOrder.objects.filter(po_number__in=shown).values_list("po_number", "supplier__name"))
    for po_number in shown:
        by_order[po_number]["supplier"] = suppliers.get(po_number)
    return {
        "filled": filled,
        "changed": len(planned) - filled,
        "changes": listed,
        "supplier_conflicts": len(by_order),
        "conflicts": [by_order[po_number] for po_number in shown],
    }
