"""Review before writing: which existing lines a file would change, and what the writers may
change given the upload's policy (`Upload.on_existing`) and its owner's decisions.

The diff is set-based, one statement per batch: the batch joined to the lines table on
(purchase order, line number), where a value differs, goes into `ProposedChange` with the
old and new values side by side (ON CONFLICT: a later pass over the same file keeps a
decision only while the old and new values are the ones it was made on, so a line another
upload changed since is asked again). On PostgreSQL the pipeline diffs each batch on its own
connection, which sees the lines as committed: as they were before this upload, whatever
its line writer has written so far in its open transaction. On SQLite the diff runs once,
from the staged lines, before the merge.

What a writer may change on an existing line (`update_condition`): under `update` any
changed line; under `keep` none; under `review` the lines whose proposed change says
`take`, and the lines this upload itself created earlier in the file."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from django.db import connection
from django.db.models import Count, Q

from . import batch_json
from .line_history import VALUE_COLUMNS
from .models import ProposedChange, PurchaseOrder, PurchaseOrderLine, StagedLine, Upload

VALUES = VALUE_COLUMNS
OLD_NEW = ", ".join(f"old_{c}, new_{c}" for c in VALUES)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def diffs(upload: Upload) -> bool:
    """Whether a load records its changes to existing lines: under `review` and `keep`, and in
    a dry run (which reports them)."""
    return upload.on_existing != Upload.OnExisting.UPDATE or upload.dry_run


def update_condition(upload_id, *, policy: str, lines: str, now) -> tuple[str, list]:
    """The extra condition (and its parameters) on the writers' ON CONFLICT DO UPDATE."""
    if policy == Upload.OnExisting.UPDATE:
        return "", []
    if policy == Upload.OnExisting.KEEP:
        return f" AND {lines}.created_at = %s", [now]
    proposed = _table(ProposedChange)
    return (
        f" AND ({lines}.created_at = %s OR EXISTS (SELECT 1 FROM {proposed} p WHERE p.upload_id = %s "
        f"AND p.line_id = {lines}.id AND p.decision = 'take'))",
        [now, upload_id],
    )


def _percent(old: str, new: str) -> str:
    return f"CASE WHEN {old} <> 0 THEN ROUND(({new} - {old}) * 100 / ABS({old}), 2) END"


def _upsert_proposals(select: str) -> str:
    """INSERT the proposals `select` produces; a proposal already there takes the new values,
    and keeps its decision only if neither the old nor the new values moved."""
    proposed = _table(ProposedChange)
    same = " AND ".join(
        f"{proposed}.{side}_{c} IS NOT DISTINCT FROM excluded.{side}_{c}"
        for c in (*VALUES, "order_date")
        for side in ("old", "new")
    )
    columns = (
        "upload_id, line_id, purchase_order_id, line_number, supplier_id, "
        f"{OLD_NEW}, old_order_date, new_order_date, price_change_percent, quantity_change_percent, "
        "source_row, decision, seen"
    )
    updates = ", ".join(
        f"{c} = excluded.{c}"
        for c in (
            *(f"{side}_{c}" for c in VALUES for side in ("old", "new")),
            "old_order_date",
            "new_order_date",
            "price_change_percent",
            "quantity_change_percent",
            "source_row",
            "seen",
        )
    )
    return (
        f"INSERT INTO {proposed} ({columns}) {select} ON CONFLICT (upload_id, line_id) DO UPDATE SET {updates}, "
        f"decision = CASE WHEN {same} THEN {proposed}.decision ELSE excluded.decision END"
    )


def _proposal_select(source: str, *, upload_param: str, decision: str) -> str:
    """SELECT the proposals from `source` (alias v: p, l, m, q, u, t, c, d, r) joined to the lines."""
    lines = _table(PurchaseOrderLine)
    orders = _table(PurchaseOrder)
    differs = " OR ".join(
        f"x.{c} IS DISTINCT FROM v.{k}" for c, k in zip(VALUES, ("m", "q", "u", "t", "c"), strict=True)
    )
    # A different order date on the line's purchase order is a change of that line (filling
    # a missing one is not: `po_changes` fills it under every policy).
    differs += " OR (v.d IS NOT NULL AND po.order_date IS NOT NULL AND po.order_date <> v.d)"
    return (
        f"SELECT {upload_param}, x.id, x.purchase_order_id, x.line_number, po.supplier_id, "
        "x.material_id, v.m, x.quantity, v.q, x.unit_price, v.u, x.total_price, v.t, x.currency, v.c, "
        f"po.order_date, v.d, {_percent('x.unit_price', 'v.u')}, {_percent('x.quantity', 'v.q')}, v.r, "
        f"'{decision}', TRUE "
        f"FROM {source} JOIN {lines} x ON x.purchase_order_id = v.p AND x.line_number = v.l "
        f"JOIN {orders} po ON po.id = x.purchase_order_id WHERE {differs}"
    )


def start_pass(upload: Upload) -> None:
    """A pass over the file begins: proposals not met again by its end are gone."""
    ProposedChange.objects.filter(upload=upload).update(seen=False)


def diff_batch(upload: Upload, lines: pd.DataFrame) -> tuple[int, int]:
    """PostgreSQL: record the batch's changes to existing lines. Returns (existing lines
    met, changed among them)."""
    if lines.empty:
        return 0, 0
    lines = lines.drop_duplicates(["purchase_order_id", "line_number"], keep="last")
    source = (
        "(SELECT (a->>0)::bigint p, (a->>1)::bigint l, (a->>2)::bigint m, (a->>3)::numeric(20,4) q, "
        "(a->>4)::numeric(20,6) u, (a->>5)::numeric(22,4) t, a->>6 c, (a->>7)::date d, (a->>8)::int r "
        "FROM json_array_elements(%s::json) a) v"
    )
    decision = "keep" if upload.on_existing == Upload.OnExisting.KEEP else ""
    lines_table = _table(PurchaseOrderLine)
    batch = batch_json.lines_json(lines, dated=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH changed AS ({_upsert_proposals(_proposal_select(source, upload_param='%s::uuid', decision=decision))} "
            f"RETURNING 1) SELECT (SELECT COUNT(*) FROM {source} JOIN {lines_table} x ON x.purchase_order_id = v.p "
            "AND x.line_number = v.l), (SELECT COUNT(*) FROM changed)",
            [str(upload.pk), batch, batch],
        )
        met, changed = cursor.fetchone()
    return met, changed


def diff_staged(upload: Upload) -> tuple[int, int]:
    """SQLite: record the staged lines' changes to existing lines, before the merge."""
    staged = _table(StagedLine)
    lines_table = _table(PurchaseOrderLine)
    source = (
        "(SELECT purchase_order_id p, line_number l, material_id m, quantity q, unit_price u, total_price t, "
        f"currency c, order_date d, source_row r FROM {staged} WHERE upload_id = %s) v"
    )
    decision = "keep" if upload.on_existing == Upload.OnExisting.KEEP else ""
    with connection.cursor() as cursor:
        cursor.execute(
            _upsert_proposals(_proposal_select(source, upload_param="%s", decision=decision)),
            [upload.pk.hex, upload.pk.hex],
        )
        changed = cursor.rowcount
        cursor.execute(
            f"SELECT COUNT(*) FROM {source} JOIN {lines_table} x ON x.purchase_order_id = v.p AND x.line_number = v.l",
            [upload.pk.hex],
        )
        met = cursor.fetchone()[0]
    return met, changed


@dataclass
class Outcome:
    changed: int
    pending: int
    taken: int
    kept: int


def end_pass(upload: Upload) -> Outcome:
    """Forget the proposals this pass did not meet again; count what is left."""
    ProposedChange.objects.filter(upload=upload, seen=False).delete()
    counts = ProposedChange.objects.filter(upload=upload).aggregate(
        changed=Count("id"),
        pending=Count("id", filter=Q(decision="")),
        taken=Count("id", filter=Q(decision="take")),
        kept=Count("id", filter=Q(decision="keep")),
    )
    return Outcome(**counts)
